import { performance } from 'node:perf_hooks';
import { BusyError, processAlive } from '@gsync/core';
import type { Store } from './store.js';

export interface LockOptions {
  /** The process taking the lock. */
  pid: number;
  /** Wait up to this long for a live owner to finish before failing (default: fail at once). */
  waitMs?: number;
}

/** How long commands wait for another gsync-ctl holding the project before they give up (exit 6). */
export const LOCK_WAIT_MS = 15_000;

/**
 * An exclusive per-project lock, kept as a row in the store and taken inside a
 * write transaction, so two controllers can never both hold it. A lock whose
 * owner is dead (a crashed run) is taken over; a live one makes the caller wait
 * up to `waitMs`, then fail with BusyError.
 */
export async function acquireLock(store: Store, name: string, what: string, options: LockOptions): Promise<() => Promise<void>> {
  const deadline = performance.now() + (options.waitMs ?? 0);
  for (;;) {
    const owner = store.tryLock(name, options.pid, processAlive);
    if (owner === undefined) return async () => store.unlock(name, options.pid);
    if (performance.now() >= deadline) {
      throw new BusyError(`${what} is in use by another gsync-ctl (pid ${owner})`, { hint: 'wait for it to finish, then run again' });
    }
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 100));
  }
}

/** Runs `fn` holding the project's lock (waiting up to LOCK_WAIT_MS for another gsync-ctl). */
export async function withProjectLock<T>(store: Store, project: string, pid: number, fn: () => Promise<T>): Promise<T> {
  const release = await acquireLock(store, `project:${project}`, `project ${project}`, { waitMs: LOCK_WAIT_MS, pid });
  try {
    return await fn();
  } finally {
    await release();
  }
}
