import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GitError } from './errors.js';

/**
 * One function per git operation. Every call takes the repository as `cwd`,
 * passes an argv array (never a shell string) and fails as GitError.
 */
export interface GitOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  /** Exit codes that are answers rather than failures. */
  okExitCodes?: readonly number[];
  /** Keep stdout as bytes (in `stdoutBuffer`), for blob contents. */
  encoding?: 'buffer';
  /** Killed (and failed) after this long: for git talking to a remote. */
  timeoutMs?: number;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  stdoutBuffer?: Buffer;
}

export const ZERO_OID = '0'.repeat(40);

const BASE_ENV = { LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' };

/** execa is loaded on the first git call, so a command that runs no git (status) never pays for it. */
let execaModule: Promise<typeof import('execa')> | undefined;

export async function git(cwd: string, args: readonly string[], options: GitOptions = {}): Promise<GitResult> {
  execaModule ??= import('execa');
  const { execa } = await execaModule;
  const result = await execa('git', args, {
    cwd,
    input: options.input,
    env: { ...BASE_ENV, ...options.env },
    reject: false,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    encoding: options.encoding === 'buffer' ? 'buffer' : 'utf8',
    ...(options.timeoutMs ? { timeout: options.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
  });
  const exitCode = result.exitCode ?? -1;
  const text = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : String(v ?? ''));
  if (result.failed && !(options.okExitCodes ?? []).includes(exitCode)) {
    const stderr = text(result.stderr) || String(result.message ?? '');
    throw new GitError(args, result.exitCode, stderr, { cause: result.cause });
  }
  const stdoutBuffer = result.stdout instanceof Uint8Array ? Buffer.from(result.stdout) : undefined;
  return { stdout: stdoutBuffer ? '' : text(result.stdout), stderr: text(result.stderr), exitCode, ...(stdoutBuffer ? { stdoutBuffer } : {}) };
}

/** A git process read as it runs: for output too large to buffer, or to stop early. */
export interface GitProcess {
  stdin: Writable;
  stdout: Readable;
  /** Kills the process; `done` then resolves with `stopped: true`. */
  stop(): void;
  /** Resolves when it exits 0 (or was stopped), rejects with GitError otherwise. */
  done: Promise<{ stopped: boolean }>;
}

export interface GitProcessOptions {
  env?: Record<string, string>;
  /** Fed to stdin, then EOF; without it stdin stays open for the caller. */
  input?: Readable;
}

export function spawnGit(cwd: string, args: readonly string[], options: GitProcessOptions = {}): GitProcess {
  const child = spawn('git', args, { cwd, env: { ...process.env, ...BASE_ENV, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stopped = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  // A process that ends (or is stopped) before reading all its input is not an error of the writer's.
  child.stdin.on('error', () => undefined);
  const fed = options.input ? pipeline(options.input, child.stdin).catch(() => undefined) : Promise.resolve();
  const done = new Promise<{ stopped: boolean }>((resolve, reject) => {
    child.on('error', (error) => reject(new GitError(args, undefined, error.message, { cause: error })));
    child.on('close', async (code) => {
      await fed;
      if (stopped) return resolve({ stopped: true });
      if (code === 0) return resolve({ stopped: false });
      reject(new GitError(args, code ?? undefined, stderr));
    });
  });
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stop() {
      stopped = true;
      child.kill('SIGKILL');
    },
    done,
  };
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');
const nulFields = (s: string): string[] => s.split('\0').filter((l) => l !== '');

export async function gitVersion(cwd: string): Promise<string> {
  return (await git(cwd, ['--version'])).stdout.trim();
}

export async function initRepo(dir: string, branch: string): Promise<void> {
  await git(dir, ['init', '-q', `--initial-branch=${branch}`, '.']);
}

export async function setConfig(cwd: string, key: string, value: string): Promise<void> {
  await git(cwd, ['config', key, value]);
}

/** The commit a revision names, or undefined when it names none. */
export async function resolveCommit(cwd: string, rev: string): Promise<string | undefined> {
  const r = await git(cwd, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`], {
    okExitCodes: [1, 128],
  });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

export async function isAncestor(cwd: string, ancestor: string, descendant: string): Promise<boolean> {
  const r = await git(cwd, ['merge-base', '--is-ancestor', ancestor, descendant], { okExitCodes: [1] });
  return r.exitCode === 0;
}

export async function countCommits(cwd: string, range: readonly string[]): Promise<number> {
  return Number((await git(cwd, ['rev-list', '--count', ...range])).stdout.trim());
}

export async function changedPaths(cwd: string, from: string, to: string): Promise<string[]> {
  return nulFields((await git(cwd, ['diff', '--name-only', '--no-renames', '-z', from, to, '--'])).stdout);
}

export async function addAll(cwd: string): Promise<void> {
  await git(cwd, ['add', '-A', '--', '.']);
}

/** Paths added or modified in the index against HEAD (deletions carry nothing to check). */
export async function stagedFiles(cwd: string): Promise<string[]> {
  return nulFields((await git(cwd, ['diff', '--cached', '--name-only', '--no-renames', '--diff-filter=AMT', '-z'])).stdout);
}

/** Puts a path's index entry back as HEAD has it (out of the index when HEAD has none), leaving the file on disk. */
export async function unstage(cwd: string, path: string): Promise<void> {
  await git(cwd, ['--literal-pathspecs', 'reset', '-q', '--', path]);
}

export async function hasStagedChanges(cwd: string): Promise<boolean> {
  return (await git(cwd, ['diff', '--cached', '--quiet'], { okExitCodes: [1] })).exitCode === 1;
}

export async function commit(cwd: string, message: string, env?: Record<string, string>): Promise<void> {
  await git(cwd, ['-c', 'core.hooksPath=/dev/null', 'commit', '-q', '--no-verify', '-F', '-'], { input: message, env });
}

export async function checkoutNewBranch(cwd: string, branch: string, startPoint: string): Promise<void> {
  await git(cwd, ['checkout', '-q', '-b', branch, startPoint]);
}

export async function createBundle(cwd: string, file: string, revs: readonly string[]): Promise<void> {
  await git(cwd, ['bundle', 'create', '-q', file, ...revs]);
}

/** Fetches exactly the given refspecs, no tags, no FETCH_HEAD. */
export async function fetchRefs(cwd: string, source: string, refspecs: readonly string[]): Promise<void> {
  await git(cwd, ['fetch', '-q', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', source, ...refspecs]);
}

export async function updateRef(cwd: string, ref: string, newOid: string, oldOid: string, reason: string): Promise<void> {
  await git(cwd, ['update-ref', '-m', reason, ref, newOid, oldOid]);
}

/** The type of each object named (`commit`, `tree`, ...), or `missing`, in order, from one `cat-file --batch-check`. */
export async function objectTypes(cwd: string, revs: readonly string[]): Promise<string[]> {
  if (revs.length === 0) return [];
  const r = await git(cwd, ['cat-file', '--batch-check=%(objecttype)'], { input: `${revs.join('\n')}\n` });
  return r.stdout
    .split('\n')
    .slice(0, revs.length)
    .map((line) => (line.endsWith(' missing') ? 'missing' : line));
}

/** Points `ref` at `newOid` whatever it pointed to before. */
export async function setRef(cwd: string, ref: string, newOid: string, reason: string): Promise<void> {
  await git(cwd, ['update-ref', '-m', reason, ref, newOid]);
}

export async function deleteRef(cwd: string, ref: string): Promise<void> {
  await git(cwd, ['update-ref', '-d', ref]);
}

export interface MergeTreeResult {
  clean: boolean;
  tree: string;
  conflicts: string[];
  messages: string[];
}

/** `merge-tree --write-tree` of two commit ids (resolve them first: it exits 1 for unknown refs too). */
export async function mergeTree(cwd: string, ours: string, theirs: string): Promise<MergeTreeResult> {
  const r = await git(cwd, ['merge-tree', '--write-tree', '-z', '--name-only', ours, theirs], { okExitCodes: [1] });
  return parseMergeTree(r.stdout, r.exitCode === 0);
}

export function parseMergeTree(stdout: string, clean: boolean): MergeTreeResult {
  const fields = stdout.split('\0');
  const tree = fields.shift() ?? '';
  const conflicts: string[] = [];
  const messages: string[] = [];
  if (!clean) {
    while (fields.length > 0 && fields[0] !== '') conflicts.push(fields.shift()!);
    fields.shift();
    // Each message: <count>\0<path>...\0<type>\0<text>\0
    while (fields.length > 0 && /^\d+$/.test(fields[0] ?? '')) {
      const count = Number(fields.shift());
      fields.splice(0, count);
      fields.shift();
      const text = fields.shift();
      if (text !== undefined) messages.push(text.trim());
    }
  }
  return { clean, tree, conflicts: [...new Set(conflicts)], messages };
}

export async function commitTree(cwd: string, tree: string, parents: readonly string[], message: string, env?: Record<string, string>): Promise<string> {
  const args = ['commit-tree', tree, ...parents.flatMap((p) => ['-p', p])];
  return (await git(cwd, args, { input: message, env })).stdout.trim();
}

export interface Worktree {
  path: string;
  head: string | undefined;
  branch: string | undefined;
  bare: boolean;
}

export async function listWorktrees(cwd: string): Promise<Worktree[]> {
  const out = (await git(cwd, ['worktree', 'list', '--porcelain', '-z'])).stdout;
  const result: Worktree[] = [];
  let current: Worktree | undefined;
  for (const field of out.split('\0')) {
    if (field === '') {
      if (current) result.push(current);
      current = undefined;
      continue;
    }
    const [key, ...rest] = field.split(' ');
    const value = rest.join(' ');
    if (key === 'worktree') current = { path: value, head: undefined, branch: undefined, bare: false };
    else if (current && key === 'HEAD') current.head = value;
    else if (current && key === 'branch') current.branch = value;
    else if (current && key === 'bare') current.bare = true;
  }
  if (current) result.push(current);
  return result;
}

/** Moves the checked-out branch of `worktree` forward; git refuses if that would touch uncommitted work. */
export async function mergeFastForward(worktree: string, commitId: string): Promise<GitResult> {
  return git(worktree, ['merge', '--ff-only', '--no-edit', '-q', commitId], { okExitCodes: [1, 128] });
}

/** Starts a merge of `commitId` into HEAD without committing; conflicts are left in the worktree (exit 1). */
export async function mergeNoCommit(cwd: string, commitId: string, env?: Record<string, string>): Promise<{ conflicted: boolean; output: string }> {
  const r = await git(cwd, ['-c', 'core.hooksPath=/dev/null', 'merge', '--no-ff', '--no-commit', '--no-edit', commitId], { env, okExitCodes: [1] });
  return { conflicted: r.exitCode === 1, output: `${r.stdout}${r.stderr}` };
}

/** Paths with unmerged index entries. */
export async function unmergedPaths(cwd: string): Promise<string[]> {
  return [...new Set(nulFields((await git(cwd, ['diff', '--name-only', '--diff-filter=U', '-z'])).stdout))];
}

export async function isMerging(cwd: string): Promise<boolean> {
  return (await resolveCommit(cwd, 'MERGE_HEAD')) !== undefined;
}

/** The bytes of `path` in `tree`, or undefined when the tree has no blob there. */
export async function readBlob(cwd: string, tree: string, path: string): Promise<Buffer | undefined> {
  const r = await git(cwd, ['cat-file', 'blob', `${tree}:${path}`], { encoding: 'buffer', okExitCodes: [128] });
  return r.exitCode === 0 ? r.stdoutBuffer : undefined;
}

/**
 * A throw-away checkout of `commitId` in `dir`: a clone that borrows the objects of
 * `repo` (alternates) and has refs of its own, so nothing run in it can move a ref of `repo`.
 */
export async function checkoutCopy(repo: string, dir: string, commitId: string): Promise<void> {
  await git(repo, ['clone', '-q', '--shared', '--no-checkout', '--no-tags', '--', repo, dir]);
  await git(dir, ['-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', commitId]);
}

/**
 * The repository's own git dir, where its objects and refs live: for a linked worktree,
 * the common one (its per-worktree dir holds neither).
 */
export async function gitDir(cwd: string): Promise<string> {
  return (await git(cwd, ['rev-parse', '--path-format=absolute', '--git-common-dir'])).stdout.trim();
}

/** What is under way in a worktree that keeps its branch busy: a rebase, bisect, merge, cherry-pick or revert, or nothing. */
export async function operationInProgress(worktree: string, branchRef: string): Promise<string | undefined> {
  const dir = (await git(worktree, ['rev-parse', '--absolute-git-dir'])).stdout.trim();
  const read = (name: string) =>
    readFile(join(dir, name), 'utf8').then(
      (t) => t.trim(),
      () => undefined,
    );
  const short = branchRef.replace(/^refs\/heads\//, '');
  for (const name of ['rebase-merge/head-name', 'rebase-apply/head-name']) if ((await read(name)) === branchRef) return 'a rebase';
  const bisect = await read('BISECT_START');
  if (bisect === short || bisect === branchRef) return 'a bisect';
  const head = (await read('HEAD')) ?? '';
  if (head !== `ref: ${branchRef}`) return undefined;
  for (const [name, what] of [
    ['MERGE_HEAD', 'a merge'],
    ['CHERRY_PICK_HEAD', 'a cherry-pick'],
    ['REVERT_HEAD', 'a revert'],
  ] as const) {
    if ((await read(name)) !== undefined) return what;
  }
  return undefined;
}

export async function hasIdentity(cwd: string): Promise<boolean> {
  return (await git(cwd, ['var', 'GIT_COMMITTER_IDENT'], { okExitCodes: [128] })).exitCode === 0;
}

export { lines as splitLines };

/**
 * What git needs to authenticate to a remote with a token kept in an environment
 * variable: a credential helper whose text is a constant (the token is read from the
 * environment when git asks, so it never appears in an argument, a config file or a
 * URL), and that environment. Nothing when there is no such variable.
 */
export function tokenCredentials(tokenEnv: string | undefined, env: NodeJS.ProcessEnv): { args: string[]; env: Record<string, string> } {
  const token = tokenEnv ? env[tokenEnv] : undefined;
  if (!token) return { args: [], env: {} };
  const helper = `!f() { test "$1" = get && printf 'username=x-access-token\\npassword=%s\\n' "$GSYNC_REMOTE_TOKEN"; }; f`;
  return { args: ['-c', 'credential.helper=', '-c', `credential.helper=${helper}`], env: { GSYNC_REMOTE_TOKEN: token } };
}
