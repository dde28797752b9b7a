import { randomBytes } from 'node:crypto';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { processAlive } from '@gsync/core';

/** A holder reads status files, starts processes or checks a task out: one holding the lock this long is gone (and its pid reused). */
const MAX_HOLD_MS = 5 * 60_000;
/** A holder writes its pid right after creating the file: one still without a pid after this long died in between. */
const MAX_UNOWNED_MS = 10_000;

interface SeenLock {
  text: string;
  ageMs: number;
}

async function readLock(path: string): Promise<SeenLock | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { text, ageMs: Date.now() - info.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function isStale(lock: SeenLock): boolean {
  const pid = Number.parseInt(lock.text, 10);
  if (!(pid > 0)) return lock.ageMs > MAX_UNOWNED_MS;
  return !processAlive(pid) || lock.ageMs > MAX_HOLD_MS;
}

/** Creates the lock file with O_EXCL, so of all the processes trying at once exactly one gets it. */
async function tryCreate(path: string, token: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(token);
  } catch (error) {
    await rm(path, { force: true });
    throw error;
  } finally {
    await handle.close();
  }
  return true;
}

/** Removes the lock only while it is still this holder's: a lock broken as stale may belong to another by now. */
async function release(path: string, token: string): Promise<void> {
  if ((await readLock(path))?.text === token) await rm(path, { force: true });
}

/**
 * Removes a lock whose holder died. Only the holder of `<lock>.break` removes one, after
 * looking again: two processes that both saw the same dead holder could otherwise each
 * remove a lock, the second one a fresh lock the first had just taken.
 */
async function breakIfStale(path: string): Promise<void> {
  const seen = await readLock(path);
  if (!seen || !isStale(seen)) return;
  const breaker = `${path}.break`;
  const token = ownerToken();
  if (!(await tryCreate(breaker, token))) {
    // A breaker that died in its few steps leaves its file: the only case two may race, and it needs a crash first.
    const other = await readLock(breaker);
    if (other && isStale(other)) await rm(breaker, { force: true });
    return;
  }
  try {
    const now = await readLock(path);
    if (now && isStale(now)) await rm(path, { force: true });
  } finally {
    await release(breaker, token);
  }
}

function ownerToken(): string {
  return `${process.pid} ${randomBytes(6).toString('hex')}\n`;
}

/**
 * Runs `fn` holding the lock file at `path`: one process at a time, on this machine,
 * whatever dies where. Waiting is a poll with jitter, as a lock is held for moments (a checkout at most).
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const token = ownerToken();
  while (!(await tryCreate(path, token))) {
    await breakIfStale(path);
    await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
  }
  try {
    return await fn();
  } finally {
    await release(path, token);
  }
}
