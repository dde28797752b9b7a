import { createHash } from 'node:crypto';
import { type Dirent, createReadStream, createWriteStream, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readlink, rm, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import ignore, { type Ignore } from 'ignore';
import { extract, pack } from 'tar-stream';
import { addFileEntry } from './tar-file.js';
import { FILES, ProtocolError, newFindings, safeTreePath, scanFile, sha256File, writeJsonAtomic, type FileRef, type TaskManifest } from '@gsync/core';

/**
 * The scp mode on the node: the code arrives as a tar of the base's files and the agent
 * works on plain files, so the node needs no git. What the agent changed goes back as a
 * tar of those files under their full paths, with the list of what it deleted; the
 * controller makes the commit. What git would leave out is left out here too: files
 * .gitignore matches that the base did not have, `.git` folders, and anything but
 * regular files and symlinks.
 */

/** A file of the base as the node extracted it: git's mode and the sha256 of its content (a link's target). */
export interface BaseFile {
  mode: FileMode;
  sha256: string;
}
export type FileMode = '100644' | '100755' | '120000';

/** base-files.json: every file of the base, with its size and mtime (ns) as extracted. */
export interface BaseFiles {
  files: Record<string, BaseFile>;
  stats: Record<string, { size: number; mtime_ns: string }>;
  /**
   * When the snapshot was taken, on the file system's own clock (base-files.json's
   * mtime): a file whose mtime is before it is judged by size and mtime, the rest by
   * content, as git judges a racily clean file.
   */
  taken_ns?: string;
}

const modeOf = (mode: number): FileMode => (mode & 0o100 ? '100755' : '100644');

/** Files larger than this are streamed to disk; smaller ones are written in one call. */
const BIG_FILE = 8 * 1024 * 1024;

/**
 * Extracts tree.tar into `repo` (which must not exist): regular files and symlinks only,
 * every path checked, no file written twice, and links made last, so no entry is ever
 * written through a link. Returns the snapshot the changes are later judged against.
 */
export async function extractTree(tarFile: string, repo: string, maxBytes: number): Promise<BaseFiles> {
  await mkdir(repo);
  const made = new Set<string>([repo]);
  const makeDir = (dir: string) => {
    if (made.has(dir)) return;
    mkdirSync(dir, { recursive: true });
    made.add(dir);
  };
  const files: Record<string, BaseFile> = {};
  const links: { path: string; target: string }[] = [];
  let total = 0;
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const name = header.name.replace(/\/$/, '');
      const refuse = (why: string) => {
        stream.resume();
        reject(new ProtocolError(`tree.tar: ${why}: ${JSON.stringify(name)}`));
      };
      if (header.type === 'directory') {
        stream.resume();
        next();
        return;
      }
      if (!safeTreePath(name)) return refuse('an unsafe path');
      if (name in files || links.some((l) => l.path === name)) return refuse('a path given twice');
      if (header.type === 'symlink') {
        const target = header.linkname ?? '';
        links.push({ path: name, target });
        files[name] = { mode: '120000', sha256: createHash('sha256').update(target).digest('hex') };
        stream.resume();
        next();
        return;
      }
      if (header.type !== 'file') return refuse(`an entry of type ${header.type}`);
      const size = header.size ?? 0;
      total += size;
      if (total > maxBytes) return refuse(`more than ${maxBytes} bytes of files`);
      const hash = createHash('sha256');
      const path = join(repo, name);
      const mode = modeOf(header.mode ?? 0o644);
      const done = () => {
        files[name] = { mode, sha256: hash.digest('hex') };
        next();
      };
      try {
        makeDir(dirname(path));
      } catch (error) {
        return refuse(`cannot make its folder (${(error as NodeJS.ErrnoException).code})`);
      }
      const fileMode = mode === '100755' ? 0o755 : 0o644;
      if (size > BIG_FILE) {
        const tee = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            cb(null, chunk);
          },
        });
        pipeline(stream, tee, createWriteStream(path, { flags: 'wx', mode: fileMode })).then(done, reject);
        return;
      }
      // Most files are small: one synchronous write each is many times quicker than a stream each.
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        chunks.push(chunk);
      });
      stream.on('error', reject);
      stream.on('end', () => {
        try {
          writeFileSync(path, Buffer.concat(chunks), { flag: 'wx', mode: fileMode });
        } catch (error) {
          reject(error);
          return;
        }
        done();
      });
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  await Promise.all([pipeline(createReadStream(tarFile), tar), done]);
  for (const link of links) {
    await mkdir(dirname(join(repo, link.path)), { recursive: true });
    await symlink(link.target, join(repo, link.path));
  }
  const stats: BaseFiles['stats'] = {};
  for (const path of Object.keys(files)) {
    const s = lstatSync(join(repo, path), { bigint: true });
    stats[path] = { size: Number(s.size), mtime_ns: s.mtimeNs.toString() };
  }
  return { files, stats };
}

