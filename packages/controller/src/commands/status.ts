import pLimit from 'p-limit';
import { UsageError, checkName, errorMessage, inert, type TaskReport } from '@gsync/core';
import { getNode, getProject, type ProjectConfig } from '../config.js';
import { withSession, type Context, type Session } from '../context.js';
import { WATCHED_STATES } from '../lifecycle/states.js';
import { reportTasks } from '../node-api/calls.js';
import { toStatusRow, type LiveState, type StatusRow } from '../report/status-row.js';
import { withNode } from '../ssh/connect.js';
import { tasksByNode, type TaskRow } from '../store/store.js';

export interface StatusOptions {
  /** One project; or every project with `all`. */
  project?: string | undefined;
  all?: boolean;
  /** The store alone: no node is asked. */
  offline?: boolean;
}

/**
 * Every task of a project (or of all projects) as the store knows it, and for those still
 * out on a node, what the node says now: its state, for how long, and a queued task's place
 * in the node's queue. One `report` call per node, nodes asked in parallel; a node that
 * cannot be reached says so on its tasks. Nothing is changed here: `pull` settles.
 */
export async function status(ctx: Context, options: StatusOptions): Promise<StatusRow[]> {
  if (options.all && options.project) throw new UsageError('give --project or --all, not both');
  if (!options.all && !options.project) throw new UsageError('--project is required (or --all for every project)', { hint: 'gsync-ctl status --all' });
  return withSession(ctx, async (session) => {
    const projects = options.all ? [...session.config.projects.values()] : [getProject(session.config, checkName('project', options.project!))];
    const rows: StatusRow[] = [];
    for (const project of projects) {
      const tasks = session.store.listTasks(project.name);
      const live = options.offline ? new Map<string, LiveState>() : await askNodes(session, project, tasks);
      rows.push(...tasks.map((t) => ({ ...toStatusRow(t), ...(live.has(t.task_id) ? { live: live.get(t.task_id) } : {}) })));
    }
    return rows;
  });
}

/** What each node says now of the project's tasks still out there, by task id. */
async function askNodes(session: Session, project: ProjectConfig, tasks: readonly TaskRow[]): Promise<Map<string, LiveState>> {
  const live = new Map<string, LiveState>();
  const now = session.ctx.now().getTime();
  const out = tasks.filter((t) => WATCHED_STATES.includes(t.state) || t.state === 'dispatching');
  const limit = pLimit(4);
  await Promise.all(
    [...tasksByNode(out)].map(([nodeName, nodeTasks]) =>
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
