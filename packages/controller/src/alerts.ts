import { errorMessage, inert, inertJson } from '@gsync/core';
import type { Session } from './context.js';

export interface Alert {
  kind: 'downgraded';
  project: string;
  task_id: string;
  node: string;
  message: string;
}

/** How long alert_command may take; its output is not read. */
const ALERT_SECONDS = 30;

/**
 * Something the user must hear about although the run goes on (a task that could not
 * use the shared remote travelled as a bundle): a warning on stderr, an event, a mark on
 * the task for the report, and alert_command, when there is one, with the alert as JSON
 * on its stdin. An alert_command that fails is itself a warning, never a failed run.
 */
export async function raiseAlert(session: Session, alert: Alert): Promise<void> {
  const message = inert(alert.message, 2000);
  session.store.updateTask(alert.project, alert.task_id, { downgraded: message });
  session.log({ project: alert.project, task_id: alert.task_id, node: alert.node, level: 'warn', kind: alert.kind, message: `${alert.task_id}: ${message}` });
  const argv = session.config.alertCommand;
  if (!argv) return;
  const { execa } = await import('execa');
  const run = await execa(argv[0]!, argv.slice(1), {
    input: `${inertJson({ ...alert, message, at: session.ctx.now().toISOString() })}\n`,
    stdout: 'ignore',
    stderr: 'ignore',
    reject: false,
    timeout: ALERT_SECONDS * 1000,
    env: session.ctx.env,
  }).catch((error: unknown) => ({ failed: true, exitCode: undefined, message: errorMessage(error) }));
  if (run.failed)
    session.log({
      project: alert.project,
      task_id: alert.task_id,
      level: 'warn',
      kind: 'alert_failed',
      message: `alert_command failed (${run.exitCode === undefined ? inert(String(run.message ?? ''), 300) : `exit ${run.exitCode}`}); the alert is in the event log`,
    });
}
