import type { TaskRow } from '../store/store.js';

export interface StatusRow {
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
}

/** One task as `status` shows it. */
export function toStatusRow(t: TaskRow): StatusRow {
  return {
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
