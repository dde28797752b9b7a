import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gitOps, treeBytes } from '@gsync/core';
import type { ProjectConfig } from '../config.js';
import { openQuarantine, dropQuarantine, type Quarantine } from '../result/quarantine.js';
import { bundleCarrier } from './bundle.js';
import type { Carrier, CodeParcel, IncomingResult, OutgoingCode, Receipt } from './carrier.js';

/**
 * Plan A: code travels through a shared remote (the project's repo_url). Out, the
 * controller pushes main's commit to the task branch there and the node fetches that
 * branch alone; back, the node pushes the task branch and the controller fetches it
 * into a quarantine, where it is checked exactly like a bundle. Where the remote fails
 * (the controller cannot push, the node cannot fetch or push), the task travels as a
 * bundle over the SSH connection instead, and says so (`downgraded`).
 */
export const remoteCarrier: Carrier = {
  mode: 'git',
  send: sendViaRemote,
  gather: (ask) => bundleCarrier.gather(ask),
  receive: receiveFromRemote,
};

/** A fetch or push to the remote that takes longer than this is given up (and the bundle used). */
const REMOTE_SECONDS = 600;

export function remoteUrl(project: ProjectConfig): string {
  return project.repo_url!;
}

/** git with the remote's token, when the project names one (see tokenCredentials): never in an argument. */
function remoteGit(project: ProjectConfig, cwd: string, args: readonly string[]) {
  const auth = gitOps.tokenCredentials(project.token_env, process.env);
  return gitOps.git(cwd, [...auth.args, ...args], { okExitCodes: [1, 2, 128], timeoutMs: REMOTE_SECONDS * 1000, env: auth.env });
}

const firstLine = (text: string, fallback: string) =>
  text
    .trim()
    .split('\n')
    .find((l) => /^(fatal|error|!|remote:)/.test(l.trim())) ??
  (text.trim().split('\n')[0] || fallback);

async function sendViaRemote(code: OutgoingCode): Promise<CodeParcel> {
  // A resolution also carries the conflicted branch, and a node that could not fetch needs it all: both go as bundles.
  if (code.merge || code.fallback) return bundleCarrier.send(code);
  const url = remoteUrl(code.project);
  const branch = `refs/heads/${code.branch}`;
  // Only a branch that is not there yet, or already at this commit (a dispatch sent again), is written.
  const r = await remoteGit(code.project, code.project.repo_local, [
    'push',
    '-q',
    '--no-verify',
    `--force-with-lease=${branch}:`,
    '--',
    url,
    `${code.base.commit}:${branch}`,
  ]);
  if (r.exitCode !== 0) {
    const there = await remoteGit(code.project, code.project.repo_local, ['ls-remote', '--', url, branch]);
    if (!(there.exitCode === 0 && there.stdout.split('\t')[0] === code.base.commit)) {
      const parcel = await bundleCarrier.send(code);
      return { ...parcel, downgraded: `the shared remote did not take ${code.branch}: ${firstLine(r.stderr, `git push exited with ${r.exitCode}`)}` };
    }
  }
  const token_env = code.project.token_env;
  return { manifest: { remote: { url, branch, ...(token_env ? { token_env } : {}) } }, files: [], bytes: 0, dispose: async () => {} };
}

/**
 * Fetches the task branch from the remote into a new quarantine: a bare repository
 * whose object store borrows the real one's (so only the task's new objects come),
 * every object fsck'd on the way, kept as a pack. A node that could not push sent its
 * bundle instead: that one is received as Plan B does.
 */
