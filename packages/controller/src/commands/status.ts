import { checkName } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import type { TaskRow } from '../store/store.js';

export interface StatusOptions {
  project: string;
}

export interface StatusRow {
  task_id: string;
  node: string;
  state: string;
  node_state: string | null;
  branch: string;
  title: string;
  dispatched_at: string | null;
  finished_at: string | null;
  merged_at: string | null;
  merge_commit: string | null;
  error: string | null;
}

function toRow(t: TaskRow): StatusRow {
  return {
    task_id: t.task_id,
    node: t.node,
    state: t.state,
    node_state: t.node_state,
    branch: t.branch,
    title: t.spec_title,
    dispatched_at: t.dispatched_at,
    finished_at: t.finished_at,
    merged_at: t.merged_at,
    merge_commit: t.merge_commit,
    error: t.error,
  };
}

/** Every task of a project as the store knows it (pull-bundles refreshes what nodes report). */
export async function status(ctx: Context, options: StatusOptions): Promise<StatusRow[]> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    return session.store.listTasks(project.name).map(toRow);
  });
}
