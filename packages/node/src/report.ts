import { readFile } from 'node:fs/promises';
import { TaskResult, errorMessage, type TaskReport } from '@gsync/core';
import { taskDir, taskPaths } from './paths.js';
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

/** What the controller needs to know of each task: its status and, when finished, its result. */
export async function reportTasks(workRoot: string, project: string, taskIds: readonly string[]): Promise<TaskReport[]> {
  return Promise.all(
    taskIds.map(async (taskId): Promise<TaskReport> => {
      const paths = taskPaths(taskDir(workRoot, project, taskId));
      try {
        await recoverInterrupted(paths);
        const status = await readStatus(paths.status);
        if (!status) return { task_id: taskId, exists: false, status: null, result: null };
        const final = ['done', 'failed', 'timeout'].includes(status.state);
        return { task_id: taskId, exists: true, status, result: final ? await readResult(paths.result) : null };
      } catch (error) {
        return { task_id: taskId, exists: true, status: null, result: null, error: errorMessage(error) };
      }
    }),
  );
}
