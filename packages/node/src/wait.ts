import { isFinal, processAlive } from '@gsync/core';
import { taskDir, taskPaths } from './paths.js';
import { readStatus } from './status.js';

export interface WaitOptions {
  workRoot: string;
  project: string;
  taskIds: readonly string[];
  /** The longest to wait before answering that nothing changed. */
  seconds: number;
  /** Resolves when the controller hangs up: waiting any longer is for nobody. */
  cancelled: Promise<void>;
  pollMs?: number;
}

/** A task a controller should look at now: finished, gone, or its run died without finishing. */
async function needsLook(workRoot: string, project: string, taskId: string): Promise<boolean> {
  const status = await readStatus(taskPaths(taskDir(workRoot, project, taskId)).status).catch(() => null);
  if (!status || isFinal(status.state)) return true;
  return status.state !== 'received' && status.pid !== undefined && !processAlive(status.pid);
}

/**
 * The long poll behind `pull --wait`: answers as soon as one of the tasks needs the
 * controller, or after `seconds` with nothing. Costs a few stat-sized reads a second,
 * instead of a new SSH connection and process per poll.
 */
export async function waitForTasks(options: WaitOptions): Promise<{ changed: string[] }> {
  const deadline = Date.now() + options.seconds * 1000;
  let hungUp = false;
  void options.cancelled.then(() => {
    hungUp = true;
  });
  for (;;) {
    const changed: string[] = [];
    for (const id of options.taskIds) if (await needsLook(options.workRoot, options.project, id)) changed.push(id);
    if (changed.length > 0 || hungUp || Date.now() >= deadline) return { changed };
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}