/** One path the agent wrote: what goes into the result tar. */
export interface Written {
  path: string;
  mode: FileMode;
}

export interface FileChanges {
  written: Written[];
  deleted: string[];
}

/** The .gitignore rules in force in one folder: its own and its parents', deepest first. */
interface Rules {
  dir: string;
  ig: Ignore;
}

async function rulesOf(repo: string, dir: string, parent: readonly Rules[]): Promise<readonly Rules[]> {
  let text: string | undefined;
  try {
    text = readFileSync(join(repo, dir, '.gitignore'), 'utf8');
  } catch {
    text = undefined;
  }
  return text === undefined ? parent : [{ dir, ig: ignore().add(text) }, ...parent];
}

/** As git decides it: the deepest .gitignore that says anything about the path wins. */
function ignored(rules: readonly Rules[], path: string, isDir: boolean): boolean {
  for (const { dir, ig } of rules) {
    const rel = (dir === '' ? path : path.slice(dir.length + 1)) + (isDir ? '/' : '');
    const r = ig.test(rel);
    if (r.ignored) return true;
    if (r.unignored) return false;
  }
  return false;
}

/**
 * Compares the checkout with the base snapshot: what is new or different (content,
 * mode, file or link), and what is gone. A file whose size and mtime are unchanged and
 * older than the snapshot is unchanged, as git's index would judge it; every other file
 * is hashed.
 */
export async function changedFiles(repo: string, base: BaseFiles): Promise<FileChanges> {
  const written: Written[] = [];
  const present = new Set<string>();
  const baseDirs = new Set<string>();
  for (const path of Object.keys(base.files)) {
    for (let d = dirname(path); d !== '.'; d = dirname(d)) baseDirs.add(d);
  }
  const visit = async (dir: string, rules: readonly Rules[], onlyTracked: boolean): Promise<void> => {
    const here = onlyTracked ? rules : await rulesOf(repo, dir, rules);
    let entries: Dirent[];
    try {
      entries = readdirSync(join(repo, dir), { withFileTypes: true });
    } catch {
      entries = [];
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.name === '.git' || !safeTreePath(path)) continue;
      if (entry.isDirectory()) {
        // An ignored folder is looked into only for the files the base had there.
        const skip = onlyTracked || ignored(here, path, true);
        if (skip && !baseDirs.has(path)) continue;
        await visit(path, here, skip);
        continue;
      }
      const tracked = base.files[path];
      if (!tracked && (onlyTracked || ignored(here, path, false))) continue;
      const now = await fileState(repo, path, base, tracked);
      if (!now) continue;
      present.add(path);
      if (!tracked || tracked.mode !== now.mode || tracked.sha256 !== now.sha256) written.push({ path, mode: now.mode });
    }
  };
  await visit('', [], false);
  const deleted = Object.keys(base.files)
    .filter((p) => !present.has(p))
    .sort();
  return { written, deleted };
}

