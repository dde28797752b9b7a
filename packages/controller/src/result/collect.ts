import { ProtocolError, ZERO_OID, failpoint, gitOps, incomingRef, resultFile, type SecretPolicy, type TaskResult } from '@gsync/core';
import { receiverFor, type Arrival, type Carrier } from '../carrier/carrier.js';
import type { NodeConfig, ProjectConfig } from '../config.js';
import type { Collected } from '../lifecycle/decisions.js';
import type { NodeTransport } from '../ssh/transport.js';
import type { TaskRow } from '../store/store.js';
import { inspectChanges, type ResultLimits } from './inspect.js';
import { adoptQuarantine, dropQuarantine } from './quarantine.js';

export interface CollectRequest {
  carrier: Carrier;
  project: ProjectConfig;
  node: NodeConfig;
  task: TaskRow;
  result: TaskResult;
  transport: NodeTransport;
  /** This controller's folder in the repository's gsync folder for the project (see scratchName). */
  scratch: string;
  /** What the carrier's `gather` already brought of this result. */
  arrived?: Arrival | undefined;
  maxBytes: number;
  limits: ResultLimits;
  policy: SecretPolicy;
  /** Told when the result came back another way than the mode's usual one (an alert). */
  onDowngrade?: (why: string) => Promise<void>;
}

/** Checks result.json against what this controller dispatched, before a byte of the result is read. */
export function resultProblem(task: TaskRow, result: TaskResult, maxBytes: number): string | undefined {
  if (result.project !== task.project || result.task_id !== task.task_id || result.node !== task.node) {
    return `result.json is for ${result.project}/${result.task_id} on ${result.node}`;
  }
  if (result.branch !== task.branch) return `result.json names branch ${result.branch}, not ${task.branch}`;
  if (result.base !== task.base_commit) return `result.json says base ${result.base}, the task was dispatched on ${task.base_commit}`;
  const file = resultFile(result);
  if (!file) return 'result.json announces neither a bundle with its head nor a tar of files';
  if (file.size > maxBytes) return `the result ${result.files ? 'tar' : 'bundle'} is ${file.size} bytes, over the ${maxBytes}-byte limit (max_result_bytes)`;
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
 * Brings one finished task home: its carrier receives the result into a quarantine,
 * the changes are inspected there, and only a result that passes enters the
 * repository, as refs/gsync/incoming/… and then the task branch.
 */
export async function collectTask(req: CollectRequest): Promise<Collected> {
  const { project, task, result } = req;
  const repo = project.repo_local;
  const problem = resultProblem(task, result, req.maxBytes);
  if (problem) return { kind: 'rejected', reason: problem };

  const gitDir = await gitOps.gitDir(repo);
  const receipt = await receiverFor(req.carrier, result).receive({
    project,
    node: req.node,
    task,
    result,
    transport: req.transport,
    gitDir,
    scratch: req.scratch,
    arrived: req.arrived,
    maxBytes: req.maxBytes,
  });
  if (receipt.kind === 'rejected') return receipt;
  if (receipt.downgraded) await req.onDowngrade?.(receipt.downgraded);
  const q = receipt.quarantine;
  const head = receipt.head ?? result.head!;
  try {
    const inspection = await inspectChanges({
      repo,
      env: q.env,
      base: task.base_commit,
      head,
      mergeHead: task.merge_head ?? undefined,
      limits: req.limits,
      policy: req.policy,
    });
    if (inspection) return { kind: 'rejected', reason: inspection };
    await adoptQuarantine(gitDir, q);
    failpoint('pull:after-adopt');
  } catch (error) {
    if (error instanceof ProtocolError) return { kind: 'rejected', reason: error.message };
    throw error;
  } finally {
    await dropQuarantine(q);
  }
  const incoming = incomingRef(task.project, task.task_id, task.node);
  await gitOps.setRef(repo, incoming, head, 'gsync: incoming result');
  const fetched = await gitOps.resolveCommit(repo, incoming);
  if (fetched !== head) return { kind: 'rejected', reason: `writing ${incoming} gave ${fetched ?? 'nothing'}, expected ${head}` };
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
}
