import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { GitError, ProtocolError, gitOps, parseBundleHeader, type BundleHeader, type TaskManifest } from '@gsync/core';
import { checkName } from '@gsync/core';
import { withLock } from './file-lock.js';
import { expandHome } from './paths.js';

/**
 * The node's object cache: one bare repository per project that keeps every base
 * and result it has seen, so the controller needs to send only what changed. Task
 * checkouts are worktrees of it: they cost their files, the objects are shared, and
 * a worktree's HEAD keeps what it uses safe from any gc of the cache.
 */
export function cacheDir(workRoot: string, project: string): string {
  return join(expandHome(workRoot), checkName('project', project), 'cache.git');
}

/** The cache of the project a task dir belongs to (`<work_root>/<project>/tasks/<id>`). */
export function cacheOfTask(taskDir: string): string {
  return join(dirname(dirname(taskDir)), 'cache.git');
}

/** The refs that pin what a task was sent. */
export function taskRefs(taskId: string): { base: string; merge: string } {
  return { base: `refs/gsync/tasks/${taskId}/base`, merge: `refs/gsync/tasks/${taskId}/merge` };
}

/**
 * Runs `fn` as the only process changing the cache's worktrees. `git worktree prune` run
 * while another task's `worktree add` is half way deletes that worktree's admin dir, and
 * two adds of checkouts with the same folder name race for one admin name.
 */
export function withWorktrees<T>(cache: string, fn: () => Promise<T>): Promise<T> {
  return withLock(join(cache, 'gsync-worktrees.lock'), fn);
}

