import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { MAX_SCAN_BYTES, ProtocolError, contentFindings, describeFindings, git, scanFile, type SecretFinding, type SecretPolicy } from '@gsync/core';

/**
 * A result's objects are checked before any of them enters the repository:
 * `index-pack --strict` writes the bundle's pack into a quarantine object
 * directory (the repository's objects visible through alternates), every
 * object is fsck'd on the way, then the changes are inspected there. Only a
 * result that passes has its pack moved into the repository.
 */
export interface Quarantine {
  dir: string;
  objects: string;
  /** Environment that makes git see the quarantined objects as well as the repository's. */
  env: Record<string, string>;
}

export interface ResultLimits {
  maxBlobBytes: number;
  maxPaths: number;
  maxCommits: number;
}

/** Per project, so a project's run (under its lock) may clear its own without touching another's sharing the repository. */
export function quarantineRoot(gitDir: string, project: string): string {
  return join(gitDir, 'gsync', 'quarantine', project);
}

export function incomingDir(gitDir: string, project: string): string {
  return join(gitDir, 'gsync', 'incoming', project);
}

/** Indexes the pack of `bundle` (from `packOffset`) into a new quarantine, strictly. */
export async function quarantinePack(repo: string, gitDir: string, project: string, bundle: string, packOffset: number): Promise<Quarantine> {
  const dir = join(quarantineRoot(gitDir, project), randomBytes(6).toString('hex'));
  const objects = join(dir, 'objects');
  await mkdir(join(objects, 'pack'), { recursive: true });
  const env = { GIT_OBJECT_DIRECTORY: objects, GIT_ALTERNATE_OBJECT_DIRECTORIES: join(gitDir, 'objects'), GIT_QUARANTINE_PATH: objects };
  const q = { dir, objects, env };
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('git', ['index-pack', '--strict', '--fix-thin', '--stdin'], {
        cwd: repo,
        env: { ...process.env, ...env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0' },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
      const fed = pipeline(createReadStream(bundle, { start: packOffset }), child.stdin).catch(() => undefined);
      child.on('error', reject);
      child.on('close', async (code) => {
        await fed;
        if (code === 0) return resolve();
        const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('fatal: index-pack failed'));
        const detail = lines.find((l) => l.startsWith('error:')) ?? lines.at(-1) ?? `index-pack exited with ${code}`;
        reject(new ProtocolError(`the bundle's objects failed the strict check: ${detail.replace(/^(error|fatal): /, '')}`));
      });
    });
    return q;
  } catch (error) {
    await dropQuarantine(q);
    throw error;
  }
}

export async function dropQuarantine(q: Quarantine): Promise<void> {
  await rm(q.dir, { recursive: true, force: true });
}

/** Moves the checked pack into the repository: the .pack first, the .idx (what makes git see it) last. */
export async function adoptQuarantine(gitDir: string, q: Quarantine): Promise<void> {
  const from = join(q.objects, 'pack');
  const to = join(gitDir, 'objects', 'pack');
  await mkdir(to, { recursive: true });
  const files = (await readdir(from)).filter((f) => /^pack-[0-9a-f]+\.(pack|rev|idx)$/.test(f));
  const order = (f: string) => (f.endsWith('.pack') ? 0 : f.endsWith('.rev') ? 1 : 2);
  for (const f of files.sort((a, b) => order(a) - order(b))) await rename(join(from, f), join(to, f));
}

/**
 * Removes what a project's collection leaves in the repository's gsync folder (quarantines
 * and downloads of a crashed run, empty folders of a finished one). Call it holding the
 * project's lock, when none of its results is being collected.
 */
export async function sweepProject(gitDir: string, project: string): Promise<void> {
  for (const dir of [quarantineRoot(gitDir, project), incomingDir(gitDir, project)]) {
    await rm(dir, { recursive: true, force: true });
    await rmdir(dirname(dir)).catch(() => undefined);
  }
}

