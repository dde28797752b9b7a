import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod/mini';
import { ProtocolError, isValidName, processAlive, writeJsonAtomic } from '@gsync/core';
import { expandHome, nodeDir, taskPaths, tasksRoot } from './paths.js';
import { withLock } from './file-lock.js';
import { planStarts, queueOrder, type QueueEntry } from './queue-plan.js';
import { readStatus, setState } from './status.js';

const LIMIT_FILE = 'max-parallel.json';
const Limit = z.object({ max_parallel: z.int().check(z.positive()) });

/** Runs `fn` holding the node's queue lock: every decision to start or queue a run, in any project, one at a time. */
export async function withQueueLock<T>(workRoot: string, fn: () => Promise<T>): Promise<T> {
  const dir = nodeDir(workRoot);
  await mkdir(dir, { recursive: true });
  return withLock(join(dir, 'queue.lock'), fn);
}

/** Keeps the limit the controller sent, so that a finishing run, `report` and `wait` start no more than it allows. */
export async function rememberLimit(workRoot: string, maxParallel: number): Promise<void> {
  await writeJsonAtomic(join(nodeDir(workRoot), LIMIT_FILE), { max_parallel: maxParallel });
}

/** The limit last sent; none on a node never sent one (every task starts at once, as before the queue). */
async function readLimit(workRoot: string): Promise<number> {
  const path = join(nodeDir(workRoot), LIMIT_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return Number.POSITIVE_INFINITY;
    throw error;
  }
  const parsed = Limit.safeParse(JSON.parse(text));
  if (!parsed.success) throw new ProtocolError(`${path} does not hold a limit like {"max_parallel": 4}`);
  return parsed.data.max_parallel;
}

/** Every task dir of every project under the work root, with its status; one that cannot be read runs nothing. */
async function readTasks(workRoot: string): Promise<QueueEntry[]> {
  const projects = (await readdir(expandHome(workRoot)).catch(() => [] as string[])).filter(isValidName);
  const perProject = await Promise.all(
    projects.map(async (project) => {
      const root = tasksRoot(workRoot, project);
      const ids = (await readdir(root).catch(() => [] as string[])).filter(isValidName);
      const entries = await Promise.all(
        ids.map(async (id) => {
          const dir = join(root, id);
          const status = await readStatus(taskPaths(dir).status).catch(() => null);
          return status ? [{ dir, status }] : [];
        }),
      );
      return entries.flat();
    }),
  );
  return perProject.flat();
}

/** Starts `gsync-node run` in a new session, detached from the caller, so the controller may hang up: its stdio goes to node.log. */
async function launch(dir: string, self: string, env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const paths = taskPaths(dir);
  // Written before the run exists: no later look starts it twice, and this write cannot overwrite one of the run's.
  await setState(paths.status, 'received', { started_at: new Date().toISOString() });
  const log = openSync(paths.nodeLog, 'a');
  try {
    const child = spawn(process.execPath, [self, 'run', '--task-dir', paths.dir], {
      detached: true,
      stdio: ['ignore', log, log],
      env,
      cwd: paths.dir,
    });
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/**
 * Starts the oldest queued tasks while the node's limit leaves slots free; call it under
 * the queue lock. Returns the runs it started (pid by task dir) and the dirs still waiting, in order.
 */
export async function fillSlots(
  workRoot: string,
  self: string,
  env: NodeJS.ProcessEnv,
): Promise<{ started: Map<string, number | undefined>; waiting: string[] }> {
  const limit = await readLimit(workRoot);
  const { start, waiting } = planStarts(await readTasks(workRoot), limit, Date.now(), processAlive);
  const started = new Map<string, number | undefined>();
  for (const entry of start) started.set(entry.dir, await launch(entry.dir, self, env));
  return { started, waiting: waiting.map((e) => e.dir) };
}

/** The place of each queued task dir in the node's queue (1 is next), over every project under the work root. */
export async function queuePositions(workRoot: string): Promise<Map<string, number>> {
  return new Map(queueOrder(await readTasks(workRoot)).map((e, i) => [e.dir, i + 1]));
}

/** Starts what the queue allows now: after a run ended, or when one may have died (freeing its slot without a word). */
export async function kickQueue(workRoot: string, self: string, env: NodeJS.ProcessEnv): Promise<void> {
  // Most looks find nothing waiting: then no lock is taken and nothing is written.
  if (!(await readTasks(workRoot)).some((t) => t.status.state === 'queued')) return;
  await withQueueLock(workRoot, () => fillSlots(workRoot, self, env));
}