/** At most this many commits are offered to the controller as already here. */
const MAX_HAVES = 64;

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Makes the cache if there is none. Two tasks may arrive at once: each builds one aside, the first rename wins. */
export async function openCache(dir: string): Promise<void> {
  if (await exists(join(dir, 'HEAD'))) return;
  await mkdir(dirname(dir), { recursive: true });
  const fresh = `${dir}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(fresh);
    await gitOps.git(fresh, ['init', '-q', '--bare', '.']);
    // Objects still used by a running task's worktree are safe from gc; an automatic gc in the middle of a fetch only costs time.
    await gitOps.setConfig(fresh, 'gc.auto', '0');
    await rename(fresh, dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(join(dir, 'HEAD')))) throw error;
    });
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
}

/**
 * The commits the cache can vouch for, newest first: those its refs point to whose
 * commit and tree are present. A missing or damaged cache has none, and the controller
 * then sends everything again.
 */
export async function cachedCommits(dir: string): Promise<string[]> {
  if (!(await exists(join(dir, 'HEAD')))) return [];
  try {
    const refs = await gitOps.git(dir, ['for-each-ref', '--sort=-committerdate', '--format=%(objectname)', 'refs/gsync/tasks/', 'refs/heads/']);
    const commits = [...new Set(refs.stdout.split('\n').filter((l) => /^[0-9a-f]{40}$/.test(l)))].slice(0, MAX_HAVES);
    if (commits.length === 0) return [];
    const types = await gitOps.objectTypes(
      dir,
      commits.flatMap((c) => [c, `${c}^{tree}`]),
    );
    return commits.filter((_, i) => types[2 * i] === 'commit' && types[2 * i + 1] === 'tree');
  } catch (error) {
    if (error instanceof GitError) return [];
    throw error;
  }
}

export type CacheOutcome = { kind: 'ready' } | { kind: 'need-full'; reason: string };

/**
 * Brings a task's code into the cache: fetches its bundle there (base and merged
 * branch under the task's own refs), or, with no bundle, pins commits the cache
 * already has. When the cache lacks what a thin bundle builds on, says so: the
 * controller then sends the whole history.
 */
export async function receiveIntoCache(dir: string, manifest: TaskManifest, bundle: string | undefined): Promise<CacheOutcome> {
  await openCache(dir);
  const refs = taskRefs(manifest.task_id);
  const wanted = [{ ref: refs.base, source: manifest.base }, ...(manifest.merge ? [{ ref: refs.merge, source: manifest.merge }] : [])];
  if (bundle) {
    const header = await readBundleHeader(bundle);
    if (header.prerequisites.length > 0) {
      // A tip the cache holds already is left out of a thin bundle (a resolution's conflicted branch that ran here): it is pinned below.
      const carried = wanted.filter((w) => header.refs.some((r) => r.ref === w.source.ref));
      const refspecs = carried.map((w) => `+${w.source.ref}:${w.ref}`);
      // A thin bundle needs the cache to be what it claimed: anything amiss and the controller sends everything.
      const verify = await gitOps.git(dir, ['bundle', 'verify', '-q', bundle], { okExitCodes: [1, 128] });
      if (verify.exitCode !== 0) return { kind: 'need-full', reason: `the object cache lacks what the bundle builds on: ${firstLine(verify.stderr)}` };
      try {
        if (refspecs.length > 0) await gitOps.fetchRefs(dir, bundle, refspecs);
      } catch (error) {
        if (!(error instanceof GitError)) throw error;
        return { kind: 'need-full', reason: `the object cache could not take the bundle: ${firstLine(error.stderr)}` };
      }
      // The fetch checks only what is new: a blob the cache lost below what it held would break the checkout.
      for (const w of wanted) {
        const missing = await cannotCheckOut(dir, w.source.commit);
        if (missing) return { kind: 'need-full', reason: missing };
        if (!carried.includes(w)) await gitOps.setRef(dir, w.ref, w.source.commit, 'gsync: task base');
      }
    } else {
      let tips: Map<string, string>;
      try {
        tips = await unbundle(dir, bundle);
      } catch (error) {
        if (!(error instanceof GitError)) throw error;
        // The whole history needs nothing from the cache: a cache that cannot take it is damaged.
        await setAside(dir);
        await openCache(dir);
        tips = await unbundle(dir, bundle);
      }
      for (const w of wanted) {
        const tip = tips.get(w.source.ref);
        if (tip !== w.source.commit)
          throw new ProtocolError(`the code sent holds ${tip ?? 'nothing'} for ${w.source.ref}, the manifest says ${w.source.commit}`);
        await gitOps.setRef(dir, w.ref, tip, 'gsync: task base');
      }
    }
  } else {
    // Plan A: the code waits on the shared remote; a node that cannot fetch it gets a bundle instead.
    if (manifest.remote && !(await gitOps.resolveCommit(dir, manifest.base.commit))) {
      const fetched = await fetchFromRemote(dir, manifest.remote, refs.base);
      if (fetched) return { kind: 'need-full', reason: fetched };
    }
    for (const w of wanted) {
      const missing = await cannotCheckOut(dir, w.source.commit);
      if (missing) return { kind: 'need-full', reason: missing };
      await gitOps.setRef(dir, w.ref, w.source.commit, 'gsync: task base');
    }
  }
  for (const w of wanted) {
    const got = await gitOps.resolveCommit(dir, w.ref);
    if (got !== w.source.commit) throw new ProtocolError(`the code sent holds ${got ?? 'nothing'} for ${w.source.ref}, the manifest says ${w.source.commit}`);
  }
  return { kind: 'ready' };
}

const firstLine = (text: string) => text.trim().split('\n')[0] ?? '';

/** The task's branch from the shared remote into the cache (that branch alone); why not, when it fails. */
async function fetchFromRemote(dir: string, remote: NonNullable<TaskManifest['remote']>, ref: string): Promise<string | undefined> {
  const auth = gitOps.tokenCredentials(remote.token_env, process.env);
  const r = await gitOps.git(
    dir,
    [...auth.args, 'fetch', '-q', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', '--', remote.url, `+${remote.branch}:${ref}`],
    {
      okExitCodes: [1, 128],
      env: auth.env,
    },
  );
  return r.exitCode === 0 ? undefined : `cannot fetch ${remote.branch} from the shared remote: ${firstLine(r.stderr) || `git exited with ${r.exitCode}`}`;
}

/**
 * Stores every object of a whole-history bundle, even those the cache says it has (a
 * fetch would skip them, and a cache that lost objects below its commits would stay
 * broken), and returns the bundle's refs and their commits.
 */
async function unbundle(dir: string, bundle: string): Promise<Map<string, string>> {
  const r = await gitOps.git(dir, ['bundle', 'unbundle', bundle]);
  const tips = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const [oid, ref] = line.split(' ');
    if (oid && ref && /^[0-9a-f]{40}$/.test(oid)) tips.set(ref, oid);
  }
  return tips;
}

/**
 * Why the cache could not check `commit` out, or undefined when it can: with no bundle
 * sent, the commit, every tree and every blob of it must be there (a cache can hold a
 * commit and have lost what is below it). Older history is not needed for a checkout.
 */
async function cannotCheckOut(dir: string, commit: string): Promise<string | undefined> {
  if (!(await gitOps.resolveCommit(dir, commit))) return `the object cache does not hold ${commit}`;
  const listed = await gitOps.git(dir, ['ls-tree', '-r', '-t', '-z', '--full-tree', commit], { okExitCodes: [128] });
  if (listed.exitCode !== 0) return `the object cache lacks a tree of ${commit}: ${firstLine(listed.stderr)}`;
  // Each record: "<mode> <type> <object>\t<path>"; submodule commits are not objects of this repository.
  const blobs = listed.stdout
    .split('\0')
    .map((record) => record.split('\t')[0]!.split(' '))
    .filter((fields) => fields[1] === 'blob')
    .map((fields) => fields[2]!);
  const types = await gitOps.objectTypes(dir, blobs);
  const lost = types.findIndex((t) => t !== 'blob');
  return lost === -1 ? undefined : `the object cache lacks ${blobs[lost]} of ${commit}`;
}

/** Whether a bundle builds on commits it does not carry (a thin one). */
async function readBundleHeader(bundle: string): Promise<BundleHeader> {
  const handle = await open(bundle, 'r');
  try {
    const buffer = Buffer.alloc(1024 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return parseBundleHeader(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/**
 * A cache that cannot take even the whole history is damaged: it is moved aside, never
 * trusted again (kept for a look, not deleted here), and a new one starts empty. Tasks
 * still running on the damaged one were reading a damaged store already.
 */
async function setAside(dir: string): Promise<void> {
  await rename(dir, `${dir}.damaged-${Date.now()}`);
}