/** One `git cat-file --batch` process answering object reads in turn. */
class ObjectReader {
  private readonly child;
  private buffer = Buffer.alloc(0);
  private waiting: { resolve: (o: { type: string; data: Buffer } | undefined) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | undefined;

  constructor(repo: string, env: Record<string, string>) {
    this.child = spawn('git', ['cat-file', '--batch'], { cwd: repo, env: { ...process.env, ...env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'ignore'] });
    this.child.stdout.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.drain();
    });
    const fail = (e: Error) => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.child.on('error', fail);
    this.child.stdin.on('error', fail);
    this.child.on('close', () => fail(new ProtocolError('git cat-file ended early while reading the result\'s trees')));
  }

  private drain(): void {
    while (this.waiting.length > 0) {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) return;
      const header = this.buffer.subarray(0, nl).toString('latin1');
      if (header.endsWith(' missing')) {
        this.buffer = this.buffer.subarray(nl + 1);
        this.waiting.shift()!.resolve(undefined);
        continue;
      }
      const [, type = '', size = '0'] = header.split(' ');
      const end = nl + 1 + Number(size);
      if (this.buffer.length < end + 1) return;
      const data = Buffer.from(this.buffer.subarray(nl + 1, end));
      this.buffer = this.buffer.subarray(end + 1);
      this.waiting.shift()!.resolve({ type, data });
    }
  }

  read(oid: string): Promise<{ type: string; data: Buffer } | undefined> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(`${oid}\n`);
    });
  }

  close(): void {
    this.child.removeAllListeners('close');
    this.child.kill('SIGKILL');
  }
}

interface TreeEntry {
  mode: string;
  name: string;
  oid: string;
}

function parseTree(data: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const nul = data.indexOf(0, space);
    entries.push({ mode: data.subarray(at, space).toString('latin1'), name: data.subarray(space + 1, nul).toString('utf8'), oid: data.subarray(nul + 1, nul + 21).toString('hex') });
    at = nul + 21;
  }
  return entries;
}

class TooMany extends Error {}

/**
 * How many paths differ between two trees, counted without expanding them: equal
 * subtrees are skipped and the size of a new subtree is computed once per tree id,
 * so a tree bomb (one subtree referenced over and over) costs a handful of reads.
 * Throws TooMany past `limit`.
 */
async function countChangedPaths(reader: ObjectReader, from: string, to: string, limit: number): Promise<number> {
  const sizes = new Map<string, number>();
  let total = 0;
  const add = (n: number) => {
    total += n;
    if (total > limit) throw new TooMany();
  };
  const entries = async (tree: string): Promise<TreeEntry[]> => {
    const o = await reader.read(tree);
    if (!o || o.type !== 'tree') throw new ProtocolError(`tree ${tree} is missing or not a tree`);
    return parseTree(o.data);
  };
  const isTree = (e: TreeEntry) => e.mode === '40000';
  const fullSize = async (tree: string): Promise<number> => {
    const known = sizes.get(tree);
    if (known !== undefined) return known;
    let n = 0;
    for (const e of await entries(tree)) {
      n += isTree(e) ? await fullSize(e.oid) : 1;
      if (n > limit) throw new TooMany();
    }
    sizes.set(tree, n);
    return n;
  };
  const diff = async (a: string, b: string): Promise<void> => {
    const left = new Map((await entries(a)).map((e) => [e.name, e]));
    for (const e of await entries(b)) {
      const old = left.get(e.name);
      left.delete(e.name);
      if (old && old.oid === e.oid && old.mode === e.mode) continue;
      if (isTree(e) && old && isTree(old)) await diff(old.oid, e.oid);
      else add((isTree(e) ? await fullSize(e.oid) : 1) + (old ? (isTree(old) ? await fullSize(old.oid) : 1) : 0));
    }
    for (const old of left.values()) add(isTree(old) ? await fullSize(old.oid) : 1);
  };
  const treeOf = async (commit: string) => {
    const o = await reader.read(`${commit}^{tree}`);
    if (!o || o.type !== 'tree') throw new ProtocolError(`commit ${commit} has no tree`);
    return o;
  };
  await treeOf(from);
  await treeOf(to);
  await diff(`${from}^{tree}`, `${to}^{tree}`);
  return total;
}

/** Files added or modified by any single commit of `head ^exclude...` (first-parent view of merges). */
async function historyChanges(repo: string, env: Record<string, string>, head: string, exclude: readonly string[]): Promise<Change[]> {
  const r = await git(repo, ['log', '--raw', '-z', '--no-renames', '--no-abbrev', '--format=', '--diff-merges=first-parent', head, ...exclude], { env });
  const fields = r.stdout.split('\0');
  const out: Change[] = [];
  for (let i = 0; i < fields.length; i++) {
    const header = fields[i]!.replace(/^\n+/, '');
    if (!header.startsWith(':')) continue;
    const [, newMode = '', , newOid = '', status = ''] = header.slice(1).split(' ');
    const path = fields[++i] ?? '';
    if (!ZERO.test(newOid) && status !== 'D') out.push({ status, newMode, newOid, path });
  }
  return out;
}

interface Change {
  status: string;
  newMode: string;
  newOid: string;
  path: string;
}

