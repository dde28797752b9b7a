import { isFinal, type TaskStatus } from '@gsync/core';

/**
 * The node's queue as plain decisions over task statuses: which tasks hold one of the
 * node's `max_parallel` slots, in which order queued tasks start, and which start now.
 */

/** A task dir on this node and what its status file says. */
export interface QueueEntry {
  dir: string;
  status: TaskStatus;
}

/** A run started for a task has this long to write its first status; after that it never started. */
export const START_GRACE_MS = 60_000;

/** True while a task uses a slot: its run was just started, or its runner or agent is alive (an agent may outlive a killed runner). */
export function holdsSlot(status: TaskStatus, now: number, alive: (pid: number | undefined) => boolean): boolean {
  if (status.state === 'queued' || isFinal(status.state)) return false;
  // `received` with a start time: the queue started its run, which has not yet said so.
  if (status.state === 'received') return status.started_at !== undefined && now - Date.parse(status.updated_at) < START_GRACE_MS;
  return alive(status.pid) || alive(status.agent_pid);
}

/** When the task joined the queue: for `accept --start`, the time it was accepted. */
function queuedAt(status: TaskStatus): string {
  return status.history.filter((h) => h.state === 'queued').pop()?.at ?? status.updated_at;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The queued tasks, first come first served; a tie goes by dir, so every process reads the same order. */
export function queueOrder(entries: readonly QueueEntry[]): QueueEntry[] {
  return entries.filter((e) => e.status.state === 'queued').sort((a, b) => compare(queuedAt(a.status), queuedAt(b.status)) || compare(a.dir, b.dir));
}

/** The oldest queued tasks start, as many as `limit` leaves free; the rest wait, in order. */
export function planStarts(
  entries: readonly QueueEntry[],
  limit: number,
  now: number,
  alive: (pid: number | undefined) => boolean,
): { start: QueueEntry[]; waiting: QueueEntry[] } {
  const busy = entries.filter((e) => holdsSlot(e.status, now, alive)).length;
  const queue = queueOrder(entries);
  const free = Math.max(limit - busy, 0);
  return { start: queue.slice(0, free), waiting: queue.slice(free) };
}
