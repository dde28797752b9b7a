/**
 * A task's states on the controller, and the moves between them. This is the one
 * place that knows them: everything else asks here, and only `transition()` writes one.
 *
 *   dispatching ─► dispatched ─► collected ─► merged
 *        │             │  ▲           ├──► conflicted ─► resolved
 *     (gone)           │  │           └──► rejected (test gate)
 *                      │  └── stale ◄─┐
 *                      ├─► empty      │ (no answer for stale_after_seconds)
 *                      ├─► withheld (collected, not merged: the node kept secrets out) ─► retried
 *                      ├─► failed | timeout | rejected ─► retried
 *                      └──────────────┘
 *
 * A `dispatching` row whose dispatch never reached the node is removed, not moved:
 * its id is free again.
 */
export const TASK_STATES = [
  'dispatching',
  'dispatched',
  'collected',
  'merged',
  'conflicted',
  'empty',
  'failed',
  'timeout',
  'rejected',
  'resolved',
  'stale',
  'retried',
  'withheld',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  dispatching: ['dispatched'],
  dispatched: ['collected', 'withheld', 'empty', 'failed', 'timeout', 'rejected', 'stale'],
  stale: ['dispatched', 'failed', 'retried'],
  collected: ['merged', 'conflicted', 'rejected'],
  conflicted: ['resolved'],
  failed: ['retried'],
  timeout: ['retried'],
  rejected: ['retried'],
  withheld: ['retried'],
  merged: [],
  empty: [],
  resolved: [],
  retried: [],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Sent and not yet answered for: what "least busy" counts, and what a pull waits for. */
export const OPEN_STATES: readonly TaskState[] = ['dispatching', 'dispatched'];
/** States a pull asks the node about. */
export const WATCHED_STATES: readonly TaskState[] = ['dispatched', 'stale'];
/** Tasks that need the user: they make a pull exit 3 until dealt with. */
export const ATTENTION_STATES: readonly TaskState[] = ['conflicted', 'withheld', 'failed', 'timeout', 'rejected', 'stale'];
/** States `retry` sends a task again from; a conflict is for `resolve`, running work is left alone. */
export const RETRYABLE_STATES: readonly TaskState[] = ['stale', 'failed', 'timeout', 'rejected', 'withheld'];
/** A resolution task in one of these is under way or done: a second one is refused. */
export const LIVE_RESOLUTION_STATES: readonly TaskState[] = ['dispatching', 'dispatched', 'collected', 'merged'];

export function isRetryable(state: TaskState): boolean {
  return RETRYABLE_STATES.includes(state);
}