/** `git diff-tree -r -z` between two commits, stopping (and saying so) past `max` entries: a tree bomb never expands. */
async function listChanges(repo: string, env: Record<string, string>, from: string, to: string, max: number): Promise<Change[] | 'too many'> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', from, to], {
      cwd: repo,
      env: { ...process.env, ...env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const changes: Change[] = [];
    let rest = '';
    let pending: string | undefined;
    let stopped = false;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (stopped) return;
      const fields = (rest + chunk).split('\0');
      rest = fields.pop() ?? '';
      for (const field of fields) {
        if (pending === undefined) {
          pending = field;
          continue;
        }
        const [, newMode = '', , newOid = '', status = ''] = pending.slice(1).split(' ');
        changes.push({ status, newMode, newOid, path: field });
        pending = undefined;
        if (changes.length > max) {
          stopped = true;
          child.kill('SIGKILL');
          return;
        }
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (stopped) return resolve('too many');
      if (code !== 0) return reject(new ProtocolError(`cannot list the result's changes: ${stderr.trim().split('\n')[0] ?? code}`));
      resolve(changes);
    });
  });
}

/** Reads the given blobs (each small) through one `cat-file --batch`. */
async function readBlobs(repo: string, env: Record<string, string>, oids: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (oids.length === 0) return out;
  const r = await git(repo, ['cat-file', '--batch'], { input: `${oids.join('\n')}\n`, env, encoding: 'buffer' });
  const data = r.stdoutBuffer!;
  let at = 0;
  for (const oid of oids) {
    const nl = data.indexOf(0x0a, at);
    const [, type, size] = data.subarray(at, nl).toString('latin1').split(' ');
    if (type !== 'blob') throw new ProtocolError(`object ${oid} is not a blob`);
    const start = nl + 1;
    out.set(oid, data.subarray(start, start + Number(size)));
    at = start + Number(size) + 1;
  }
  return out;
}

const ZERO = /^0+$/;

/** A symlink target that leaves the repository, or reaches into .git. */
function symlinkEscapes(linkPath: string, target: string): boolean {
  if (target.startsWith('/') || target.includes('\0') || /^[A-Za-z]:[\\/]/.test(target)) return true;
  const joined = posix.normalize(posix.join(posix.dirname(linkPath), target.replaceAll('\\', '/')));
  return joined === '..' || joined.startsWith('../') || joined.split('/').some((s) => s.toLowerCase() === '.git');
}

function badComponent(path: string): string | undefined {
  for (const segment of path.split('/')) {
    const s = segment.toLowerCase().replace(/[. ]+$/, '');
    if (s === '.git' || s === 'git~1') return segment;
    if (segment === '..' || segment === '.' || segment === '') return segment;
  }
  return undefined;
}

export interface InspectRequest {
  repo: string;
  env: Record<string, string>;
  base: string;
  head: string;
  /** For a resolution: the conflicted task's head, already checked when it was collected. */
  mergeHead?: string | undefined;
  limits: ResultLimits;
  policy: SecretPolicy;
}

/**
 * What is wrong with a result's history and content, or undefined: the head is a
 * commit descending from the base; not too many commits or paths; no `.git`
 * component, submodule, `.gitmodules` change, escaping symlink, oversized blob,
 * or secret (by path or by content, the value never repeated).
 */
