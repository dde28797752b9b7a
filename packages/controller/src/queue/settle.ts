import { inertJson } from '@gsync/core';
import type { TaskReport, TaskResult } from '@gsync/core';
import type { ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { cancelledStep, finishStep, lostStep, readAnswer, type Collected } from '../lifecycle/decisions.js';
import { applyStep, transition } from '../lifecycle/transition.js';
import type { ReportTask } from '../report/report.js';
import { attention, cancelledEntry, describe } from '../report/task-entry.js';
import type { TaskRow } from '../store/store.js';

/**
 * Moves one task on from what its node said about it: still running (and alive
 * again, if it was stale), finished (its result collected first), or lost. A
 * cancelled task ends `cancelled` either way. What the user must hear of goes
 * into `tasks`, the run's report.
 */
export async function settle(
  session: Session,
  project: ProjectConfig,
  task: TaskRow,
  report: TaskReport | undefined,
  collect: (result: TaskResult) => Promise<Collected>,
  tasks: ReportTask[],
): Promise<void> {
  const { store } = session;
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  const answer = readAnswer(report);
  const cancelled = task.state === 'cancelling';
  if (answer.kind === 'lost') {
    const now = store.timestamp();
    if (cancelled) tasks.push(cancelledEntry(applyStep(session, task, cancelledStep(task, answer, undefined, now)), project));
    else tasks.push(attention(applyStep(session, task, lostStep(task, answer.reason, now)), project));
    return;
  }
  const nodeState = answer.nodeState;
  store.updateTask(project.name, task.task_id, { node_state: nodeState, last_seen_at: store.timestamp() });
  if (task.state === 'stale') {
    transition(
      session,
      task,
      'dispatched',
      { error: null },
      { level: 'info', kind: 'answering_again', message: `${task.task_id}: ${task.node} answers again (${nodeState})` },
    );
  }
  if (answer.kind === 'running') return;
  if (answer.withheld.length > 0) {
    const withheld = answer.withheld;
    store.updateTask(project.name, task.task_id, { withheld: inertJson(withheld) });
    session.log({
      ...at,
      level: 'warn',
      kind: 'withheld',
      message: `${task.task_id}: ${task.node} kept ${withheld.length} file(s) out of the result as secrets: ${withheld.map((w) => `${w.path} (${w.rule})`).join(', ')}`,
      data: { withheld },
    });
  }
  // A cancelled task's result is work in progress, whatever its agent got to: it comes back on -wip, never to merge.
  const result = answer.result && cancelled ? { ...answer.result, wip: true } : answer.result;
  const collected = answer.nodeState !== 'empty' && result ? await collect(result) : undefined;
  if (cancelled) {
    tasks.push(cancelledEntry(applyStep(session, task, cancelledStep(task, answer, collected, store.timestamp())), project));
    return;
  }
  const row = applyStep(session, task, finishStep(task, answer, collected, store.timestamp()));
  if (row.state === 'empty') tasks.push(describe(row, 'empty'));
  else if (row.state !== 'collected') tasks.push(attention(row, project));
}
