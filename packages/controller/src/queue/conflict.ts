import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errorMessage, writeFileAtomic } from '@gsync/core';
import { conflictHandler, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import type { ReportTask } from '../report/report.js';
import type { TaskRow } from '../store/store.js';
import { conflictPicture, dispatchResolution, resolutionSpec, resolutionSpecPath } from './resolution.js';

/** After a conflict: the resolution spec, and with a conflict_handler, the task that resolves it. */
export async function handleConflict(session: Session, project: ProjectConfig, task: TaskRow): Promise<Partial<ReportTask>> {
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  const handler = conflictHandler(session.config, project);
  // A resolution that conflicts again goes to the user, not round the loop.
  if (handler && !task.resolves) {
    try {
      const r = await dispatchResolution(session, project, task);
      return {
        resolution_spec: r.spec_path,
        resolution_task: r.task_id,
        next_step: `${r.task_id} on ${r.node} resolves it with the conflict handler; run pull-bundles again to merge it`,
      };
    } catch (error) {
      session.log({ ...at, level: 'error', kind: 'resolution_failed', message: `could not dispatch a resolution of ${task.task_id}: ${errorMessage(error)}` });
    }
  }
  const picture = await conflictPicture(session, project, task);
  if (!picture) return {};
  const specPath = resolutionSpecPath(session.ctx.configDir, project.name, task.task_id);
  await mkdir(dirname(specPath), { recursive: true });
  await writeFileAtomic(specPath, resolutionSpec(picture));
  session.log({ ...at, level: 'info', kind: 'resolution_spec', message: `wrote ${specPath}`, data: { path: specPath } });
  return { resolution_spec: specPath };
}
