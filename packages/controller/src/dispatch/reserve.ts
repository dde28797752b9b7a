import { UsageError, nextTaskId, taskBranch } from '@gsync/core';
import type { NodeConfig, ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import type { NewTask, TaskRow } from '../store/store.js';

/**
 * Branch names join project, task id and node with "-", which the names may hold too:
 * (S01, gpu-1) and (S01-gpu, 1) would share task/p-S01-gpu-1, and a node named
 * `x-wip` could meet another task's -wip branch. Returns the task already using it.
 */
export function branchClash(existing: readonly Pick<TaskRow, 'task_id' | 'branch'>[], branch: string): string | undefined {
  const mine = new Set([branch, `${branch}-wip`]);
  return existing.find((t) => mine.has(t.branch) || mine.has(`${t.branch}-wip`))?.task_id;
}

export type ReservedFields = Omit<NewTask, 'project' | 'task_id' | 'node' | 'branch' | 'dispatch_pid'>;

function taken(taskId: string, project: string, row: TaskRow | undefined): UsageError {
  return new UsageError(`task ${taskId} of ${project} already exists (on ${row?.node ?? '?'}, ${row?.state ?? '?'})`, {
    hint: 'choose another --task, or leave it out to take the next free id',
  });
}

/**
 * Inserts the task's row, `dispatching` and owned by this process, under its id (the
 * next free one when none is given). The row is the reservation: two controllers
 * dispatching at once get different ids.
 */
export function reserveTask(
  session: Session,
  project: ProjectConfig,
  node: NodeConfig,
  wanted: string | undefined,
  fields: ReservedFields,
  /** Ids a node already has for another task: an automatic id goes past them. */
  avoid: readonly string[] = [],
): { taskId: string; branch: string } {
  const { config, store } = session;
  for (let attempt = 0; ; attempt++) {
    const taskId = wanted ?? nextTaskId([...store.taskIds(project.name), ...avoid]);
    const branch = taskBranch(project.name, taskId, node.name, config.git.branch_prefix);
    if (wanted !== undefined && store.getTask(project.name, taskId)) throw taken(taskId, project.name, store.getTask(project.name, taskId));
    const clash = branchClash(store.listTasks(project.name), branch);
    // With a free id taken by another controller in the meantime, the next one is tried.
    if (clash && wanted === undefined && attempt < 100) continue;
    if (clash) {
      throw new UsageError(`task ${taskId} on ${node.name} would get the branch ${branch}, which task ${clash} already uses (names are joined with "-")`, {
        hint: 'choose a --task without "-", or another node',
      });
    }
    try {
      store.insertTask({ ...fields, project: project.name, task_id: taskId, node: node.name, branch, dispatch_pid: session.ctx.pid });
      return { taskId, branch };
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw error;
      if (wanted !== undefined || attempt > 100) throw taken(taskId, project.name, store.getTask(project.name, taskId));
    }
  }
}
