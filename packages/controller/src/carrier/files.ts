import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import {
  FILES,
  GitError,
  ProtocolError,
  commitSubject,
  errorMessage,
  failpoint,
  gitOps,
  safeTreePath,
  sha256File,
  spawnGit,
  type TaskResult,
} from '@gsync/core';
import { fetchTaskFile } from '../node-api/calls.js';
import { downloadVerified } from '../result/download.js';
import { dropQuarantine, incomingDir, indexPackStrict, openQuarantine, type Quarantine } from '../result/quarantine.js';
import type { TaskRow } from '../store/store.js';
import { bundleCarrier, resultPath } from './bundle.js';
import type { Carrier, CodeParcel, IncomingResult, OutgoingCode, Receipt } from './carrier.js';

/**
 * The scp mode: code travels as plain files, for nodes without git. Out goes a tar of
 * main's tree (for a resolution, the merge of the conflicted branch with its conflict
 * markers); back comes a tar of the files the agent changed, under their full paths,
 * and the list of those it deleted. The controller makes the commit on top of the base
 * in a quarantine, and from there the result is like any other: inspected, queued,
 * merged. Results that come back as bundles (sent before a switch of mode) are
 * received as bundles.
 */
export const filesCarrier: Carrier = {
  mode: 'scp',
  send: sendFiles,
  gather: (ask) => bundleCarrier.gather(ask),
  receive: (incoming) => (incoming.result.files ? receiveFiles(incoming) : bundleCarrier.receive(incoming)),
};

interface TreeEntry {
  mode: string;
  oid: string;
  path: string;
}

/** The blobs and links of a tree, by full path; gitlinks (submodules) are not files and are left out. */
async function treeEntries(repo: string, tree: string): Promise<TreeEntry[]> {
  const r = await gitOps.git(repo, ['ls-tree', '-r', '-z', '--full-tree', tree]);
  const out: TreeEntry[] = [];
  for (const line of r.stdout.split('\0')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const [mode = '', type = '', oid = ''] = line.slice(0, tab).split(' ');
    if (type === 'blob') out.push({ mode, oid, path: line.slice(tab + 1) });
  }
  return out;
}

/**
 * Writes the files of `tree` into a tar at `out`, each blob streamed from one
 * `cat-file --batch` into its entry, so no file is ever held whole in memory.
 */
