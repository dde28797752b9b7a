import { checkName, gitOps } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { PENDING_STATES } from '../lifecycle/states.js';
import { forecastConflicts, forecastTasks, type ConflictsResult } from '../queue/forecast.js';
import { collectFinished } from '../queue/pull-run.js';
import { checkRepo } from '../repo.js';

export interface ConflictsOptions {
  project: string;
  /** Only what is collected already: no node is asked. */
  offline?: boolean;
}

/**
 * The conflict forecast on its own: which finished, not yet merged tasks conflict with
 * main and with each other. First it collects what has finished on the nodes (fetched
 * and checked as a pull does, kept on the task branches, nothing merged), so a forecast
 * made right after the agents finish sees their work. Main never moves.
 */
export async function conflicts(ctx: Context, options: ConflictsOptions): Promise<ConflictsResult> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    const mainRef = `refs/heads/${project.main_branch}`;
    const before = new Set(session.store.listTasks(project.name, ['collected']).map((t) => t.task_id));
    const got = options.offline ? { tasks: [], unreachable: [] } : await collectFinished(session, project);
    const main = await checkRepo(project, mainRef);
    const collected = session.store.listTasks(project.name, ['collected']);
    const running = session.store.listTasks(project.name, PENDING_STATES).map((t) => ({ task_id: t.task_id, node: t.node }));
    const forecast = await forecastConflicts(project.repo_local, main, forecastTasks(collected));
    const conflicted = [];
    for (const t of session.store.listTasks(project.name, ['conflicted'])) {
      if (t.result_head && (await gitOps.resolveCommit(project.repo_local, t.result_head))) {
        conflicted.push({ task_id: t.task_id, paths: t.conflict_paths ? (JSON.parse(t.conflict_paths) as string[]) : [], resolved_by: t.resolved_by });
      }
    }
    return {
      project: project.name,
      main_branch: project.main_branch,
      tasks: collected.map((t) => t.task_id),
      conflicted,
      collected_now: collected.filter((t) => !before.has(t.task_id)).map((t) => t.task_id),
      running,
      unreachable: got.unreachable,
      ...forecast,
    };
  });
}
