import { checkName } from '@gsync/core';
import { carrierFor } from '../carrier/carrier.js';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import type { DispatchResult } from '../dispatch/send-task.js';
import { dispatchResolution } from '../queue/resolution.js';
import { withProjectLock } from '../store/lock.js';

export interface ResolveCommandOptions {
  project: string;
  task: string;
  node?: string;
  agent?: string;
}

/** `gsync-ctl resolve`: dispatches an agent to resolve a conflicted task (what pull-bundles does itself when a conflict_handler is set). */
export async function resolve(ctx: Context, options: ResolveCommandOptions): Promise<DispatchResult & { spec_path: string }> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    carrierFor(project);
    const taskId = checkName('task id', options.task);
    const task = session.store.taskNamed(project.name, taskId);
    return withProjectLock(session.store, project.name, ctx.pid, () =>
      dispatchResolution(session, project, task, { node: options.node, agent: options.agent }),
    );
  });
}
