import { fillSlots, rememberLimit, withQueueLock } from './queue.js';
import { taskPaths, workRootOfTask } from './paths.js';
import { readStatus, setState } from './status.js';

export interface StartResult {
  started: boolean;
  pid?: number;
  state: string;
  /** For a queued task: its place in the node's queue, 1 being next. */
  position?: number;
  /** Why the task could not be started or queued just now (it waits for the next look). */
  error?: string;
}

/**
 * Asks for a task's run. The task joins the node's queue (unless it is in it or under way
 * already), and the queue starts what `max_parallel` allows, oldest first, counting the runs
 * of every project under the work root. All of it under the queue lock, so accepts arriving
 * at once never start more runs than the limit.
 */
export async function startTask(dir: string, self: string, env: NodeJS.ProcessEnv, maxParallel?: number): Promise<StartResult> {
  const paths = taskPaths(dir);
  const workRoot = workRootOfTask(paths.dir);
  return withQueueLock(workRoot, async () => {
    if (maxParallel !== undefined) await rememberLimit(workRoot, maxParallel);
    const status = await readStatus(paths.status);
    if (!status) throw new Error(`no task at ${paths.dir}`);
    // `received` without a start time: accepted, never asked to start.
    if (status.state === 'received' && status.started_at === undefined) await setState(paths.status, 'queued');
    const { started, waiting } = await fillSlots(workRoot, self, env);
    if (started.has(paths.dir)) return { started: true, pid: started.get(paths.dir), state: 'received' };
    const position = waiting.indexOf(paths.dir) + 1;
    if (position > 0) return { started: false, state: 'queued', position };
    return { started: false, state: (await readStatus(paths.status))?.state ?? status.state };
  });
}
