import { isFinal, stopGroup, writeJsonAtomic, type NodeState } from '@gsync/core';
import { taskDir, taskPaths, workRootOfTask } from './paths.js';
import { withQueueLock } from './queue.js';
import { readManifest } from './run.js';
import { readStatus, setState } from './status.js';

/** What `gsync-node cancel` says about the task it was asked to stop. */
export interface CancelAnswer {
  task_id: string;
  /** Its state before the cancel; null when this node has no such task. */
  was: NodeState | null;
  /** Its state after: a stopped run goes on to commit what was done and ends `failed`. */
  state: NodeState | null;
  /** Taken off the queue before it ran, its agent stopped (or never started), or nothing: it had ended, or is not here. */
  did: 'dequeued' | 'stopped' | 'nothing';
}

/** The grace a timeout would give the agent, from the manifest (its default when that cannot be read). */
async function graceMs(paths: ReturnType<typeof taskPaths>): Promise<number> {
  return ((await readManifest(paths).catch(() => undefined))?.agent.kill_grace_seconds ?? 5) * 1000;
}

/**
 * Stops a task. The marker goes first: a run that has not started its agent sees it and
 * never does, and one whose agent runs commits what was done as work in progress once
 * the agent is gone. A queued task is taken off the queue under the queue's lock, so it
 * cannot be started meanwhile. A running agent's whole process group is stopped as a
 * timeout stops it. Asking again is harmless.
 */
export async function cancelTask(workRoot: string, project: string, taskId: string, now: () => Date = () => new Date()): Promise<CancelAnswer> {
  const paths = taskPaths(taskDir(workRoot, project, taskId));
  const before = await readStatus(paths.status);
  if (!before || isFinal(before.state)) return { task_id: taskId, was: before?.state ?? null, state: before?.state ?? null, did: 'nothing' };
  await writeJsonAtomic(paths.cancel, { cancelled_at: now().toISOString() });
  const dequeued = await withQueueLock(workRootOfTask(paths.dir), async () => {
    const status = await readStatus(paths.status);
    // Queued, or accepted and never asked to start: no run exists, none will.
    if (status?.state !== 'queued' && !(status?.state === 'received' && status.started_at === undefined)) return false;
    await setState(paths.status, 'failed', { finished_at: now().toISOString(), error: 'cancelled before it started' }, now);
    return true;
  });
  if (dequeued) return { task_id: taskId, was: before.state, state: 'failed', did: 'dequeued' };
  const status = await readStatus(paths.status);
  // Only a run in `running` has an agent; before, the marker keeps it from starting one.
  if (status?.state === 'running' && status.agent_pid) await stopGroup(status.agent_pid, await graceMs(paths));
  return { task_id: taskId, was: before.state, state: (await readStatus(paths.status))?.state ?? null, did: 'stopped' };
}
