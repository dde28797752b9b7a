import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { once } from 'node:events';
import { FILES, PROTOCOL_VERSION, errorMessage, gitOps } from '@gsync/core';
import type { Readable, Writable } from 'node:stream';
import { TaskClash, acceptTask } from './accept.js';
import { cancelTask } from './cancel.js';
import { collectTasks } from './collect.js';
import { cacheDir, cachedCommits } from './cache.js';
import { taskDir, taskPaths, workRootOfTask } from './paths.js';
import { kickQueue } from './queue.js';
import { removeTasks } from './remove.js';
import { reportTasks } from './report.js';
import { runTask } from './run.js';
import { startTask } from './start.js';
import { tailLog } from './tail.js';
import { waitForTasks } from './wait.js';

declare const GSYNC_VERSION: string;
export const VERSION = typeof GSYNC_VERSION === 'string' ? GSYNC_VERSION : '0.0.0-dev';

/** Files a controller may read back from a task dir. */
const SENDABLE = new Set<string>([FILES.resultBundle, FILES.resultTree, FILES.result, FILES.status, FILES.agentLog, FILES.nodeLog]);

const USAGE = `gsync-node ${VERSION} (protocol ${PROTOCOL_VERSION})
usage:
  gsync-node hello [--work-root DIR --project P]   (with a project: the commits its object cache holds)
  gsync-node accept --work-root DIR --project P --task ID [--start [--max-parallel N]] [--hello] [--max-bytes N]   (task tar on stdin; --hello: hello first)
  gsync-node run --task-dir DIR
  gsync-node start --task-dir DIR [--max-parallel N]
  gsync-node report --work-root DIR --project P --task ID [--task ID ...]
  gsync-node wait --work-root DIR --project P --task ID [--task ID ...] [--seconds N] [--tails]   (until one needs a look; --tails: each task's last log line as it changes)
  gsync-node collect --work-root DIR --project P --task ID [--task ID ...]   (a tar: report.json, then each finished result bundle)
  gsync-node send --work-root DIR --project P --task ID --file NAME
  gsync-node tail --work-root DIR --project P --task ID [--from OFFSET] [--follow] [--seconds N] [--max-bytes N]   (agent.log as frames; following, until the task ends)
  gsync-node remove --work-root DIR --project P --task ID [--task ID ...] [--dry-run]   (finished task dirs only; JSON: what went, bytes)
  gsync-node cancel --work-root DIR --project P --task ID   (off the queue, or its agent's process group stopped; it ends failed, its work kept as in progress)
Exit codes: 0 done, 1 failed, 2 bad usage, 3 accept: the task id is taken on this node by another task.
A task to start joins the node's queue: at most N runs at once over all projects under the
work root (N from the last --max-parallel, kept in <work root>/.gsync; no limit until one is given).`;

class Usage extends Error {}

/** Who this gsync-node is, and with a project, the commits its object cache holds (so the controller sends only the rest). */
async function hello(io: NodeIo, workRoot: string | undefined, project: string | undefined) {
  let gitVersion: string | null = null;
  try {
    gitVersion = await gitOps.gitVersion(process.cwd());
  } catch {
    gitVersion = null;
  }
  const self = createHash('sha256')
    .update(await readFile(io.self))
    .digest('hex');
  const cache = project && workRoot ? await cachedCommits(cacheDir(workRoot, project)) : undefined;
  return { version: VERSION, protocol: PROTOCOL_VERSION, sha256: self, node: process.version, git: gitVersion, ...(cache ? { cache } : {}) };
}

/** Waits for the first bytes of `input` and puts them back; false when it ends empty. */
async function somethingArrives(input: Readable): Promise<boolean> {
  for (;;) {
    const chunk = input.read() as Buffer | null;
    if (chunk !== null) {
      input.unshift(chunk);
      return true;
    }
    if (input.readableEnded) return false;
    await Promise.race([once(input, 'readable'), once(input, 'end')]);
  }
}

export interface NodeIo {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The path of this very file, to start `run` from. */
  self: string;
}

function need(values: Record<string, unknown>, key: string): string {
  const v = values[key];
  if (typeof v !== 'string' || v === '') throw new Usage(`--${key} is required`);
  return v;
}

/** `--max-parallel`, when given: a whole number of at least 1. */
function maxParallel(values: Record<string, unknown>): number | undefined {
  const v = values['max-parallel'];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Usage('--max-parallel must be a whole number of at least 1');
  return n;
}

