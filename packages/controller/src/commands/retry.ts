import { UsageError, checkName, sha256, specTitle } from '@gsync/core';
import { getNode, getProject, resolveAgent } from '../config.js';
import { openSession, type Context } from '../context.js';
import { LOCK_WAIT_MS, acquireLock } from '../lock.js';
import type { TaskState } from '../store.js';
import { checkSyncMode, pickNode, sendNewTask, type DispatchResult } from './dispatch.js';

export interface RetryOptions {
  project: string;
  task: string;
  node?: string;
}

/** States a task can be sent again from; a conflict is for `resolve`, running work is left alone. */
const RETRYABLE: readonly TaskState[] = ['stale', 'failed', 'timeout', 'rejected'];

/**
 * Sends a task's spec again as a new task, by default to another node than the
 * one it ran on; the old task becomes `retried` and is no longer asked about.
 * Its branch, -wip branch and task dir on the node are kept.
 */
export async function retry(ctx: Context, options: RetryOptions): Promise<DispatchResult & { retry_of: string }> {
  const session = await openSession(ctx);
  try {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    checkSyncMode(project);
    const old = store.getTask(project.name, checkName('task id', options.task));
    if (!old) throw new UsageError(`no task ${options.task} in project ${project.name}`, { hint: `gsync-ctl status --project ${project.name} lists them` });
    if (!RETRYABLE.includes(old.state)) {
      throw new UsageError(`task ${old.task_id} is ${old.state}; only a ${RETRYABLE.join(', ')} task can be retried`, {
        hint: old.state === 'conflicted' ? `a conflict is resolved with gsync-ctl resolve --project ${project.name} --task ${old.task_id}` : undefined,
      });
    }
    const earlier = store.listTasks(project.name).find((t) => t.retry_of === old.task_id);
    if (earlier) {
      // An earlier retry got as far as sending (then stopped): finish it instead of sending twice.
      store.updateTask(project.name, old.task_id, { state: 'retried', error: `retried as ${earlier.task_id} on ${earlier.node}` });
      throw new UsageError(`task ${old.task_id} was already sent again as ${earlier.task_id} (${earlier.state} on ${earlier.node})`);
    }
    if (old.spec_text === null) throw new UsageError(`task ${old.task_id} was dispatched by an older gsync-ctl that did not keep its spec; dispatch it again by hand`);
    const others = { ...config, nodes: config.nodes.filter((n) => n.name !== old.node) };
    const node = options.node ? getNode(config, options.node) : others.nodes.length > 0 ? pickNode(others, store) : getNode(config, old.node);
    const release = await acquireLock(store, `project:${project.name}`, `project ${project.name}`, { waitMs: LOCK_WAIT_MS });
    try {
      const data = Buffer.from(old.spec_text);
      const result = await sendNewTask(ctx, session, {
        project,
        node,
        spec: { data, text: old.spec_text, title: specTitle(old.spec_text), sha256: sha256(data) },
        agent: resolveAgent(config, project, node),
        retryOf: old.task_id,
      });
      store.updateTask(project.name, old.task_id, { state: 'retried', error: `retried as ${result.task_id} on ${result.node}` });
      session.log({ project: project.name, task_id: old.task_id, node: old.node, level: 'info', kind: 'retried', message: `${old.task_id} sent again as ${result.task_id} to ${result.node}` });
      return { ...result, retry_of: old.task_id };
    } finally {
      await release();
    }
  } finally {
    session.close();
  }
}
