import { UsageError, checkName } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { WATCHED_STATES } from '../lifecycle/states.js';
import { toStatusRow, type LiveState, type StatusRow } from '../report/status-row.js';

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
      const out = tasks.filter((t) => WATCHED_STATES.includes(t.state) || t.state === 'dispatching');
      // SSH is loaded only when a node is to be asked: a status with nothing out starts as fast as it can.
      const live =
        options.offline || out.length === 0 ? new Map<string, LiveState>() : await (await import('../queue/ask-nodes.js')).askNodes(session, project, out);
      rows.push(...tasks.map((t) => ({ ...toStatusRow(t), ...(live.has(t.task_id) ? { live: live.get(t.task_id) } : {}) })));
    }
    return rows;
  });
}
