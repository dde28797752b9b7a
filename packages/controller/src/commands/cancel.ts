import { ProtocolError, SshError, UsageError, errorMessage } from '@gsync/core';
import { getNode } from '../config.js';
import type { Context } from '../context.js';
import { withNamedTask } from './named-task.js';
import { cancelRefusal } from '../lifecycle/decisions.js';
import type { TaskState } from '../lifecycle/states.js';
import { transition } from '../lifecycle/transition.js';
import { cancelTaskRun, type CancelAnswer } from '../node-api/calls.js';
import { ensureNodeTool } from '../node-api/install.js';
import { loadNodeTool } from '../node-api/node-tool.js';
import { withNode } from '../ssh/connect.js';
import type { Store } from '../store/store.js';

export interface CancelOptions {
  project: string;
  task: string;
  reason?: string;
}

export interface CancelResult {
  task_id: string;
  node: string;
  /** Its state before: `dispatched` or `stale`; `cancelling` or `cancelled` when it was cancelled already. */
  was: TaskState;
  state: TaskState;
  already: boolean;
  /** The reason given with the first cancel. */
  reason: string | null;
  /** What the node found and did; absent when it was not asked (the task's work is back already). */
  node_answer?: CancelAnswer;
  /** Where its work so far is, or will be once the next pull brings it back; never merged. */
  wip_branch: string;
}

/**
 * `gsync-ctl cancel`: stops a running task. The cancel is recorded first (`cancelling`,
 * with the reason in its event), so a node that cannot be told now still never gets the
 * task merged; then the node takes it off its queue or stops its agent's whole process
 * group. The next pull brings back what it had done as a -wip branch and ends it
 * `cancelled`. Asking again tells the node again and says it was cancelled already.
 */
export async function cancel(ctx: Context, options: CancelOptions): Promise<CancelResult> {
  return withNamedTask(ctx, options, async ({ session, project, task, reason }) => {
    const { config, store } = session;
    const taskId = task.task_id;
    const refused = cancelRefusal(task);
    if (refused) throw new UsageError(refused);
    const already = task.state === 'cancelling' || task.state === 'cancelled';
    const given = already ? (firstReason(store, project.name, taskId) ?? null) : reason;
    const base = { task_id: task.task_id, node: task.node, was: task.state, already, reason: given };
    if (task.state === 'cancelled') return { ...base, state: task.state, wip_branch: task.wip_branch ?? `${task.branch}-wip` };
    const node = getNode(config, task.node);
    if (!already) {
      transition(
        session,
        task,
        'cancelling',
        { error: reason ?? 'no reason given' },
        { level: 'info', kind: 'cancelled', message: `${taskId} on ${task.node} cancelled${reason ? `: ${reason}` : ''}`, data: { reason, was: task.state } },
      );
    }
    try {
      const tool = await loadNodeTool(ctx.nodeToolPath);
      const answer = await withNode(session.connect, node, async (t) => {
        await ensureNodeTool(t, node, tool, project.name);
        return cancelTaskRun(t, node, project.name, taskId);
      });
      return { ...base, state: 'cancelling' as const, node_answer: answer, wip_branch: `${task.branch}-wip` };
    } catch (error) {
      if (!(error instanceof SshError || error instanceof ProtocolError)) throw error;
      const why = errorMessage(error).replace(/^node \S+: /, '');
      throw new SshError(node.name, error instanceof SshError ? error.kind : 'remote', `${taskId} is cancelled here, but the node could not be told: ${why}`, {
        hint: `its agent may still run there; run the same cancel again once ${node.name} answers. Whatever it makes comes back on a -wip branch, never merged`,
        cause: error,
      });
    }
  });
}

/** The reason of the cancel that first stopped the task, from its event. */
function firstReason(store: Store, project: string, taskId: string): string | undefined {
  const event = store.events(project, taskId).find((e) => e.kind === 'cancelled');
  const data = event?.data ? (JSON.parse(event.data) as { reason?: unknown }) : undefined;
  return typeof data?.reason === 'string' ? data.reason : undefined;
}