/** A whole number of at least 0 given as `--key`, or `fallback`. */
function count(values: Record<string, unknown>, key: string, fallback: number): number {
  const v = values[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Usage(`--${key} must be a whole number of at least 0`);
  return n;
}

async function dispatchCommand(io: NodeIo): Promise<number> {
  const [command, ...rest] = io.argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      'work-root': { type: 'string' },
      project: { type: 'string' },
      task: { type: 'string', multiple: true },
      'task-dir': { type: 'string' },
      file: { type: 'string' },
      start: { type: 'boolean' },
      hello: { type: 'boolean' },
      'max-bytes': { type: 'string' },
      'max-parallel': { type: 'string' },
      seconds: { type: 'string' },
      'dry-run': { type: 'boolean' },
      tails: { type: 'boolean' },
      from: { type: 'string' },
      follow: { type: 'boolean' },
    },
    strict: true,
  });
  const out = (value: unknown) => io.stdout.write(`${JSON.stringify(value)}\n`);
  const task = () => {
    const ids = values.task ?? [];
    if (ids.length !== 1) throw new Usage('exactly one --task is required');
    return ids[0]!;
  };
  switch (command) {
    case 'hello':
    case '--version': {
      out(await hello(io, values['work-root'], values.project));
      return 0;
    }
    case 'accept': {
      const workRoot = need(values, 'work-root');
      const project = need(values, 'project');
      const taskId = task();
      const limit = maxParallel(values);
      const input = io.stdin as unknown as Readable;
      if (values.hello) {
        // One process for the install check and the task: the controller reads this line, then
        // sends the task only if this gsync-node and its cache suit it; nothing at all means "not now".
        out({ hello: await hello(io, workRoot, project) });
        if (!(await somethingArrives(input))) {
          out({ skipped: true });
          return 0;
        }
      }
      const result = await acceptTask({
        workRoot,
        project,
        taskId,
        input,
        maxBytes: values['max-bytes'] ? Number(values['max-bytes']) : 8 * 1024 ** 3,
        start: values.start === true,
      });
      let start: Awaited<ReturnType<typeof startTask>> | undefined;
      if (values.start && !result.need_full) {
        try {
          start = await startTask(result.taskDir, io.self, io.env, limit);
        } catch (error) {
          // The task is in place and queued: the next run that ends, report or wait starts it. Said, not failed.
          start = { started: false, state: 'queued', error: errorMessage(error) };
        }
      }
      out({ ...result, start });
      return 0;
    }
    case 'start':
      out(await startTask(need(values, 'task-dir'), io.self, io.env, maxParallel(values)));
      return 0;
    case 'run': {
      const dir = need(values, 'task-dir');
      const status = await runTask({ taskDir: dir, env: io.env });
      // Its slot is free now: the oldest queued task on this node takes it.
      // A kick that fails is said in node.log; the next report, collect or wait tries again.
      await kickQueue(workRootOfTask(dir), io.self, io.env).catch((error: unknown) =>
        io.stderr.write(`gsync-node: queued work not started: ${errorMessage(error)}\n`),
      );
      out(status);
      return status.state === 'failed' ? 1 : 0;
    }
    case 'wait': {
      // Ends early when the controller closes stdin (it has what it needs from another node).
      const cancelled = new Promise<void>((resolve) => {
        io.stdin.on('end', resolve);
        io.stdin.on('close', resolve);
        io.stdin.resume();
      });
      const seconds = Math.min(Math.max(Number(values.seconds ?? 30), 0), 600);
      const workRoot = need(values, 'work-root');
      const answer = await waitForTasks({
        workRoot,
        project: need(values, 'project'),
        taskIds: values.task ?? [],
        seconds,
        cancelled,
        kick: () => kickQueue(workRoot, io.self, io.env).catch(() => undefined),
        // Lines before the answer: the controller shows them while it waits.
        ...(values.tails ? { onTails: async (tails) => void io.stdout.write(`${JSON.stringify({ tails })}\n`) } : {}),
      });
      // An open stdin would keep this process alive: the answer is all the controller waits for.
      (io.stdin as unknown as import('node:stream').Readable).destroy();
      out(answer);
      return 0;
    }
    case 'report': {
      const workRoot = need(values, 'work-root');
      // A run that died left its slot free: queued work must not wait for a run that will never end.
      out(await reportTasks(workRoot, need(values, 'project'), values.task ?? [], () => kickQueue(workRoot, io.self, io.env).catch(() => undefined)));
      return 0;
    }
    case 'collect': {
      const workRoot = need(values, 'work-root');
      const kick = () => kickQueue(workRoot, io.self, io.env).catch(() => undefined);
      await collectTasks({ workRoot, project: need(values, 'project'), taskIds: values.task ?? [], out: io.stdout as Writable, kick });
      return 0;
    }
    case 'send': {
      const file = need(values, 'file');
      if (!SENDABLE.has(file)) throw new Usage(`--file must be one of ${[...SENDABLE].join(', ')}`);
      const dir = taskDir(need(values, 'work-root'), need(values, 'project'), task());
      const paths = taskPaths(dir);
      for await (const chunk of createReadStream(`${paths.dir}/${file}`)) {
        if (!io.stdout.write(chunk as Buffer)) await once(io.stdout, 'drain');
      }
      return 0;
    }
    case 'tail': {
      // Ends early when the controller hangs up (closes stdin): a follow must not outlive it.
      const cancelled = new Promise<void>((resolve) => {
        io.stdin.on('end', resolve);
        io.stdin.on('close', resolve);
        io.stdin.resume();
      });
      const end = await tailLog({
        workRoot: need(values, 'work-root'),
        project: need(values, 'project'),
        taskId: task(),
        from: count(values, 'from', 0),
        follow: values.follow === true,
        maxBytes: Math.max(count(values, 'max-bytes', 1024 * 1024), 1),
        seconds: Math.min(count(values, 'seconds', 30), 600),
        out: io.stdout as Writable,
        cancelled,
      });
      (io.stdin as unknown as Readable).destroy();
      out({ end });
      return 0;
    }
    case 'cancel':
      out(await cancelTask(need(values, 'work-root'), need(values, 'project'), task()));
      return 0;
    case 'remove': {
      const ids = values.task ?? [];
      if (ids.length === 0) throw new Usage('remove needs at least one --task');
      out(await removeTasks(need(values, 'work-root'), need(values, 'project'), ids, values['dry-run'] === true));
      return 0;
    }
    default:
      throw new Usage(command ? `unknown command ${JSON.stringify(command)}` : 'no command given');
  }
}

/** Entry point: every failure becomes one line on stderr and an exit code (2 usage, 1 anything else). */
export async function main(io: NodeIo): Promise<number> {
  try {
    return await dispatchCommand(io);
  } catch (error) {
    const usage = error instanceof Usage || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    io.stderr.write(`gsync-node: ${errorMessage(error)}\n`);
    if (usage) io.stderr.write(`${USAGE}\n`);
    if (error instanceof TaskClash) return 3;
    return usage ? 2 : 1;
  }
}
