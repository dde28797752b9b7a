import { checkName } from '@gsync/core';
import { getProject, type ProjectConfig } from '../config.js';
import { withSession, type Context, type Session } from '../context.js';
import { withProjectLock } from '../store/lock.js';
import type { TaskRow } from '../store/store.js';

export interface NamedTask {
  session: Session;
  project: ProjectConfig;
  task: TaskRow;
  /** The user's reason, trimmed; null when none was given. */
  reason: string | null;
}

/** A command about one task the user named: its project and row found (or exit 2), under the project's lock. */
export function withNamedTask<T>(
  ctx: Context,
  options: { project: string; task: string; reason?: string | undefined },
  fn: (n: NamedTask) => Promise<T>,
): Promise<T> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    const taskId = checkName('task id', options.task);
    const reason = options.reason?.trim() || null;
    return withProjectLock(session.store, project.name, ctx.pid, async () =>
      fn({ session, project, task: session.store.taskNamed(project.name, taskId), reason }),
    );
  });
}
