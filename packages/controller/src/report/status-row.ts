import type { TaskRow } from '../store/store.js';

export interface StatusRow {
  project: string;
  task_id: string;
  node: string;
  state: string;
  node_state: string | null;
  branch: string;
  title: string;
  dispatched_at: string | null;
  finished_at: string | null;
  merged_at: string | null;
  merge_commit: string | null;
  error: string | null;
  /** What the node says now (status without --offline, for tasks still out on a node). */
  live?: LiveState | undefined;
}

/** A node's answer about one task, as status shows it. */
export interface LiveState {
  /** The node's state (queued, running, done, ...), or `not on the node`. */
  state?: string;
  /** Since its run started (until it finished). */
  seconds?: number;
  /** A queued task's place in the node's queue, 1 being next. */
  position?: number;
  /** Why there is no answer (the node could not be reached, or its answer not read). */
  error?: string;
}

/** One task as `status` shows it. */
export function toStatusRow(t: TaskRow): StatusRow {
  return {
    project: t.project,
    task_id: t.task_id,
    node: t.node,
    state: t.state,
    node_state: t.node_state,
    branch: t.branch,
    title: t.spec_title,
    dispatched_at: t.dispatched_at,
    finished_at: t.finished_at,
    merged_at: t.merged_at,
    merge_commit: t.merge_commit,
    error: t.error,
  };
}
