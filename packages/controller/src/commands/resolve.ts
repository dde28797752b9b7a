import { UsageError, checkName } from '@gsync/core';
import { getProject } from '../config.js';
import { openSession, type Context } from '../context.js';
import { LOCK_WAIT_MS, acquireLock } from '../lock.js';
import { dispatchResolution } from '../resolution.js';
import type { DispatchResult } from './dispatch.js';
import { checkSyncMode } from './dispatch.js';

export interface ResolveCommandOptions {
  project: string;
  task: string;
  node?: string;
  agent?: string;
}

/** Dispatches an agent to resolve a conflicted task (what pull-bundles does itself when a conflict_handler is set). */
export async function resolve(ctx: Context, options: ResolveCommandOptions): Promise<DispatchResult & { spec_path: string }> {
  const session = await openSession(ctx);
  try {
    const project = getProject(session.config, checkName('project', options.project));
    checkSyncMode(project);
    const taskId = checkName('task id', options.task);
    const task = session.store.getTask(project.name, taskId);
    if (!task) throw new UsageError(`no task ${taskId} in project ${project.name}`, { hint: `gsync-ctl status --project ${project.name} lists them` });
    const release = await acquireLock(session.store, `project:${project.name}`, `project ${project.name}`, { waitMs: LOCK_WAIT_MS });
    try {
      return await dispatchResolution(ctx, session, project, task, { node: options.node, agent: options.agent });
    } finally {
      await release();
    }
  } finally {
    session.close();
  }
}
