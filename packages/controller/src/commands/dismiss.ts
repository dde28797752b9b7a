import { UsageError, gitOps } from '@gsync/core';
import type { Context } from '../context.js';
import { withNamedTask } from './named-task.js';
import { dismissRefusal } from '../lifecycle/decisions.js';
import type { TaskState } from '../lifecycle/states.js';
import { transition } from '../lifecycle/transition.js';
import { liveResolution } from '../queue/resolution.js';

export interface DismissOptions {
  project: string;
  task: string;
  reason?: string;
}

export interface DismissResult {
  task_id: string;
  node: string;
  /** Its state before: failed, timeout, rejected, withheld, conflicted or collected; `dismissed` when it was already. */
  was: TaskState;
  state: 'dismissed';
  already: boolean;
  reason: string | null;
  /** Its branches that are in the repository: kept, as they were. */
  branches: string[];
}

/**
 * `gsync-ctl dismiss`: sets a task that needs the user aside, so that pull stops asking
 * (and exits 0 again), or keeps a collected task (after `pull --no-merge`) off main. Nothing else changes: its branches, its -wip branch and its task
 * dir on the node stay, `cleanup` leaves them, and `retry` can still send it again.
 */
export async function dismiss(ctx: Context, options: DismissOptions): Promise<DismissResult> {
  return withNamedTask(ctx, options, async ({ session, project, task, reason }) => {
    const { store } = session;
    const taskId = task.task_id;
    const refused = dismissRefusal(task);
    if (refused) throw new UsageError(refused);
    // Its resolution would mark it resolved once merged: that one is cancelled first.
    const live = task.state === 'conflicted' ? liveResolution(session, project.name, task) : undefined;
    if (live) {
      throw new UsageError(`task ${taskId} is being resolved by ${live.task_id} (${live.state} on ${live.node}): it cannot be dismissed`, {
        hint: live.state === 'collected' ? undefined : `cancel the resolution first: gsync-ctl cancel --project ${project.name} --task ${live.task_id}`,
      });
    }
    const branches: string[] = [];
    for (const b of [task.branch, task.wip_branch]) if (b && (await gitOps.resolveCommit(project.repo_local, `refs/heads/${b}`))) branches.push(b);
    const base = { task_id: taskId, node: task.node, state: 'dismissed' as const, branches };
    if (task.state === 'dismissed') {
      const first = store.events(project.name, taskId).find((e) => e.kind === 'dismissed');
      const given = first?.data ? (JSON.parse(first.data) as { reason?: unknown }).reason : undefined;
      return { ...base, was: task.state, already: true, reason: typeof given === 'string' ? given : null };
    }
    const kept = branches.length > 0 ? `; ${branches.join(' and ')} kept` : '';
    transition(
      session,
      task,
      'dismissed',
      {},
      {
        level: 'info',
        kind: 'dismissed',
        message: `${taskId} (${task.state}) dismissed${reason ? `: ${reason}` : ''}${kept}`,
        data: { reason, was: task.state },
      },
    );
    return { ...base, was: task.state, already: false, reason };
  });
}