export async function inspectChanges(req: InspectRequest): Promise<string | undefined> {
  const { repo, env, base, head, limits } = req;
  const type = (await git(repo, ['cat-file', '-t', head], { env, okExitCodes: [128] })).stdout.trim();
  if (type !== 'commit') return `the result's head ${head} is ${type ? `a ${type}` : 'missing'}, not a commit`;
  const ancestor = await git(repo, ['merge-base', '--is-ancestor', base, head], { env, okExitCodes: [1] });
  if (ancestor.exitCode !== 0) return 'the result does not descend from the dispatched base';
  if (req.mergeHead) {
    // A resolution must carry the conflicted task's work, not drop it (e.g. after `git merge --abort`).
    const carried = await git(repo, ['merge-base', '--is-ancestor', req.mergeHead, head], { env, okExitCodes: [1] });
    if (carried.exitCode !== 0) return `the resolution does not contain the conflicted task's head ${req.mergeHead}: its work would be lost`;
  }
  const exclude = [base, ...(req.mergeHead ? [req.mergeHead] : [])].map((c) => `^${c}`);
  const commits = Number((await git(repo, ['rev-list', '--count', head, ...exclude], { env })).stdout.trim());
  if (commits > limits.maxCommits) return `the result has ${commits} commits, over the limit of ${limits.maxCommits} (max_result_commits)`;

  const reader = new ObjectReader(repo, env);
  try {
    await countChangedPaths(reader, base, head, limits.maxPaths);
  } catch (error) {
    if (error instanceof TooMany) return `the result changes more than ${limits.maxPaths} paths (max_result_paths): refused unexpanded, as a tree bomb would be`;
    throw error;
  } finally {
    reader.close();
  }
  const changes = await listChanges(repo, env, base, head, limits.maxPaths);
  if (changes === 'too many') return `the result changes more than ${limits.maxPaths} paths (max_result_paths): refused unexpanded, as a tree bomb would be`;
  const added = changes.filter((c) => !ZERO.test(c.newOid));
  for (const c of changes) {
    const bad = badComponent(c.path);
    if (bad !== undefined) return `the result has a path with a forbidden component "${bad}": ${q(c.path)}`;
    if (c.path === '.gitmodules' || c.path.endsWith('/.gitmodules')) return `the result changes ${q(c.path)}: submodule settings are not accepted from a node`;
  }
  for (const c of added) {
    if (c.newMode === '160000') return `the result adds a submodule (gitlink) at ${q(c.path)}: not accepted from a node`;
  }
  // Every file any commit of the result adds counts, not only the final tree: a secret
  // committed and deleted again would still sit in main's history.
  const historic = await historyChanges(repo, env, head, exclude);
  const everything = [...added, ...historic.filter((h) => !added.some((a) => a.newOid === h.newOid && a.path === h.path))];
  const sizes = await blobSizes(repo, env, everything.map((c) => c.newOid));
  for (const c of everything) {
    const size = sizes.get(c.newOid) ?? 0;
    if (c.newMode !== '160000' && size > limits.maxBlobBytes) return `${q(c.path)} is ${size} bytes, over the ${limits.maxBlobBytes}-byte limit for one file (max_blob_bytes)`;
  }
  const links = added.filter((c) => c.newMode === '120000');
  for (const c of links) {
    if ((sizes.get(c.newOid) ?? 0) > MAX_LINK_BYTES) return `${q(c.path)} is a symlink with a ${sizes.get(c.newOid)}-byte target: not a path`;
  }
  const linkTargets = await readBlobs(repo, env, [...new Set(links.map((c) => c.newOid))]);
  for (const c of links) {
    const target = linkTargets.get(c.newOid)?.toString('utf8') ?? '';
    if (symlinkEscapes(c.path, target)) return `${q(c.path)} is a symlink pointing outside the repository (or into .git)`;
  }

  const findings: SecretFinding[] = [];
  const scannable = everything.filter((c) => c.newMode !== '120000' && c.newMode !== '160000' && (sizes.get(c.newOid) ?? 0) <= MAX_SCAN_BYTES);
  for (let i = 0; i < scannable.length; ) {
    const batch: Change[] = [];
    let bytes = 0;
    while (i < scannable.length && (batch.length === 0 || bytes < BATCH_BYTES)) {
      bytes += sizes.get(scannable[i]!.newOid) ?? 0;
      batch.push(scannable[i++]!);
    }
    const blobs = await readBlobs(repo, env, [...new Set(batch.map((c) => c.newOid))]);
    for (const c of batch) findings.push(...scanFile(c.path, blobs.get(c.newOid), req.policy));
  }
  for (const c of everything.filter((c) => (sizes.get(c.newOid) ?? 0) > MAX_SCAN_BYTES)) findings.push(...scanFile(c.path, undefined, req.policy));
  // Commit messages travel too.
  const messages = (await git(repo, ['log', '--format=%H%n%B%x00', head, ...exclude], { env })).stdout.split('\0');
  for (const m of messages) {
    const nl = m.trimStart().indexOf('\n');
    if (nl < 0) continue;
    const body = m.trimStart();
    findings.push(...contentFindings(`commit ${body.slice(0, 12)} message`, Buffer.from(body.slice(nl + 1)), req.policy));
  }
  if (findings.length > 0) return `the result carries ${describeFindings(findings)}`;
  return undefined;
}

/** No real symlink target is longer than a path can be. */
const MAX_LINK_BYTES = 4096;
const q = (path: string) => JSON.stringify(path);
const BATCH_BYTES = 64 * 1024 * 1024;

async function blobSizes(repo: string, env: Record<string, string>, oids: readonly string[]): Promise<Map<string, number>> {
  const unique = [...new Set(oids)];
  const sizes = new Map<string, number>();
  if (unique.length === 0) return sizes;
  const r = await git(repo, ['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize)'], { input: `${unique.join('\n')}\n`, env });
  for (const line of r.stdout.split('\n')) {
    const [oid, type, size] = line.split(' ');
    if (oid && type) sizes.set(oid, type === 'blob' ? Number(size) : Number.MAX_SAFE_INTEGER);
  }
  return sizes;
}

