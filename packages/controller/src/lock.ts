import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BusyError } from '@gsync/core';

/** True while a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LockOptions {
  /** Wait up to this long for a live owner to finish before failing (default: fail at once). */
  waitMs?: number;
}

/**
 * An exclusive lock file holding the owner's pid. A lock whose owner is dead
 * (a crashed run) is taken over; a live one makes the caller wait up to
 * `waitMs`, then fail with BusyError.
 */
export async function acquireLock(path: string, what: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const deadline = Date.now() + (options.waitMs ?? 0);
  for (;;) {
    try {
      return await tryLock(path, what);
    } catch (error) {
      if (!(error instanceof BusyError) || Date.now() >= deadline) throw error;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 100));
    }
  }
}

async function tryLock(path: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (pid && processAlive(pid)) {
        throw new BusyError(`${what} is in use by another gsync-ctl (pid ${pid})`, { hint: 'wait for it to finish, then run again' });
      }
      await rm(path, { force: true });
    }
  }
  throw new BusyError(`${what} is in use by another gsync-ctl`);
}
