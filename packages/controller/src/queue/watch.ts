import { PassThrough } from 'node:stream';
import { errorMessage } from '@gsync/core';
import { getNode, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { waitForTasks } from '../node-api/calls.js';
import type { Waiting } from './waiting.js';
import { AWAITED_STATES } from '../lifecycle/states.js';
import type { NodeLinks } from '../ssh/links.js';
import { tasksByNode } from '../store/store.js';

/**
 * Between the rounds of `pull --wait`: one long poll per node with running tasks, over
 * the run's kept link, answered by the node as soon as a task needs a look. Returns
 * when any node says so, when `seconds` pass, or at once if no node can be asked
 * (the caller then sleeps instead). With `waiting`, each poll also brings its tasks'
 * states and last log lines as they change.
 */
export async function waitForChange(
  session: Session,
  project: ProjectConfig,
  links: NodeLinks,
  seconds: number,
  waiting?: Waiting,
): Promise<'changed' | 'timeout' | 'unavailable'> {
  const byNode = tasksByNode(session.store.listTasks(project.name, AWAITED_STATES));
  waiting?.set([...byNode.values()].flat());
  const cancels: PassThrough[] = [];
  const polls = [...byNode].map(async ([name, tasks]) => {
    const node = getNode(session.config, name);
    const cancel = new PassThrough();
    cancels.push(cancel);
    const t = await links.get(node);
    const changed = await waitForTasks(
      t,
      node,
      project.name,
      tasks.map((x) => x.task_id),
      seconds,
      cancel,
      waiting && ((tails) => waiting.tails(tails)),
    );
    if (changed.length === 0) throw new Timeout();
    return 'changed' as const;
  });
  try {
    return await Promise.any(polls);
  } catch (error) {
    const reasons = error instanceof AggregateError ? error.errors : [error];
    if (reasons.length > 0 && reasons.every((e) => e instanceof Timeout)) return 'timeout';
    for (const e of reasons.filter((e) => !(e instanceof Timeout))) {
      session.log({ project: project.name, level: 'info', kind: 'wait_fallback', message: `waiting by polling instead: ${errorMessage(e)}` });
    }
    return 'unavailable';
  } finally {
    // The other nodes' polls are no longer needed: hang up on them.
    for (const c of cancels) c.end();
    await Promise.allSettled(polls);
  }
}

class Timeout extends Error {}