/** The mode and content hash of one path as it is now; undefined for what git would not keep (a fifo, a socket). */
async function fileState(repo: string, path: string, base: BaseFiles, tracked: BaseFile | undefined): Promise<BaseFile | undefined> {
  const file = join(repo, path);
  const s = lstatSync(file, { bigint: true, throwIfNoEntry: false });
  if (!s) return undefined;
  if (s.isSymbolicLink()) return { mode: '120000', sha256: createHash('sha256').update(readlinkSync(file)).digest('hex') };
  if (!s.isFile()) return undefined;
  const mode = modeOf(Number(s.mode));
  const then = base.stats[path];
  if (tracked && then && base.taken_ns && Number(s.size) === then.size && s.mtimeNs.toString() === then.mtime_ns && s.mtimeNs < BigInt(base.taken_ns)) {
    return { mode, sha256: tracked.sha256 };
  }
  return { mode, sha256: await sha256File(file) };
}

/** A file's content as the base had it, read from tree.tar (only wanted when a secret rule fires). */
export async function baseContent(tarFile: string, path: string): Promise<Buffer | undefined> {
  const tar = extract();
  let found: Buffer | undefined;
  tar.on('entry', (header, stream, next) => {
    if (header.name !== path) {
      stream.on('end', next).resume();
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      found = header.type === 'symlink' ? Buffer.from(header.linkname ?? '') : Buffer.concat(chunks);
      next();
    });
  });
  await pipeline(createReadStream(tarFile), tar);
  return found;
}

/**
 * Takes out of `changes` each written file the secret policy refuses (it stays on the
 * disk, never in the result), judged against the base as the git path judges it.
 */
export async function withholdFiles(
  repo: string,
  tarFile: string,
  changes: FileChanges,
  policy: NonNullable<TaskManifest['policy']>,
): Promise<{ kept: Written[]; withheld: { path: string; rule: string }[] }> {
  const kept: Written[] = [];
  const withheld: { path: string; rule: string }[] = [];
  for (const w of changes.written) {
    const file = join(repo, w.path);
    const content = w.mode === '120000' ? Buffer.from(await readlink(file)) : await readFile(file).catch(() => undefined);
    const found = scanFile(w.path, content, policy);
    const findings = found.length === 0 ? [] : newFindings(found, content, [await baseContent(tarFile, w.path)], policy);
    if (findings.length === 0) kept.push(w);
    else withheld.push({ path: w.path, rule: findings[0]!.rule });
  }
  return { kept, withheld };
}

/** Writes the written files into a tar at `out` under their full paths; its size and sha256. */
export async function packFiles(repo: string, written: readonly Written[], out: string): Promise<FileRef & { name: string }> {
  await rm(out, { force: true });
  const tar = pack();
  const file = createWriteStream(out, { flags: 'wx' });
  const sent = pipeline(tar as unknown as Readable, file);
  for (const w of written) {
    const path = join(repo, w.path);
    if (w.mode === '120000') {
      tar.entry({ name: w.path, type: 'symlink', linkname: await readlink(path), mode: 0o777 });
      continue;
    }
    await addFileEntry(tar, w.path, path, (await stat(path)).size, w.mode === '100755' ? 0o755 : 0o644);
  }
  tar.finalize();
  await sent;
  return { name: FILES.resultTree, size: (await stat(out)).size, sha256: await sha256File(out) };
}

export async function writeBaseFiles(path: string, base: BaseFiles): Promise<void> {
  await writeJsonAtomic(path, { files: base.files, stats: base.stats });
}

export async function readBaseFiles(path: string): Promise<BaseFiles> {
  const base = JSON.parse(await readFile(path, 'utf8')) as BaseFiles;
  return { ...base, taken_ns: (await stat(path, { bigint: true })).mtimeNs.toString() };
}
