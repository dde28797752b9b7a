import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { FILES, ProtocolError, TaskManifest, sha256, sha256File } from '@gsync/core';
import { cacheDir, receiveIntoCache } from './cache.js';
import { taskDir, taskPaths, tasksRoot } from './paths.js';
import { setState } from './status.js';

const ACCEPTED = new Set<string>([FILES.manifest, FILES.spec, FILES.baseBundle, FILES.tree]);

/** The task id is taken on this node by another task (another controller, or a store made anew): exit 3. */
export class TaskClash extends Error {}

export interface AcceptOptions {
  workRoot: string;
  project: string;
  taskId: string;
  input: Readable;
  maxBytes: number;
  /** The task is to run: it joins the node's queue as it lands, so its place is its accept time. */
  start?: boolean;
}

export interface AcceptResult {
  taskDir: string;
  /** False when the same task had already been accepted (a re-run after a lost answer), or not at all (need_full). */
  created: boolean;
  /** Set when the object cache lacks what the bundle builds on: nothing was kept, send the whole history. */
  need_full?: string;
}

/** Writes the three files of the tar stream into `dir`, refusing anything else. */
async function unpack(input: Readable, dir: string, maxBytes: number): Promise<void> {
  const tar = extract();
  let total = 0;
  const seen = new Set<string>();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const name = header.name;
      if (header.type !== 'file' || !ACCEPTED.has(name) || seen.has(name)) {
        stream.resume();
        reject(new ProtocolError(`unexpected entry in the task stream: ${JSON.stringify(name)}`));
        return;
      }
      seen.add(name);
      total += header.size ?? 0;
      if (total > maxBytes) {
        stream.resume();
        reject(new ProtocolError(`the task is larger than the ${maxBytes}-byte limit`));
        return;
      }
      pipeline(stream, createWriteStream(join(dir, name), { flags: 'wx' })).then(() => next(), reject);
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  await Promise.all([pipeline(input, tar), done]);
  for (const name of [FILES.manifest, FILES.spec]) if (!seen.has(name)) throw new ProtocolError(`the task stream has no ${name}`);
}

async function verify(dir: string, project: string, taskId: string): Promise<TaskManifest> {
  const paths = taskPaths(dir);
  const raw = await readFile(paths.manifest, 'utf8');
  const parsed = TaskManifest.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new ProtocolError(`${FILES.manifest} is not a valid manifest`);
  const manifest = parsed.data;
  if (manifest.project !== project || manifest.task_id !== taskId) {
    throw new ProtocolError(`${FILES.manifest} is for ${manifest.project}/${manifest.task_id}, not ${project}/${taskId}`);
  }
  const size = await stat(paths.baseBundle).then(
    (s) => s.size,
    () => undefined,
  );
  if (manifest.bundle === undefined) {
    if (size !== undefined) throw new ProtocolError(`the task stream has a ${FILES.baseBundle} its manifest does not announce`);
  } else if (size === undefined) {
    throw new ProtocolError(`the task stream has no ${FILES.baseBundle}`);
  } else if (size !== manifest.bundle.size || (await sha256File(paths.baseBundle)) !== manifest.bundle.sha256) {
    throw new ProtocolError(`${FILES.baseBundle} does not match its manifest (size or sha256): the transfer was damaged`);
  }
  const tree = await stat(paths.tree).then(
    (s) => s.size,
    () => undefined,
  );
  if ((tree === undefined) !== (manifest.tree === undefined)) {
    throw new ProtocolError(manifest.tree ? `the task stream has no ${FILES.tree}` : `the task stream has a ${FILES.tree} its manifest does not announce`);
  }
  if (manifest.tree && (manifest.bundle || manifest.remote)) throw new ProtocolError(`${FILES.manifest} sends the code both as files and through git`);
  if (manifest.tree && (tree !== manifest.tree.file.size || (await sha256File(paths.tree)) !== manifest.tree.file.sha256)) {
    throw new ProtocolError(`${FILES.tree} does not match its manifest (size or sha256): the transfer was damaged`);
  }
  if (sha256(await readFile(paths.spec)) !== manifest.spec.sha256) {
    throw new ProtocolError(`${FILES.spec} does not match its manifest: the transfer was damaged`);
  }
  return manifest;
}

/** The same task, whatever code came with it: a re-send may carry less once the first copy reached the cache. */
async function sameManifest(dir: string, incoming: string): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([readFile(join(dir, FILES.manifest), 'utf8'), readFile(join(incoming, FILES.manifest), 'utf8')]);
    const { bundle: _a, tree: _c, ...first } = JSON.parse(a) as Record<string, unknown>;
    const { bundle: _b, tree: _d, ...second } = JSON.parse(b) as Record<string, unknown>;
    return JSON.stringify(first) === JSON.stringify(second);
  } catch {
    return false;
  }
}

/** An upload cut so hard that its accept was killed leaves a hidden dir; one untouched for an hour is gone for good. */
async function sweepAbandoned(root: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!name.startsWith('.incoming-')) continue;
    const path = join(root, name);
    const age = Date.now() - (await stat(path).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age > 3600_000) await rm(path, { recursive: true, force: true });
  }
}

/**
 * Receives a task as a tar stream of task.json, spec.md and (unless the object
 * cache holds it all) base.bundle. It is unpacked and verified in a hidden temp
 * dir, its code fetched into the cache, and the dir renamed into place only when
 * whole, so the task dir either exists complete or not at all.
 */
export async function acceptTask(options: AcceptOptions): Promise<AcceptResult> {
  const root = tasksRoot(options.workRoot, options.project);
  const dir = taskDir(options.workRoot, options.project, options.taskId);
  await mkdir(root, { recursive: true });
  await sweepAbandoned(root);
  const incoming = join(root, `.incoming-${options.taskId}-${randomBytes(6).toString('hex')}`);
  await mkdir(incoming);
  try {
    await unpack(options.input, incoming, options.maxBytes);
    const manifest = await verify(incoming, options.project, options.taskId);
    const exists = await stat(dir).then(
      () => true,
      () => false,
    );
    if (exists) {
      if (await sameManifest(dir, incoming)) return { taskDir: dir, created: false };
      throw new TaskClash(`task ${options.taskId} of ${options.project} already exists on this node with another manifest`);
    }
    // The code goes into the project's object cache; the task dir keeps no copy of it. Files (the scp mode) stay in the task dir.
    if (!manifest.tree) {
      const bundle = manifest.bundle ? join(incoming, FILES.baseBundle) : undefined;
      const cache = await receiveIntoCache(cacheDir(options.workRoot, options.project), manifest, bundle);
      if (cache.kind === 'need-full') return { taskDir: dir, created: false, need_full: cache.reason };
      if (bundle) await rm(bundle);
    }
    await setState(join(incoming, FILES.status), options.start ? 'queued' : 'received');
    await rename(incoming, dir);
    return { taskDir: dir, created: true };
  } finally {
    await rm(incoming, { recursive: true, force: true });
  }
}
