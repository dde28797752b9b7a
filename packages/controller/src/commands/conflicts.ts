import { checkName, gitOps } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { forecastConflicts, forecastTasks, type ConflictsResult } from '../queue/forecast.js';
import { checkRepo } from '../repo.js';

export interface ConflictsOptions {
  project: string;
}

/**
 * The conflict forecast on its own: which collected (not yet merged) tasks
 * conflict with main and with each other. Reads only; moves no ref.
 */
export async function conflicts(ctx: Context, options: ConflictsOptions): Promise<ConflictsResult> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    const mainRef = `refs/heads/${project.main_branch}`;
    const main = await checkRepo(project, mainRef);
    const collected = session.store.listTasks(project.name, ['collected']);
    const forecast = await forecastConflicts(project.repo_local, main, forecastTasks(collected));
    const conflicted = [];
    for (const t of session.store.listTasks(project.name, ['conflicted'])) {
      if (t.result_head && (await gitOps.resolveCommit(project.repo_local, t.result_head))) {
        conflicted.push({ task_id: t.task_id, paths: t.conflict_paths ? (JSON.parse(t.conflict_paths) as string[]) : [], resolved_by: t.resolved_by });
      }
    }
    return { project: project.name, main_branch: project.main_branch, tasks: collected.map((t) => t.task_id), conflicted, ...forecast };
  });
}
