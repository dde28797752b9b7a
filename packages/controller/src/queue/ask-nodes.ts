import pLimit from 'p-limit';
import { errorMessage, inert, type TaskReport } from '@gsync/core';
import { getNode, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { reportTasks } from '../node-api/calls.js';
import type { LiveState } from '../report/status-row.js';
import { withNode } from '../ssh/connect.js';
import { tasksByNode, type TaskRow } from '../store/store.js';

/** What each node says now of the given tasks (those still out on a node), by task id: one `report` per node, nodes in parallel. */
export async function askNodes(session: Session, project: ProjectConfig, tasks: readonly TaskRow[]): Promise<Map<string, LiveState>> {
  const live = new Map<string, LiveState>();
  const now = session.ctx.now().getTime();
  const limit = pLimit(4);
  await Promise.all(
    [...tasksByNode(tasks)].map(([nodeName, nodeTasks]) =>
      limit(async () => {
        const node = session.config.nodes.find((n) => n.name === nodeName);
        if (!node) {
          for (const t of nodeTasks) live.set(t.task_id, { error: `node ${nodeName} is no longer in nodes.json` });
          return;
        }
        try {
          const reports = await withNode(session.connect, getNode(session.config, nodeName), (t) =>
            reportTasks(
              t,
              node,
              project.name,
              nodeTasks.map((x) => x.task_id),
            ),
          );
          for (const r of reports) if (nodeTasks.some((t) => t.task_id === r.task_id)) live.set(r.task_id, liveState(r, now));
        } catch (error) {
          for (const t of nodeTasks) live.set(t.task_id, { error: `${nodeName} did not answer: ${inert(errorMessage(error), 300)}` });
        }
      }),
    ),
  );
  return live;
}

/** A node's report as status shows it: the state, seconds since the run started (or finished), and a queued task's place. */
function liveState(r: TaskReport, now: number): LiveState {
  if (!r.exists || !r.status) return { state: r.error ? 'unreadable' : 'not on the node', ...(r.error ? { error: inert(r.error, 300) } : {}) };
  const s = r.status;
  const since = Date.parse(s.started_at ?? s.updated_at);
  const until = s.finished_at ? Date.parse(s.finished_at) : now;
  const seconds = Number.isFinite(since) && Number.isFinite(until) ? Math.max(0, Math.round((until - since) / 1000)) : undefined;
  return { state: s.state, ...(seconds !== undefined ? { seconds } : {}), ...(r.position ? { position: r.position } : {}) };
}
