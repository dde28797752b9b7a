import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { FILES, isFinal, processAlive, type TaskStatus } from '@gsync/core';
import { taskDir, taskPaths } from './paths.js';
import { readStatus } from './status.js';
import { lastLogLine } from './tail.js';

/** While one of its tasks is queued, a wait lets the queue start what it can this often: a run that died frees its slot without a word. */
const KICK_EVERY_MS = 5_000;

export interface WaitOptions {
  workRoot: string;
  project: string;
  taskIds: readonly string[];
  /** The longest to wait before answering that nothing changed. */
  seconds: number;
  /** Resolves when the controller hangs up: waiting any longer is for nobody. */
  cancelled: Promise<void>;
  /** Starts what the node's queue allows now. */
  kick?: () => Promise<void>;
  /** Given, it is told each task's state and last log line at the start, then whenever one changes. */
  onTails?: (tails: TaskTail[]) => Promise<void>;
  pollMs?: number;
}

/** What `pull --wait` shows of a task while it waits: where it is and what its agent said last. */
export interface TaskTail {
  task_id: string;
  state: TaskStatus['state'] | null;
  started_at?: string;
  line: string;
}

/** Each task's tail, read again only when its log grew or its state moved; those that changed since the last call. */
function tailReader(dirs: readonly string[], taskIds: readonly string[]) {
  const last = new Map<string, { size: number; state: string | null; line: string }>();
  return async (statuses: readonly (TaskStatus | null)[]): Promise<TaskTail[]> => {
    const changed: TaskTail[] = [];
    for (const [i, id] of taskIds.entries()) {
      const status = statuses[i] ?? null;
      const log = taskPaths(dirs[i]!).agentLog;
      const size = await stat(log).then(
        (s) => s.size,
        () => 0,
      );
      const before = last.get(id);
      if (before && before.size === size && before.state === (status?.state ?? null)) continue;
      const line = before?.size === size ? before.line : (await lastLogLine(log).catch(() => ({ line: '' }))).line;
      last.set(id, { size, state: status?.state ?? null, line });
      changed.push({ task_id: id, state: status?.state ?? null, ...(status?.started_at ? { started_at: status.started_at } : {}), line });
    }
    return changed;
  };
}

/** A task a controller should look at now: finished, gone, or its run died without finishing. Queued is waiting, not dead. */
function needsLook(status: TaskStatus | null): boolean {
  if (!status || isFinal(status.state)) return true;
  if (status.state === 'queued' || status.state === 'received') return false;
  return status.pid !== undefined && !processAlive(status.pid);
}

/**
 * Watches the task dirs for a new status.json (it is replaced by a rename, which a watch on
 * its dir sees) for the whole wait; `next(ms)` resolves at the next one since the last look,
 * or after `ms`. Where watching fails (a file system without notifications, a dir not there
 * yet) the time limit alone is the poll.
 */
function statusWatch(dirs: readonly string[], cancelled: Promise<void>) {
  let seen = false;
  let wake: (() => void) | undefined;
  const fire = () => {
    seen = true;
    wake?.();
  };
  void cancelled.then(fire);
  const watchers: FSWatcher[] = [];
  for (const dir of dirs) {
    try {
      // Only status.json counts: the agent's log in the same dir may change many times a second.
      watchers.push(watch(dir, { persistent: false }, (_event, file) => (String(file) === FILES.status ? fire() : undefined)).on('error', () => undefined));
    } catch {
      // Polled instead.
    }
  }
  return {
    next(ms: number): Promise<void> {
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          seen = false;
          resolve();
        };
        const timer = setTimeout(done, seen ? 0 : ms);
        wake = done;
      });
    },
    close(): void {
      for (const w of watchers) w.close();
    },
  };
}

/**
 * The long poll behind `pull --wait`: answers as soon as one of the tasks needs the
 * controller, or after `seconds` with nothing. It watches the task dirs, and reads their
 * status at least every `pollMs` as well, instead of a new SSH connection and process per poll.
 */
export async function waitForTasks(options: WaitOptions): Promise<{ changed: string[] }> {
  const deadline = Date.now() + options.seconds * 1000;
  let hungUp = false;
  void options.cancelled.then(() => {
    hungUp = true;
  });
  const dirs = options.taskIds.map((id) => taskDir(options.workRoot, options.project, id));
  const changes = statusWatch(dirs, options.cancelled);
  const tails = options.onTails ? tailReader(dirs, options.taskIds) : undefined;
  let nextKick = 0;
  try {
    for (;;) {
      const statuses = await Promise.all(dirs.map((dir) => readStatus(taskPaths(dir).status).catch(() => null)));
      const moved = tails ? await tails(statuses) : [];
      if (moved.length > 0) await options.onTails?.(moved);
      const changed = options.taskIds.filter((_, i) => needsLook(statuses[i] ?? null));
      if (changed.length > 0 || hungUp || Date.now() >= deadline) return { changed };
      if (options.kick && Date.now() >= nextKick && statuses.some((s) => s?.state === 'queued')) {
        await options.kick();
        nextKick = Date.now() + KICK_EVERY_MS;
      }
      await changes.next(Math.min(options.pollMs ?? 1000, Math.max(deadline - Date.now(), 0)));
    }
  } finally {
    changes.close();
  }
}