async function receiveFromRemote(incoming: IncomingResult): Promise<Receipt> {
  const { project, task, result, gitDir } = incoming;
  if (!result.remote?.pushed || (incoming.arrived && 'path' in incoming.arrived)) {
    // A task sent as a bundle (its alert was raised then) comes back as one; one whose push failed says so.
    const receipt = await bundleCarrier.receive(incoming);
    if (!result.remote || result.remote.pushed || receipt.kind !== 'quarantined') return receipt;
    return {
      ...receipt,
      downgraded: `the node could not push to the shared remote (${result.remote.error ?? 'no reason given'}); the result came back as a bundle`,
    };
  }
  const base = await openQuarantine(gitDir, incoming.scratch);
  const repo = join(base.dir, 'fetch.git');
  const q: Quarantine = {
    dir: base.dir,
    objects: join(repo, 'objects'),
    env: { GIT_OBJECT_DIRECTORY: join(repo, 'objects'), GIT_ALTERNATE_OBJECT_DIRECTORIES: join(gitDir, 'objects'), GIT_QUARANTINE_PATH: join(repo, 'objects') },
  };
  try {
    const problem = await fetchResult(project, repo, gitDir, task.branch, result.head ?? '', incoming.maxBytes);
    if (!problem) return { kind: 'quarantined', quarantine: q };
    await dropQuarantine(q);
    return { kind: 'rejected', reason: problem };
  } catch (error) {
    await dropQuarantine(q);
    throw error;
  }
}

/** Fetches `branch` into `repo` (objects borrowed from `gitDir`, each fsck'd, kept as a pack); why the result is refused, if it is. */
async function fetchResult(project: ProjectConfig, repo: string, gitDir: string, branch: string, head: string, maxBytes: number): Promise<string | undefined> {
  await gitOps.git(dirname(repo), ['init', '-q', '--bare', repo]);
  await mkdir(join(repo, 'objects', 'info'), { recursive: true });
  await writeFile(join(repo, 'objects', 'info', 'alternates'), `${join(gitDir, 'objects')}\n`);
  const ref = 'refs/gsync/result';
  const fetch = [
    '-c',
    'fetch.fsckObjects=true',
    '-c',
    'transfer.unpackLimit=1',
    'fetch',
    '-q',
    '--no-tags',
    '--no-write-fetch-head',
    '--no-recurse-submodules',
  ];
  const r = await remoteGit(project, repo, [...fetch, '--', remoteUrl(project), `+refs/heads/${branch}:${ref}`]);
  if (r.exitCode !== 0) return `cannot fetch ${branch} from the shared remote: ${firstLine(r.stderr, `git fetch exited with ${r.exitCode}`)}`;
  const got = await gitOps.resolveCommit(repo, ref);
  if (got !== head) return `the shared remote has ${branch} at ${got?.slice(0, 12) ?? 'nothing'}, the node announced ${head.slice(0, 12)}`;
  const bytes = await treeBytes(join(repo, 'objects', 'pack'));
  if (bytes > maxBytes) return `the result fetched from the shared remote is ${bytes} bytes, over max_result_bytes (${maxBytes})`;
  return undefined;
}

/**
 * Deletes the task branch on the remote once its work is on main: only while it still
 * points at one of `at` (the merged head, or the base a node never pushed over), never
 * over something pushed since. Says why not, when it stays.
 */
export async function deleteRemoteBranch(project: ProjectConfig, branch: string, at: readonly string[], dryRun = false): Promise<string | undefined> {
  const ref = `refs/heads/${branch}`;
  const url = remoteUrl(project);
  const there = await remoteGit(project, project.repo_local, ['ls-remote', '--', url, ref]);
  if (there.exitCode !== 0) return firstLine(there.stderr, `git ls-remote exited with ${there.exitCode}`);
  const oid = there.stdout.split('\t')[0]?.trim();
  if (!oid) return 'not there';
  if (!at.includes(oid)) return `it moved to ${oid.slice(0, 12)} since`;
  if (dryRun) return undefined;
  const r = await remoteGit(project, project.repo_local, ['push', '-q', '--no-verify', `--force-with-lease=${ref}:${oid}`, '--', url, `:${ref}`]);
  return r.exitCode === 0 ? undefined : firstLine(r.stderr, `git push exited with ${r.exitCode}`);
}
