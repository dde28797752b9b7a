import { checkName } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { toStatusRow, type StatusRow } from '../report/status-row.js';

export interface StatusOptions {
  project: string;
}

/** Every task of a project as the store knows it (pull-bundles refreshes what nodes report). */
export async function status(ctx: Context, options: StatusOptions): Promise<StatusRow[]> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    return session.store.listTasks(project.name).map(toStatusRow);
  });
}
