import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FILES, ProtocolError, ZERO_OID, errorMessage, failpoint, gitOps, incomingRef, type SecretPolicy, type TaskResult } from '@gsync/core';
import type { NodeConfig, ProjectConfig } from './config.js';
import { downloadVerified } from './download.js';
import { fetchTaskFile } from './remote.js';
import type { TaskRow } from './store.js';
import type { NodeTransport } from './transport.js';
import { adoptQuarantine, dropQuarantine, incomingDir, inspectChanges, quarantinePack, type ResultLimits } from './inspect-result.js';
import { headerProblem, readBundleHeader } from './verify-bundle.js';

export type CollectOutcome =
  | { kind: 'collected'; head: string; commits: number; paths: string[]; branch: string; wip: boolean }
  | { kind: 'rejected'; reason: string };

export interface CollectRequest {
  project: ProjectConfig;
  node: NodeConfig;
  task: TaskRow;
  result: TaskResult;
  transport: NodeTransport;
  maxBytes: number;
  limits: ResultLimits;
  policy: SecretPolicy;
}

/** Checks result.json against what this controller dispatched, before a byte of the bundle is read. */
function resultProblem(task: TaskRow, result: TaskResult, maxBytes: number): string | undefined {
  if (result.project !== task.project || result.task_id !== task.task_id || result.node !== task.node) {
    return `result.json is for ${result.project}/${result.task_id} on ${result.node}`;
  }
  if (result.branch !== task.branch) return `result.json names branch ${result.branch}, not ${task.branch}`;
  if (result.base !== task.base_commit) return `result.json says base ${result.base}, the task was dispatched on ${task.base_commit}`;
  if (result.bundle.size > maxBytes) return `the result bundle is ${result.bundle.size} bytes, over the ${maxBytes}-byte limit (max_result_bytes)`;
  return undefined;
}

/** Creates `ref` at `oid` unless it exists; an existing ref is left alone unless it already points there. */
async function createBranch(repo: string, ref: string, oid: string): Promise<string | undefined> {
  const current = await gitOps.resolveCommit(repo, ref);
  if (current === oid) return undefined;
  if (current) return `${ref} already exists at ${current.slice(0, 12)}; it was not touched`;
  await gitOps.updateRef(repo, ref, oid, ZERO_OID, 'gsync: task result');
  return undefined;
}

/**
 * Brings one finished task home: download and verify the bundle, fetch it into
 * refs/gsync/incoming/ only, check what was written, then create the task branch.
 */
export async function collectTask(req: CollectRequest): Promise<CollectOutcome> {
  const { project, task, result } = req;
  const repo = project.repo_local;
  const problem = resultProblem(task, result, req.maxBytes);
  if (problem) return { kind: 'rejected', reason: problem };

  const gitDir = await gitOps.gitDir(repo);
  const dir = incomingDir(gitDir, task.project);
  await mkdir(dir, { recursive: true });
  const bundle = join(dir, `${task.project}-${task.task_id}-${task.node}.bundle`);
  const quarantine = incomingRef(task.project, task.task_id, task.node);
  try {
    await downloadVerified(bundle, result.bundle, (out) =>
      fetchTaskFile(req.transport, req.node, task.project, task.task_id, FILES.resultBundle, out),
    );
    failpoint('pull:after-download');
    const header = await readBundleHeader(bundle).catch((error: unknown) => {
      throw new ProtocolError(`the result bundle is unreadable: ${errorMessage(error)}`);
    });
    const headerIssue = headerProblem(header, {
      ref: `refs/heads/${task.branch}`,
      head: result.head,
      base: task.base_commit,
      mergeHead: task.merge_head ?? undefined,
    });
    if (headerIssue) return { kind: 'rejected', reason: headerIssue };

    // Objects are fsck'd into a quarantine and the changes inspected there; only then
    // does the pack enter the repository and the incoming ref get written.
    const q = await quarantinePack(repo, gitDir, task.project, bundle, header.packOffset);
    try {
      const problem = await inspectChanges({
        repo,
        env: q.env,
        base: task.base_commit,
        head: result.head,
        mergeHead: task.merge_head ?? undefined,
        limits: req.limits,
        policy: req.policy,
      });
      if (problem) return { kind: 'rejected', reason: problem };
      await adoptQuarantine(gitDir, q);
      failpoint('pull:after-adopt');
    } finally {
      await dropQuarantine(q);
    }
    await gitOps.git(repo, ['update-ref', '-m', 'gsync: incoming result', quarantine, result.head]);
    const fetched = await gitOps.resolveCommit(repo, quarantine);
    if (fetched !== result.head) return { kind: 'rejected', reason: `writing ${quarantine} gave ${fetched ?? 'nothing'}, expected ${result.head}` };
    failpoint('pull:after-incoming');
    const branch = result.wip ? `${task.branch}-wip` : task.branch;
    const clash = await createBranch(repo, `refs/heads/${branch}`, fetched);
    if (clash) return { kind: 'rejected', reason: clash };
    failpoint('pull:after-branch');
    return {
      kind: 'collected',
      head: fetched,
      commits: await gitOps.countCommits(repo, [fetched, `^${task.base_commit}`]),
      paths: await gitOps.changedPaths(repo, task.base_commit, fetched),
      branch,
      wip: result.wip,
    };
  } catch (error) {
    if (error instanceof ProtocolError) return { kind: 'rejected', reason: error.message };
    throw error;
  } finally {
    await rm(bundle, { force: true });
  }
}
