import { type BigIntStats, existsSync, linkSync, lstatSync, mkdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { git } from './git.js';

/**
 * Moving the branch a user has checked out, without ever losing a save they make while it
 * moves. `git merge --ff-only` checks that the files it will replace are clean, then
 * replaces them one by one: an editor saving a file between the check and its turn is
 * overwritten without a word. Here each file is swapped on its own: moved aside, found to
 * be exactly the file that was checked (same inode, size and mtime), and only then is the
 * new one linked in, with link(2), which never replaces a file someone created meanwhile.
 * An edit is kept in the checkout, or, when it went into the old file through a handle
 * opened before the swap, the old file is kept aside and named.
 */

export type CheckoutUpdate =
  | {
      kind: 'updated';
      /** Paths the user changed while they were being updated: the user's version is in the checkout. */
      kept: string[];
      /** Paths whose old file was written to across the swap: that file is saved at `saved`. */
      aside: { path: string; saved: string }[];
      /** True when git updated the checkout itself (a sparse checkout, a stage on another file system). */
      byGit: boolean;
    }
  | { kind: 'refused'; message: string; paths: string[] };

interface Change {
  status: string;
  path: string;
  oldMode: string;
  newMode: string;
  newOid: string;
}

type Seen = Pick<BigIntStats, 'ino' | 'size' | 'mtimeNs'> | undefined;

/** Synchronous on purpose: each file's swap is a handful of system calls, and a round trip to the thread pool would cost more than they do. */
function stats(path: string): Seen {
  try {
    const s = lstatSync(path, { bigint: true });
    return { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
  } catch {
    return undefined;
  }
}

const same = (a: Seen, b: Seen) => !!a && !!b && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;

const code = (error: unknown) => (error as NodeJS.ErrnoException).code;

async function changes(worktree: string, from: string, to: string): Promise<Change[]> {
  const fields = (await git(worktree, ['diff-tree', '-r', '-z', '--no-renames', from, to])).stdout.split('\0');
  const out: Change[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [oldMode, newMode, , newOid, status] = fields[i]!.slice(1).split(' ');
    out.push({ status: status!, path: fields[i + 1]!, oldMode: oldMode!, newMode: newMode!, newOid: newOid! });
  }
  return out;
}

/** The paths git names in a refusal ("Entry 'x' not uptodate", "Untracked working tree file 'x' would be overwritten"). */
function refusedPaths(stderr: string): string[] {
  return [...stderr.matchAll(/(?:Entry|file) '(.+?)' (?:not uptodate|would be)/g)].map((m) => m[1]!);
}

/** Saves an old file that took a write across the swap, under `asideDir`, and says where. */
async function saveAside(file: string, asideDir: string, path: string): Promise<string> {
  const saved = join(asideDir, path);
  await mkdir(dirname(saved), { recursive: true });
  await rename(file, saved).catch(async (error) => {
    if (code(error) !== 'EXDEV') throw error;
    await copyFile(file, saved);
    await unlink(file);
  });
  return saved;
}

/** The worktree's own git dir, read from its `.git` (a folder, or a file naming it) without starting git. */
async function worktreeGitDir(worktree: string): Promise<string> {
  const dotGit = join(worktree, '.git');
  const s = await lstat(dotGit).catch(() => undefined);
  if (s?.isDirectory()) return dotGit;
  const named = s?.isFile() ? /^gitdir: (.+)$/m.exec(await readFile(dotGit, 'utf8'))?.[1]?.trim() : undefined;
  if (named) return isAbsolute(named) ? named : resolve(worktree, named);
  return (await git(worktree, ['rev-parse', '--absolute-git-dir'])).stdout.trim();
}

/**
 * Fast-forwards `ref`, checked out in `worktree`, from `from` to `to`, file by file (see
 * above). Refused, with git's words and paths, where git would refuse: a file it would
 * replace or remove is not clean, an untracked file is in the way. Files an edit kept
 * aside go under `asideDir`.
 */
export async function fastForwardCheckout(worktree: string, ref: string, from: string, to: string, asideDir: string, reflog: string): Promise<CheckoutUpdate> {
  const gitDir = await worktreeGitDir(worktree);
  const list = await changes(worktree, from, to);
  const before = new Map<string, Seen>();
  for (const c of list) if (c.status !== 'A') before.set(c.path, stats(join(worktree, c.path)));
  // Checked after the stats were taken: whatever changes a file from now on changes its stats too.
  const check = await git(worktree, ['read-tree', '-n', '-m', '-u', from, to], { okExitCodes: [128] });
  if (check.exitCode !== 0) {
    const message =
      check.stderr
        .trim()
        .split('\n')[0]
        ?.replace(/^error: /, '') ?? 'git refused the update';
    return { kind: 'refused', message, paths: refusedPaths(check.stderr) };
  }

  const stage = join(gitDir, `gsync-checkout-${process.pid}`);
  // A sparse checkout has its patterns in this file; without it there is nothing sparse to respect.
  const sparse =
    existsSync(join(gitDir, 'info', 'sparse-checkout')) &&
    (await git(worktree, ['config', '--bool', 'core.sparseCheckout'], { okExitCodes: [1] })).stdout.trim() === 'true';
  if (sparse || list.some((c) => c.oldMode === '160000' || c.newMode === '160000') || (await lstat(gitDir)).dev !== (await lstat(worktree)).dev) {
    const r = await git(worktree, ['merge', '--ff-only', '--no-edit', '-q', to], { okExitCodes: [1, 128] });
    if (r.exitCode !== 0) return { kind: 'refused', message: r.stderr.trim().split('\n')[0] ?? 'git refused the update', paths: refusedPaths(r.stderr) };
    return { kind: 'updated', kept: [], aside: [], byGit: true };
  }

  await rm(stage, { recursive: true, force: true });
  await mkdir(join(stage, 'old'), { recursive: true });
  const index = join(stage, 'index');
  const kept: string[] = [];
  const aside: { path: string; saved: string }[] = [];
  const pending: { path: string; file: string }[] = [];
  const placed = new Set<string>();
  try {
    // The new files, written by git (filters, modes, symlinks as a checkout would) from an index of just them, beside the checkout.
    const added = list.filter((c) => c.status !== 'D');
    if (added.length > 0) {
      const env = { GIT_INDEX_FILE: index };
      await git(worktree, ['update-index', '-z', '--index-info'], { env, input: `${added.map((c) => `${c.newMode} ${c.newOid} 0\t${c.path}`).join('\0')}\0` });
      await git(worktree, ['checkout-index', `--prefix=${join(stage, 'new')}/`, '-a'], { env });
    }

    let n = 0;
    /** Moves the checked file aside; false when it is not the file that was checked (the user's edit stays). */
    const takeAside = async (path: string): Promise<boolean> => {
      const target = join(worktree, path);
      const file = join(stage, 'old', String(n++));
      try {
        renameSync(target, file);
      } catch (error) {
        if (code(error) === 'ENOENT') {
          kept.push(path); // removed by the user meanwhile: that stands
          return false;
        }
        throw error;
      }
      if (same(stats(file), before.get(path))) {
        pending.push({ path, file });
        return true;
      }
      kept.push(path);
      try {
        linkSync(file, target);
        unlinkSync(file);
      } catch (error) {
        if (code(error) !== 'EEXIST') throw error;
        aside.push({ path, saved: await saveAside(file, asideDir, path) });
      }
      return false;
    };
    const folders = new Set<string>();
    const place = (path: string): void => {
      const target = join(worktree, path);
      const folder = dirname(target);
      if (!folders.has(folder)) {
        try {
          mkdirSync(folder, { recursive: true });
        } catch {
          // a file in the way: link says so below
        }
        folders.add(folder);
      }
      try {
        linkSync(join(stage, 'new', path), target);
        unlinkSync(join(stage, 'new', path));
      } catch (error) {
        if (code(error) !== 'EEXIST' && code(error) !== 'ENOTDIR' && code(error) !== 'EISDIR') throw error;
        kept.push(path); // the user put something there meanwhile
      }
    };

    // Removals first (a file may become a folder), then what is new or changed.
    const removed = list.filter((c) => c.status === 'D');
    for (const c of removed) await takeAside(c.path);
    const ancestors = (path: string): string[] => (dirname(path) === '.' ? [] : [dirname(path), ...ancestors(dirname(path))]);
    for (const folder of [...new Set(removed.flatMap((c) => ancestors(c.path)))].sort((a, b) => b.length - a.length)) {
      try {
        rmdirSync(join(worktree, folder));
      } catch {
        // not empty: the user's files, or ones the merge keeps
      }
    }
    for (const c of list) {
      if (c.status === 'D') continue;
      if (c.status === 'A' || (await takeAside(c.path))) {
        place(c.path);
        placed.add(c.path);
      }
    }
    // A save through a handle opened before the swap lands in the old file: keep that one.
    for (const p of pending) {
      if (same(stats(p.file), before.get(p.path))) unlinkSync(p.file);
      else aside.push({ path: p.path, saved: await saveAside(p.file, asideDir, p.path) });
    }

    // The index takes the merged entries of exactly these paths; what the user staged elsewhere stays.
    const entries = list.map((c) => (c.status === 'D' ? `0 ${'0'.repeat(c.newOid.length)} 0\t${c.path}` : `${c.newMode} ${c.newOid} 0\t${c.path}`));
    await git(worktree, ['update-index', '-z', '--index-info'], { input: `${entries.join('\0')}\0` });
    await git(worktree, ['update-index', '-q', '--refresh'], { okExitCodes: [1] });
    await git(worktree, ['update-ref', '-m', reflog, ref, to, from]);
    return { kind: 'updated', kept: [...new Set(kept)].sort(), aside, byGit: false };
  } catch (error) {
    // Stopped half-way: a file moved aside and not yet replaced goes back where it was.
    for (const p of pending) {
      try {
        if (!placed.has(p.path)) linkSync(p.file, join(worktree, p.path));
      } catch {
        // the user's file is there: it stays
      }
    }
    throw error;
  } finally {
    // Old files still here are unchanged copies of what `from` holds; anything else was saved aside above.
    if (existsSync(stage)) await rm(stage, { recursive: true, force: true });
  }
}
