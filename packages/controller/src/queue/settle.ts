import type { TaskReport, TaskResult } from '@gsync/core';
import type { ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { finishStep, lostStep, readAnswer, type Collected } from '../lifecycle/decisions.js';
import { applyStep, transition } from '../lifecycle/transition.js';
import type { ReportTask } from '../report/report.js';
import { attention, describe } from '../report/task-entry.js';
import type { TaskRow } from '../store/store.js';

/**
 * Moves one task on from what its node said about it: still running (and alive
 * again, if it was stale), finished (its result collected first), or lost. What
 * the user must hear of goes into `tasks`, the run's report.
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
  if (answer.kind === 'lost') {
    tasks.push(attention(applyStep(session, task, lostStep(task, answer.reason, store.timestamp())), project));
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
    store.updateTask(project.name, task.task_id, { withheld: JSON.stringify(withheld) });
    session.log({
      ...at,
      level: 'warn',
      kind: 'withheld',
      message: `${task.task_id}: ${task.node} kept ${withheld.length} file(s) out of the result as secrets: ${withheld.map((w) => `${w.path} (${w.rule})`).join(', ')}`,
      data: { withheld },
    });
  }
  const collected = answer.nodeState !== 'empty' && answer.result ? await collect(answer.result) : undefined;
  const row = applyStep(session, task, finishStep(task, answer, collected, store.timestamp()));
  if (row.state === 'empty') tasks.push(describe(row, 'empty'));
  else if (row.state !== 'collected') tasks.push(attention(row, project));
}
