import type { Session } from '../context.js';
import type { TaskFields, TaskRow } from '../store/store.js';
import type { Step, StepEvent } from './decisions.js';
import { canTransition, type TaskState } from './states.js';

/**
 * The only way a task's state changes: the state, its fields and the event that
 * says why are written in one transaction, and a move the lifecycle does not allow
 * throws (a bug, never a user's mistake). The event is then shown.
 */
export function transition(
  session: Session,
  task: Pick<TaskRow, 'project' | 'task_id' | 'node'>,
  to: TaskState,
  fields: TaskFields,
  event: StepEvent,
): TaskRow {
  const row = session.store.moveTask(task.project, task.task_id, to, fields, { node: task.node, ...event }, canTransition);
  session.ctx.onEvent({ level: event.level, kind: event.kind, message: event.message, project: task.project, task_id: task.task_id, node: task.node });
  return row;
}

export function applyStep(session: Session, task: Pick<TaskRow, 'project' | 'task_id' | 'node'>, step: Step): TaskRow {
  return transition(session, task, step.to, step.fields, step.event);
}
