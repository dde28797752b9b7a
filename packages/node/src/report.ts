import { readFile } from 'node:fs/promises';
import { TaskResult, errorMessage, type TaskReport } from '@gsync/core';
import { taskDir, taskPaths, type TaskPaths } from './paths.js';
import { queuePositions } from './queue.js';
import { recoverInterrupted } from './recover.js';
import { readStatus } from './status.js';

async function readResult(path: string): Promise<TaskResult | null> {
  try {
    return TaskResult.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

const failed = (taskId: string, error: unknown): TaskReport => ({ task_id: taskId, exists: true, status: null, result: null, error: errorMessage(error) });

/** The task's paths once a run of it that died is finished, or the report of why it cannot be looked at. */
async function recovered(workRoot: string, project: string, taskId: string): Promise<TaskPaths | TaskReport> {
  // A name that is not one fails the whole command, as bad input; only what is on disk becomes a report.
  const paths = taskPaths(taskDir(workRoot, project, taskId));
  try {
    await recoverInterrupted(paths);
    return paths;
  } catch (error) {
    return failed(taskId, error);
  }
}

async function readReport(taskId: string, paths: TaskPaths): Promise<TaskReport> {
  try {
    const status = await readStatus(paths.status);
    if (!status) return { task_id: taskId, exists: false, status: null, result: null };
    const final = ['done', 'failed', 'timeout'].includes(status.state);
    return { task_id: taskId, exists: true, status, result: final ? await readResult(paths.result) : null };
  } catch (error) {
    return failed(taskId, error);
  }
}

/**
 * What the controller needs to know of each task: its status and, when finished, its result.
 * Runs that died are finished first, then `kick` lets the node's queue use the slots they
 * freed, so a queued task that can start shows as started in this very report.
 */
export async function reportTasks(
  workRoot: string,
  project: string,
  taskIds: readonly string[],
  kick: () => Promise<void> = async () => {},
): Promise<TaskReport[]> {
  const looked = await Promise.all(taskIds.map((taskId) => recovered(workRoot, project, taskId)));
  await kick();
  const reports = await Promise.all(looked.map((l, i) => ('dir' in l ? readReport(taskIds[i]!, l) : l)));
  // A queued task says where it stands in the node's queue, which spans every project and controller.
  if (!reports.some((r) => r.status?.state === 'queued')) return reports;
  const positions = await queuePositions(workRoot);
  return reports.map((r, i) => {
    const l = looked[i]!;
    const position = r.status?.state === 'queued' && 'dir' in l ? positions.get(l.dir) : undefined;
    return position ? { ...r, position } : r;
  });
}
