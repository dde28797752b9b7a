import { randomBytes } from 'node:crypto';
import { lstat, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TaskStatus, gitOps, isFinal, processAlive, treeBytes } from '@gsync/core';
import { cacheDir, withWorktrees } from './cache.js';
import { taskDir, tasksRoot } from './paths.js';

/** What `gsync-node remove` says about each task dir it was asked to remove. */
export interface RemovedTask {
  task_id: string;
  /** Removed now (or, with --dry-run, would be). */
  removed: boolean;
  /** Bytes the dir held. */
  bytes: number;
  /** Why it stays, when it does. */
  kept?: string;
}

/** The task's branch as its manifest names it, when it is one of gsync's. */
async function taskBranch(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, 'task.json'), 'utf8').catch(() => undefined);
  try {
    const branch = text ? (JSON.parse(text) as { branch?: unknown }).branch : undefined;
    return typeof branch === 'string' && /^task\/[A-Za-z0-9._-]+$/.test(branch) ? branch : undefined;
  } catch {
    return undefined;
  }
}

async function stillRunning(dir: string): Promise<string | undefined> {
  const text = await readFile(join(dir, 'status.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined; // a dir without a status never ran: nothing runs in it
  const parsed = TaskStatus.safeParse(JSON.parse(text));
  if (!parsed.success) return 'its status.json cannot be read';
  const status = parsed.data;
  if (!isFinal(status.state)) return `it is ${status.state}`;
  if (processAlive(status.agent_pid)) return 'its agent is still alive';
  return undefined;
}

/**
 * Removes finished task dirs (the controller asks only for tasks it has merged or set
 * aside): never one whose task has not ended. Each goes first to a hidden name in one
 * rename, so no reader ever sees half a dir; its worktree registration in the object
 * cache goes with it.
 */
export async function removeTasks(workRoot: string, project: string, taskIds: readonly string[], dryRun: boolean): Promise<RemovedTask[]> {
  const out: RemovedTask[] = [];
  const cache = cacheDir(workRoot, project);
  let removedAny = false;
  const branches: string[] = [];
  for (const taskId of taskIds) {
    const dir = taskDir(workRoot, project, taskId);
    const bytes = await treeBytes(dir);
    if (!(await lstat(dir).catch(() => undefined))) {
      out.push({ task_id: taskId, removed: false, bytes: 0, kept: 'not on this node' });
      continue;
    }
    const running = await stillRunning(dir);
    if (running) {
      out.push({ task_id: taskId, removed: false, bytes, kept: running });
      continue;
    }
    const branch = await taskBranch(dir);
    if (!dryRun) {
      const gone = join(tasksRoot(workRoot, project), `.removing-${taskId}-${randomBytes(6).toString('hex')}`);
      await rename(dir, gone);
      await rm(gone, { recursive: true, force: true });
      removedAny = true;
      if (branch) branches.push(branch);
    }
    out.push({ task_id: taskId, removed: true, bytes });
  }
  // The cache forgets the worktrees whose folders are gone, and their task branches: what they held is on the controller.
  if (removedAny && (await lstat(cache).catch(() => undefined))) {
    await withWorktrees(cache, () => gitOps.git(cache, ['worktree', 'prune'])).catch(() => undefined);
    for (const branch of branches) await gitOps.git(cache, ['update-ref', '-d', `refs/heads/${branch}`]).catch(() => undefined);
  }
  return out;
}
