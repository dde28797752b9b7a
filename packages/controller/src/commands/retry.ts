import { UsageError, checkName, sha256, specTitle } from '@gsync/core';
import { carrierFor } from '../carrier/carrier.js';
import { getNode, getProject, resolveAgent } from '../config.js';
import { withSession, type Context } from '../context.js';
import { pickNode } from '../dispatch/pick-node.js';
import { sendNewTask, type DispatchResult } from '../dispatch/send-task.js';
import { RETRYABLE_STATES, isRetryable } from '../lifecycle/states.js';
import { transition } from '../lifecycle/transition.js';
import { withProjectLock } from '../store/lock.js';

export interface RetryOptions {
  project: string;
  task: string;
  node?: string;
}

/**
 * `gsync-ctl retry`: sends a task's spec again as a new task, by default to another
 * node than the one it ran on; the old task becomes `retried` and is no longer asked
 * about. Its branch, -wip branch and task dir on the node are kept.
 */
export async function retry(ctx: Context, options: RetryOptions): Promise<DispatchResult & { retry_of: string }> {
  return withSession(ctx, async (session) => {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    carrierFor(project);
    const old = store.taskNamed(project.name, checkName('task id', options.task));
    if (!isRetryable(old.state)) {
      throw new UsageError(`task ${old.task_id} is ${old.state}; only a ${RETRYABLE_STATES.join(', ')} task can be retried`, {
        hint: old.state === 'conflicted' ? `a conflict is resolved with gsync-ctl resolve --project ${project.name} --task ${old.task_id}` : undefined,
      });
    }
    const retried = (as: { task_id: string; node: string }) => ({
      level: 'info' as const,
      kind: 'retried',
      message: `${old.task_id} sent again as ${as.task_id} to ${as.node}`,
    });
    const earlier = store.listTasks(project.name).find((t) => t.retry_of === old.task_id);
    if (earlier) {
      // An earlier retry got as far as sending (then stopped): finish it instead of sending twice.
      transition(session, old, 'retried', { error: `retried as ${earlier.task_id} on ${earlier.node}` }, retried(earlier));
      throw new UsageError(`task ${old.task_id} was already sent again as ${earlier.task_id} (${earlier.state} on ${earlier.node})`);
    }
    if (old.spec_text === null)
      throw new UsageError(`task ${old.task_id} was dispatched by an older gsync-ctl that did not keep its spec; dispatch it again by hand`);
    const others = { ...config, nodes: config.nodes.filter((n) => n.name !== old.node) };
    const node = options.node ? getNode(config, options.node) : others.nodes.length > 0 ? pickNode(others, store) : getNode(config, old.node);
    return withProjectLock(store, project.name, ctx.pid, async () => {
      const data = Buffer.from(old.spec_text!);
      const result = await sendNewTask(session, {
        project,
        node,
        spec: { data, text: old.spec_text!, title: specTitle(old.spec_text!), sha256: sha256(data) },
        agent: resolveAgent(config, project, node),
        retryOf: old.task_id,
      });
      transition(session, old, 'retried', { error: `retried as ${result.task_id} on ${result.node}` }, retried(result));
      return { ...result, retry_of: old.task_id };
    });
  });
}
