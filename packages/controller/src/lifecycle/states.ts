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
 *   dispatched | stale ─► cancelling ─► cancelled ─► retried
 *     (cancel: the node stops it; the next pull brings back what it did, as -wip only)
 *   failed | timeout | rejected | withheld | conflicted | collected ─► dismissed ─► retried
 *     (dismiss: set aside, its branches kept; pull no longer asks attention for it, nor merges it)
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
  'cancelling',
  'cancelled',
  'dismissed',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  dispatching: ['dispatched'],
  dispatched: ['collected', 'withheld', 'empty', 'failed', 'timeout', 'rejected', 'stale', 'cancelling'],
  stale: ['dispatched', 'failed', 'retried', 'cancelling'],
  collected: ['merged', 'conflicted', 'rejected', 'dismissed'],
  conflicted: ['resolved', 'dismissed'],
  failed: ['retried', 'dismissed'],
  timeout: ['retried', 'dismissed'],
  rejected: ['retried', 'dismissed'],
  withheld: ['retried', 'dismissed'],
  cancelling: ['cancelled'],
  cancelled: ['retried'],
  dismissed: ['retried'],
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
export const WATCHED_STATES: readonly TaskState[] = ['dispatched', 'stale', 'cancelling'];
/** On a node that answers, still to come back: what `pull --wait` waits for. */
export const AWAITED_STATES: readonly TaskState[] = ['dispatched', 'cancelling'];
/** Not back yet: a pull lists them as still running, and exits 4 while there are any. */
export const PENDING_STATES: readonly TaskState[] = [...OPEN_STATES, 'cancelling'];
/** Tasks that need the user: they make a pull exit 3 until dealt with. */
export const ATTENTION_STATES: readonly TaskState[] = ['conflicted', 'withheld', 'failed', 'timeout', 'rejected', 'stale'];
/** States `retry` sends a task again from; a conflict is for `resolve`, running work is left alone. */
export const RETRYABLE_STATES: readonly TaskState[] = ['stale', 'failed', 'timeout', 'rejected', 'withheld', 'cancelled', 'dismissed'];
/** States `cancel` stops: the agent may still run on the node. */
export const CANCELLABLE_STATES: readonly TaskState[] = ['dispatched', 'stale'];
/** States `dismiss` sets aside: ended, nothing of them on main; needing the user, or collected and kept off main. */
export const DISMISSABLE_STATES: readonly TaskState[] = ['failed', 'timeout', 'rejected', 'withheld', 'conflicted', 'collected'];
/** A resolution task in one of these is under way or done: a second one is refused. */
export const LIVE_RESOLUTION_STATES: readonly TaskState[] = ['dispatching', 'dispatched', 'collected', 'merged'];

export function isRetryable(state: TaskState): boolean {
  return RETRYABLE_STATES.includes(state);
}
