import { existsSync } from 'node:fs';
import { lstat, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FILES,
  PROTOCOL_VERSION,
  ProtocolError,
  TaskManifest,
  commitSubject,
  errorMessage,
  expandAgentArgv,
  failpoint,
  gitOps,
  hasConflictMarkers,
  runInProcessGroup,
  stopGroup,
  newFindings,
  scanFile,
  sha256File,
  writeJsonAtomic,
  type TaskResult,
  type TaskStatus,
} from '@gsync/core';
import { cacheOfTask, taskRefs, withWorktrees } from './cache.js';
import { changedFiles, extractTree, packFiles, readBaseFiles, withholdFiles, writeBaseFiles } from './files.js';
import { taskPaths, type TaskPaths } from './paths.js';
import { setState } from './status.js';

export interface RunOptions {
  taskDir: string;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

/** Whether `gsync-node cancel` has asked this task to stop. */
export function cancelAsked(paths: TaskPaths): boolean {
  return existsSync(paths.cancel);
}

/** The end of a task cancelled before its agent started: nothing ran, so nothing is kept. */
const CANCELLED_BEFORE = 'cancelled before the agent started';

export async function readManifest(paths: TaskPaths): Promise<TaskManifest> {
  const parsed = TaskManifest.safeParse(JSON.parse(await readFile(paths.manifest, 'utf8')));
  if (!parsed.success) throw new ProtocolError(`${FILES.manifest} is not a valid v${PROTOCOL_VERSION} manifest`);
  return parsed.data;
}

/**
 * Checks the task out as a worktree of the project's object cache, on the task branch
 * at the base; for a conflict resolution, starts the merge. Returns the conflicted paths.
 * A checkout left by an interrupted run is replaced.
 */
async function prepareRepo(paths: TaskPaths, manifest: TaskManifest, cache: string): Promise<string[]> {
  await rm(paths.repo, { recursive: true, force: true });
  if (manifest.tree) {
    // The scp mode: plain files, no git. The snapshot is what the changes are judged against.
    await writeBaseFiles(paths.baseFiles, await extractTree(paths.tree, paths.repo, Number.MAX_SAFE_INTEGER));
    return manifest.tree.conflicted ?? [];
  }
  const refs = taskRefs(manifest.task_id);
  // Only the registration is made under the lock; the files are checked out beside other tasks'.
  await withWorktrees(cache, async () => {
    await gitOps.git(cache, ['worktree', 'prune']);
    await gitOps.git(cache, ['worktree', 'add', '-q', '--no-checkout', '--detach', paths.repo, refs.base]);
  });
  await gitOps.git(paths.repo, ['reset', '-q', '--hard']);
  await gitOps.checkoutNewBranch(paths.repo, manifest.branch, manifest.base.commit);
  if (!manifest.merge) return [];
  const other = await gitOps.resolveCommit(paths.repo, refs.merge);
  if (other !== manifest.merge.commit) {
    throw new ProtocolError(`the object cache holds ${other ?? 'nothing'} for ${manifest.merge.ref}, the manifest says ${manifest.merge.commit}`);
  }
  await gitOps.mergeNoCommit(paths.repo, other, identity(manifest));
  return gitOps.unmergedPaths(paths.repo);
}

/** Conflicted paths whose file still holds conflict markers after the agent ran. */
async function unresolved(paths: TaskPaths, conflicted: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  for (const path of conflicted) {
    const text = await readFile(join(paths.repo, path), 'utf8').catch(() => '');
    if (hasConflictMarkers(text)) left.push(path);
  }
  return left;
}

function identity(manifest: TaskManifest): Record<string, string> {
  const name = `gsync agent on ${manifest.node}`;
  const email = `gsync@${manifest.node}.invalid`;
  return { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
}

/** Commits what the agent left, then returns the head of the task branch. */
async function commitWork(paths: TaskPaths, manifest: TaskManifest, wip: boolean, exitCode: number | null): Promise<string> {
  // A resolution is a merge commit even when its tree equals the base's.
  if ((await gitOps.hasStagedChanges(paths.repo)) || (await gitOps.isMerging(paths.repo))) {
    const subject = commitSubject(manifest.task_id, manifest.spec.title) + (wip ? ' (work in progress)' : '');
    const body = [`Node: ${manifest.node}`, `Spec sha256: ${manifest.spec.sha256}`, `Agent exit code: ${exitCode ?? 'none'}`];
    await gitOps.commit(paths.repo, `${subject}\n\n${body.join('\n')}\n`, identity(manifest));
  }
  const head = await gitOps.resolveCommit(paths.repo, 'HEAD');
  if (!head) throw new ProtocolError('the task repository has no HEAD after the agent ran');
  return head;
}

/** What every result.json says of the task it is the result of. */
function resultOf(manifest: TaskManifest): Pick<TaskResult, 'protocol' | 'project' | 'task_id' | 'node' | 'branch' | 'base'> {
  return {
    protocol: PROTOCOL_VERSION,
    project: manifest.project,
    task_id: manifest.task_id,
    node: manifest.node,
    branch: manifest.branch,
    base: manifest.base.commit,
  };
}

async function writeResult(
  paths: TaskPaths,
  manifest: TaskManifest,
  head: string,
  wip: boolean,
  exitCode: number | null,
  now: () => Date,
  withheld: { path: string; rule: string }[],
): Promise<TaskResult> {
  const ref = `refs/heads/${manifest.branch}`;
  const current = await gitOps.resolveCommit(paths.repo, ref);
  await gitOps.updateRef(paths.repo, ref, head, current ?? gitOps.ZERO_OID, 'gsync: task result');
  await rm(paths.resultBundle, { force: true });
  // The controller holds the base (and the merged branch of a resolution): leave them out.
  const known = [manifest.base.commit, ...(manifest.merge ? [manifest.merge.commit] : [])];
  await gitOps.createBundle(paths.repo, paths.resultBundle, [ref, ...known.map((c) => `^${c}`)]);
  failpoint('node:after-bundle');
  // Plan A: the branch goes to the shared remote too (never work in progress); the bundle stays as the fallback.
  const remote = manifest.remote && !wip ? await pushToRemote(paths.repo, manifest.remote, head, manifest.base.commit) : undefined;
  const result: TaskResult = {
    ...resultOf(manifest),
    head,
    commits: await gitOps.countCommits(paths.repo, [head, `^${manifest.base.commit}`]),
    changed_paths: await gitOps.changedPaths(paths.repo, manifest.base.commit, head),
    bundle: { name: FILES.resultBundle, size: (await stat(paths.resultBundle)).size, sha256: await sha256File(paths.resultBundle) },
    wip,
    agent_exit_code: exitCode,
    ...(withheld.length > 0 ? { withheld } : {}),
    ...(remote ? { remote } : {}),
    finished_at: now().toISOString(),
  };
  await writeJsonAtomic(paths.result, result);
  failpoint('node:after-result');
  return result;
}

/**
 * Pushes the task branch to the shared remote, only over the base it was dispatched at
 * (or where it already is: a run again after a lost answer). Says whether it got there.
 */
async function pushToRemote(
  repo: string,
  remote: NonNullable<TaskManifest['remote']>,
  head: string,
  base: string,
): Promise<{ pushed: boolean; error?: string }> {
  const auth = gitOps.tokenCredentials(remote.token_env, process.env);
  const r = await gitOps.git(
    repo,
    [...auth.args, 'push', '-q', '--no-verify', `--force-with-lease=${remote.branch}:${base}`, '--', remote.url, `${head}:${remote.branch}`],
    {
      okExitCodes: [1, 128],
      env: auth.env,
    },
  );
  if (r.exitCode === 0) return { pushed: true };
  const there = await gitOps.git(repo, [...auth.args, 'ls-remote', '--', remote.url, remote.branch], { okExitCodes: [1, 2, 128], env: auth.env });
  if (there.exitCode === 0 && there.stdout.split('\t')[0] === head) return { pushed: true };
  const why =
    r.stderr
      .trim()
      .split('\n')
      .find((l) => /^(fatal|error|!)/.test(l.trim())) ??
    r.stderr.trim().split('\n')[0] ??
    `git exited with ${r.exitCode}`;
  return { pushed: false, error: why.slice(0, 500) };
}

export interface AgentOutcome {
  exitCode: number | null;
  signal?: NodeJS.Signals | null;
  timedOut: boolean;
  error?: string | undefined;
  /** Paths a resolution's merge left conflicted before the agent ran. */
  conflicted: readonly string[];
  /** Set when gsync-node itself was interrupted and a later call finishes the task. */
  interrupted?: string;
}

/**
 * Everything after the agent: withhold secrets, commit (as work in progress when the
 * agent failed), bundle the result, and set the end state. Safe to run again on a
 * task whose earlier run was killed half way: each step picks up what is there.
 */
export async function finishTask(paths: TaskPaths, manifest: TaskManifest, run: AgentOutcome, now: () => Date): Promise<TaskStatus> {
  const step = (state: TaskStatus['state'], fields: Parameters<typeof setState>[2] = {}) => setState(paths.status, state, fields, now);
  const left = await unresolved(paths, run.conflicted);
  // Whatever the agent got to, a cancelled task's work is only ever work in progress.
  const cancelled = cancelAsked(paths);
  const failed = cancelled || run.interrupted !== undefined || run.timedOut || run.exitCode !== 0 || left.length > 0;
  await step('committing', { agent_exit_code: run.exitCode });
  const work: WorkToFinish = { paths, manifest, failed, exitCode: run.exitCode, now, bundling: () => step('bundling') };
  const { changed, withheld } = manifest.tree ? await packChangedFiles(work) : await commitAndBundle(work);
  const finished_at = now().toISOString();
  const held = withheld.length > 0 ? `; withheld as secrets: ${withheld.map((w) => `${w.path} (${w.rule})`).join(', ')}` : '';
  const end = (state: TaskStatus['state'], fields: Parameters<typeof setState>[2]) => step(state, { ...fields, ...(withheld.length > 0 ? { withheld } : {}) });
  if (cancelled) {
    const kept = changed ? '; what it had done is kept as work in progress' : ', having changed nothing';
    return await end('failed', { finished_at, error: `cancelled: the agent was stopped${kept}${held}` });
  }
  if (run.interrupted) return await end('failed', { finished_at, error: run.interrupted + held });
  if (run.timedOut) {
    return await end('timeout', { finished_at, error: `the agent ran longer than ${manifest.agent.timeout_seconds}s and was killed${held}` });
  }
  if (run.error) return await end('failed', { finished_at, error: `the agent could not start: ${run.error}` });
  if (left.length > 0) return await end('failed', { finished_at, error: `the agent left conflict markers in ${left.join(', ')}${held}` });
  if (run.exitCode !== 0) {
    const how = run.signal ? `was killed by ${run.signal}` : `exited with code ${run.exitCode}`;
    return await end('failed', { finished_at, error: `the agent ${how}${held}` });
  }
  return await end(changed ? 'done' : 'empty', { finished_at, ...(held ? { error: held.slice(2) } : {}) });
}

type Finished = { changed: boolean; withheld: { path: string; rule: string }[] };

/** What the agent left, to be made a result: as work in progress when `failed`. */
interface WorkToFinish {
  paths: TaskPaths;
  manifest: TaskManifest;
  failed: boolean;
  exitCode: number | null;
  now: () => Date;
  /** Says the task is being bundled (status.json). */
  bundling: () => Promise<unknown>;
}

/** The git way: commit what the agent left and bundle the task branch. */
async function commitAndBundle({ paths, manifest, failed, exitCode, now, bundling }: WorkToFinish): Promise<Finished> {
  const withheld = await withholdSecrets(paths, manifest);
  const head = await commitWork(paths, manifest, failed, exitCode);
  failpoint('node:after-commit');
  const changed = head !== manifest.base.commit;
  if (changed && !(await gitOps.isAncestor(paths.repo, manifest.base.commit, head))) {
    throw new ProtocolError('the agent left HEAD on a commit that does not descend from the base');
  }
  if (changed) {
    await bundling();
    await writeResult(paths, manifest, head, failed, exitCode, now, withheld);
  }
  return { changed, withheld };
}

/**
 * The scp mode: the files the agent changed (secrets withheld) go into result.tar under
 * their full paths, and result.json lists them and what was deleted. No git is run.
 */
async function packChangedFiles({ paths, manifest, failed, exitCode, now, bundling }: WorkToFinish): Promise<Finished> {
  const changes = await changedFiles(paths.repo, await readBaseFiles(paths.baseFiles));
  const { kept, withheld } = await withholdFiles(paths.repo, paths.tree, changes, manifest.policy ?? {});
  const changed = kept.length + changes.deleted.length > 0;
  // A resolution is a merge commit even when nothing changed but the markers' removal.
  if (!changed && !manifest.tree?.conflicted?.length) return { changed: false, withheld };
  await bundling();
  const file = await packFiles(paths.repo, kept, paths.resultTree);
  failpoint('node:after-bundle');
  const result: TaskResult = {
    ...resultOf(manifest),
    commits: 1,
    changed_paths: [...kept.map((w) => w.path), ...changes.deleted].sort(),
    files: { file, deleted: changes.deleted },
    wip: failed,
    agent_exit_code: exitCode,
    ...(withheld.length > 0 ? { withheld } : {}),
    finished_at: now().toISOString(),
  };
  await writeJsonAtomic(paths.result, result);
  failpoint('node:after-result');
  return { changed: true, withheld };
}

/**
 * Stages everything, then takes back out of the index (never off the disk) each file
 * the secret policy refuses, so it cannot be committed even if the agent deleted
 * .gitignore. Returns what was held back, by path and rule, never by value.
 */
async function withholdSecrets(paths: TaskPaths, manifest: TaskManifest): Promise<{ path: string; rule: string }[]> {
  await gitOps.addAll(paths.repo);
  const staged = await gitOps.stagedFiles(paths.repo);
  const withheld: { path: string; rule: string }[] = [];
  for (const path of staged) {
    // Never follow a link (it may point at /dev/zero or outside the repo): a link's content is its target.
    const file = join(paths.repo, path);
    const info = await lstat(file).catch(() => undefined);
    const content = info?.isSymbolicLink() ? Buffer.from(await readlink(file)) : info?.isFile() ? await readFile(file).catch(() => undefined) : undefined;
    const found = scanFile(path, content, manifest.policy ?? {});
    if (found.length === 0) continue;
    // Only what the task adds counts: the file as the base (and, in a resolution, the merged branch) had it is not new.
    const before = await Promise.all(['HEAD', ...(manifest.merge ? ['MERGE_HEAD'] : [])].map((rev) => gitOps.readBlob(paths.repo, rev, path)));
    const findings = newFindings(found, content, before, manifest.policy ?? {});
    if (findings.length === 0) continue;
    await gitOps.unstage(paths.repo, path);
    withheld.push({ path, rule: findings[0]!.rule });
  }
  return withheld;
}

/**
 * The whole life of a task on a node: verify, clone, run the agent, commit,
 * bundle. status.json is updated at every step; the end state is one of
 * done / empty / failed / timeout.
 */
export async function runTask(options: RunOptions): Promise<TaskStatus> {
  const now = options.now ?? (() => new Date());
  const paths = taskPaths(options.taskDir);
  const step = (state: TaskStatus['state'], fields: Parameters<typeof setState>[2] = {}) => setState(paths.status, state, fields, now);
  const started = now().toISOString();
  try {
    const manifest = await readManifest(paths);
    if (cancelAsked(paths)) return await step('failed', { finished_at: now().toISOString(), error: CANCELLED_BEFORE });
    await step('preparing', { pid: process.pid, started_at: started });
    const conflicted = await prepareRepo(paths, manifest, cacheOfTask(paths.dir));
    failpoint('node:after-prepare');
    if (cancelAsked(paths)) return await step('failed', { finished_at: now().toISOString(), error: CANCELLED_BEFORE });
    await step('running');

    const argv = expandAgentArgv(manifest.agent.argv, { spec: await readFile(paths.spec, 'utf8'), specFile: paths.spec });
    const run = await runInProcessGroup({
      argv,
      cwd: paths.repo,
      logFile: paths.agentLog,
      env: { ...options.env, GSYNC_PROJECT: manifest.project, GSYNC_TASK_ID: manifest.task_id, GSYNC_NODE: manifest.node, GSYNC_SPEC_FILE: paths.spec },
      timeoutMs: manifest.agent.timeout_seconds * 1000,
      killGraceMs: manifest.agent.kill_grace_seconds * 1000,
      onStart: async (pid) => {
        await step('running', { agent_pid: pid });
        // A cancel that looked before this pid was written found nothing to stop: the run stops it.
        if (cancelAsked(paths)) await stopGroup(pid, manifest.agent.kill_grace_seconds * 1000);
      },
    });
    failpoint('node:after-agent');
    return await finishTask(paths, manifest, { ...run, conflicted }, now);
  } catch (error) {
    return await step('failed', { finished_at: now().toISOString(), error: errorMessage(error) });
  }
}