export async function writeTreeTar(repo: string, tree: string, out: string): Promise<void> {
  const entries = await treeEntries(repo, tree);
  const tar = pack();
  const written = pipeline(tar as unknown as Readable, createWriteStream(out, { flags: 'wx', mode: 0o600 }));
  const run = spawnGit(repo, ['cat-file', '--batch'], { input: Readable.from([entries.map((e) => `${e.oid}\n`).join('')]) });
  const chunks = run.stdout[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buf: Buffer = Buffer.alloc(0);
  const more = async () => {
    const next = await chunks.next();
    if (next.done) throw new ProtocolError('git cat-file ended early while reading the tree');
    buf = buf.length === 0 ? next.value : Buffer.concat([buf, next.value]);
  };
  try {
    for (const e of entries) {
      while (!buf.includes(0x0a)) await more();
      const nl = buf.indexOf(0x0a);
      const size = Number(buf.subarray(0, nl).toString('latin1').split(' ')[2]);
      buf = buf.subarray(nl + 1);
      if (e.mode === '120000') {
        while (buf.length < size + 1) await more();
        tar.entry({ name: e.path, type: 'symlink', linkname: buf.subarray(0, size).toString('utf8'), mode: 0o777 });
        buf = buf.subarray(size + 1);
        continue;
      }
      const entry = tar.entry({ name: e.path, size, mode: e.mode === '100755' ? 0o755 : 0o644 });
      const entryDone = new Promise<void>((resolve, reject) => entry.on('finish', resolve).on('error', reject));
      for (let left = size; left > 0; ) {
        if (buf.length === 0) await more();
        const piece = buf.subarray(0, Math.min(left, buf.length));
        buf = buf.subarray(piece.length);
        left -= piece.length;
        if (!entry.write(piece)) await once(entry, 'drain');
      }
      entry.end();
      await entryDone;
      while (buf.length < 1) await more();
      buf = buf.subarray(1);
    }
    tar.finalize();
    await written;
    await run.done;
  } catch (error) {
    run.stop();
    tar.destroy();
    await written.catch(() => undefined);
    throw error;
  }
}

/** main's tree as files; for a resolution, the merge with conflict markers, and which paths conflict. */
async function sendFiles({ project, base, merge }: OutgoingCode): Promise<CodeParcel> {
  const repo = project.repo_local;
  let tree = `${base.commit}^{tree}`;
  let conflicted: string[] | undefined;
  if (merge) {
    const merged = await gitOps.mergeTree(repo, base.commit, merge.commit);
    tree = merged.tree;
    conflicted = merged.conflicts;
  }
  const temp = await mkdtemp(join(tmpdir(), 'gsync-dispatch-'));
  const dispose = () => rm(temp, { recursive: true, force: true });
  try {
    const path = join(temp, FILES.tree);
    await writeTreeTar(repo, tree, path);
    const size = (await stat(path)).size;
    const file = { name: FILES.tree, size, sha256: await sha256File(path) };
    return {
      manifest: { tree: { file, ...(conflicted ? { conflicted } : {}) } },
      files: [{ name: FILES.tree, path, size }],
      bytes: size,
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** A path as fast-import reads it: quoted C-style when it begins with a quote or holds a line break. */
function importPath(path: string): string {
  if (!path.startsWith('"') && !path.includes('\n')) return path;
  return `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** The commit's time: when the node says the task finished, so the same result always makes the same commit. */
function commitTime(result: TaskResult): number | undefined {
  const ms = Date.parse(result.finished_at);
  return Number.isFinite(ms) && ms >= 0 ? Math.floor(ms / 1000) : undefined;
}

/**
 * Downloads result.tar (size and sha256 as announced) and makes from it, in a new
 * quarantine, one commit on the base (and, for a resolution, the conflicted branch):
 * every entry a regular file or link at a safe path that result.json lists, each path
 * once, and the written and deleted paths exactly the changed ones.
 */
async function receiveFiles({ project, node, task, result, transport, gitDir, scratch, arrived }: IncomingResult): Promise<Receipt> {
  if (arrived && 'problem' in arrived) return { kind: 'rejected', reason: arrived.problem };
  const files = result.files!;
  const time = commitTime(result);
  if (time === undefined) return { kind: 'rejected', reason: 'result.json: finished_at is not a time' };
  const changed = new Set(result.changed_paths);
  const deleted = new Set(files.deleted);
  const unsafe = [...changed].find((p) => !safeTreePath(p));
  if (unsafe !== undefined) return { kind: 'rejected', reason: `result.json lists an unsafe path: ${JSON.stringify(unsafe)}` };
  if (changed.size !== result.changed_paths.length || deleted.size !== files.deleted.length || files.deleted.some((p) => !changed.has(p))) {
    return { kind: 'rejected', reason: 'result.json: the deleted paths are not a part of the changed paths, each once' };
  }
  await mkdir(incomingDir(gitDir, scratch), { recursive: true });
  const download = resultPath(gitDir, scratch, task, result);
  let q: Quarantine | undefined;
  try {
    if (!arrived) await downloadVerified(download, files.file, (out) => fetchTaskFile(transport, node, task.project, task.task_id, FILES.resultTree, out));
    failpoint('pull:after-download');
    q = await openQuarantine(gitDir, scratch);
    // fast-import builds the commit in a repository of its own beside the quarantine, borrowing the real one's objects.
    const build = join(q.dir, 'build.git');
    await gitOps.git(q.dir, ['init', '-q', '--bare', build]);
    await mkdir(join(build, 'objects', 'info'), { recursive: true });
    await writeFile(join(build, 'objects', 'info', 'alternates'), `${join(gitDir, 'objects')}\n`);
    const mergeTree = task.merge_head ? (await gitOps.mergeTree(project.repo_local, task.base_commit, task.merge_head)).tree : undefined;
    const head = await importFiles(build, download, { task, result, time, changed, deleted, mergeTree });
    // Its new objects then pass git's fsck as a bundle's do: `index-pack --strict` takes them into the quarantine.
    // (fast-import writes no object the repository has: a pull cut short after adopting them leaves nothing new.)
    const pack = await newPack(build);
    if (pack) await indexPackStrict(project.repo_local, q, pack, 0);
    await rm(build, { recursive: true, force: true });
    const unlisted = await unlistedChange(project.repo_local, q, mergeTree ?? task.base_commit, head, changed);
    if (unlisted !== undefined) throw new ProtocolError(`the result's files change ${JSON.stringify(unlisted)}, which result.json does not list as changed`);
    return { kind: 'quarantined', quarantine: q, head };
  } catch (error) {
    if (q) await dropQuarantine(q);
    if (error instanceof ProtocolError) return { kind: 'rejected', reason: error.message };
    throw error;
  } finally {
    await rm(download, { force: true });
  }
}

/** The pack fast-import wrote, if it had anything new to write. */
async function newPack(repo: string): Promise<string | undefined> {
  const dir = join(repo, 'objects', 'pack');
  const packs = (await readdir(dir)).filter((f) => f.endsWith('.pack'));
  if (packs.length > 1) throw new ProtocolError(`the result's files made ${packs.length} packs, not one`);
  return packs[0] && join(dir, packs[0]);
}

/**
 * A path the commit changes that result.json does not list, if any: a file written where
 * a listed file's folder was (or under a file's name) deletes what was there, and that
 * must be listed too. Listed paths git sees no change in (a mode git does not keep) are fine.
 */
async function unlistedChange(repo: string, q: Quarantine, from: string, head: string, changed: ReadonlySet<string>): Promise<string | undefined> {
  const diff = await gitOps.git(repo, ['diff-tree', '-r', '--no-renames', '--name-only', '-z', from, head], { env: q.env });
  return diff.stdout.split('\0').find((p) => p !== '' && !changed.has(p));
}

interface ImportPlan {
  task: TaskRow;
  result: TaskResult;
  time: number;
  changed: ReadonlySet<string>;
  deleted: ReadonlySet<string>;
  /** A resolution: the tree the node was sent (the merge, conflict markers and all). */
  mergeTree?: string | undefined;
}

/** Streams the tar into `git fast-import` as one commit; the commit's id. */
async function importFiles(repo: string, tarFile: string, plan: ImportPlan): Promise<string> {
  const { task, result } = plan;
  const name = `gsync agent on ${task.node}`;
  const who = `${name} <gsync@${task.node}.invalid> ${plan.time} +0000`;
  const subject = commitSubject(task.task_id, task.spec_title) + (result.wip ? ' (work in progress)' : '');
  const body = [`Node: ${task.node}`, `Spec sha256: ${task.spec_sha256}`, `Agent exit code: ${result.agent_exit_code ?? 'none'}`];
  const message = Buffer.from(`${subject}\n\n${body.join('\n')}\n`);
  const ref = 'refs/gsync/result';
  const run = spawnGit(repo, ['-c', 'fastimport.unpackLimit=0', 'fast-import', '--quiet', '--done']);
  run.stdout.resume();
  const stdin = run.stdin;
  const send = async (data: Buffer | string) => {
    if (!stdin.write(data)) await Promise.race([once(stdin, 'drain'), run.done]);
  };
  const feeding = (async () => {
    await send(`commit ${ref}\nauthor ${who}\ncommitter ${who}\ndata ${message.length}\n`);
    await send(message);
    await send(`\nfrom ${task.base_commit}\n`);
    // A resolution's files were the merge with its conflict markers: the changes are on top of that tree.
    if (plan.mergeTree) await send(`merge ${task.merge_head}\nM 040000 ${plan.mergeTree} ""\n`);
    for (const path of plan.deleted) await send(`D ${importPath(path)}\n`);
    const seen = await streamEntries(tarFile, plan, async (path, mode, body) => {
      await send(`M ${mode} inline ${importPath(path)}\ndata ${body.size}\n`);
      for await (const chunk of body.data) await send(chunk as Buffer);
      await send('\n');
    });
    const missing = [...plan.changed].find((p) => !plan.deleted.has(p) && !seen.has(p));
    if (missing !== undefined) throw new ProtocolError(`result.tar lacks ${JSON.stringify(missing)}, which result.json lists as changed`);
    await send('done\n');
    stdin.end();
  })();
  try {
    await feeding;
    await run.done;
  } catch (error) {
    run.stop();
    await run.done.catch(() => undefined);
    if (error instanceof GitError) throw new ProtocolError(`the result's files cannot make a commit: ${errorMessage(error).split('\n')[0]}`);
    throw error;
  }
  const head = await gitOps.resolveCommit(repo, ref);
  if (!head) throw new ProtocolError("the result's files made no commit");
  return head;
}

type Body = { size: number; data: AsyncIterable<unknown> | Iterable<unknown> };

/** Each entry of the result tar, checked, in order; the paths seen. */
async function streamEntries(tarFile: string, plan: ImportPlan, take: (path: string, mode: string, body: Body) => Promise<void>): Promise<Set<string>> {
  const seen = new Set<string>();
  const tar = extract();
  const source = createReadStream(tarFile);
  source.pipe(tar as unknown as Writable);
  const entries = tar[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await entries.next().catch((error: unknown) => {
        throw new ProtocolError(`result.tar cannot be read: ${errorMessage(error)}`);
      });
      if (next.done) return seen;
      await takeEntry(next.value, plan, seen, take);
    }
  } finally {
    source.destroy();
    tar.destroy();
  }
}

async function takeEntry(
  entry: Readable & { header: import('tar-stream').Headers },
  plan: ImportPlan,
  seen: Set<string>,
  take: (path: string, mode: string, body: Body) => Promise<void>,
): Promise<void> {
  {
    const header = entry.header;
    const path = header.name;
    const fail = (why: string) => new ProtocolError(`result.tar: ${why}: ${JSON.stringify(path.slice(0, 200))}`);
    if (!safeTreePath(path)) throw fail('an unsafe path');
    if (!plan.changed.has(path) || plan.deleted.has(path)) throw fail('a path result.json does not list as written');
    if (seen.has(path)) throw fail('a path given twice');
    seen.add(path);
    if (header.type === 'symlink') {
      const target = Buffer.from(header.linkname ?? '');
      entry.resume();
      await take(path, '120000', { size: target.length, data: [target] });
    } else if (header.type === 'file') {
      await take(path, (header.mode ?? 0) & 0o100 ? '100755' : '100644', { size: header.size ?? 0, data: entry });
    } else {
      throw fail(`an entry of type ${header.type}`);
    }
  }
}
