import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BusyError } from '@gsync/core';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock file holding the owner's pid. A lock whose owner is dead
 * (a crashed run) is taken over; a live one makes the caller fail at once.
 */
export async function acquireLock(path: string, what: string): Promise<() => Promise<void>> {
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
      if (pid && alive(pid)) {
        throw new BusyError(`${what} is in use by another gsync-ctl (pid ${pid})`, { hint: 'wait for it to finish, then run again' });
      }
      await rm(path, { force: true });
    }
  }
  throw new BusyError(`${what} is in use by another gsync-ctl`);
}
