import { createReadStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pack } from 'tar-stream';
import * as z from 'zod/mini';
import { ProtocolError, TaskReport } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import { remoteFailure as failure, type NodeTransport } from '../ssh/transport.js';
import { toolPath } from './install.js';

/**
 * The controller's side of the node protocol: every operation on a node is a
 * `gsync-node` subcommand, so the node's files are only ever touched by it.
 */

/** One file of the task tar: bytes in memory, or a file streamed from disk. */
export type TaskFile = { name: string; data: Buffer } | { name: string; path: string; size: number };

const AcceptAnswer = z.object({
  taskDir: z.string(),
  created: z.boolean(),
  /** The node's object cache lacks what the bundle builds on: nothing was kept, send everything. */
  need_full: z.optional(z.string().check(z.maxLength(4000))),
  start: z.optional(z.object({ started: z.boolean(), pid: z.optional(z.number()), state: z.string() })),
});
export type AcceptAnswer = z.infer<typeof AcceptAnswer>;

/** Streams the task's files (task.json, spec.md, and what its carrier sends) as one tar to `gsync-node accept --start`. */
export async function acceptTask(t: NodeTransport, node: NodeConfig, project: string, taskId: string, files: readonly TaskFile[]): Promise<AcceptAnswer> {
  const tar = pack();
  const feed = (async () => {
    for (const file of files) {
      if ('data' in file) {
        tar.entry({ name: file.name, mode: 0o644 }, file.data);
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const entry = tar.entry({ name: file.name, size: file.size, mode: 0o644 }, (error) => (error ? reject(error) : resolve()));
        createReadStream(file.path).on('error', reject).pipe(entry);
      });
    }
    tar.finalize();
  })();
  const argv = [node.node_bin, toolPath(node), 'accept', '--work-root', node.work_root, '--project', project, '--task', taskId, '--start'];
  const [r] = await Promise.all([t.exec(argv, { stdin: tar }), feed]);
  if (r.code !== 0) throw failure(node.name, `the node did not accept task ${taskId}`, r);
  const answer = AcceptAnswer.safeParse(JSON.parse(r.stdout.toString('utf8')));
  if (!answer.success) throw new ProtocolError(`node ${node.name}: unexpected answer to accept`);
  return answer.data;
}

/** Status and result of each task; what comes back is validated, never trusted. */
export async function reportTasks(t: NodeTransport, node: NodeConfig, project: string, taskIds: readonly string[]): Promise<TaskReport[]> {
  if (taskIds.length === 0) return [];
  const argv = [node.node_bin, toolPath(node), 'report', '--work-root', node.work_root, '--project', project, ...taskIds.flatMap((id) => ['--task', id])];
  const r = await t.exec(argv);
  if (r.code !== 0) throw failure(node.name, 'cannot read task status', r);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    throw new ProtocolError(`node ${node.name}: the task report is not JSON`);
  }
  const parsed = z.array(TaskReport).safeParse(json);
  if (!parsed.success) throw new ProtocolError(`node ${node.name}: the task report does not follow protocol v1`);
  return parsed.data;
}

/** Streams one file of a task dir from the node into `out`. */
export async function fetchTaskFile(t: NodeTransport, node: NodeConfig, project: string, taskId: string, file: string, out: Writable): Promise<void> {
  const argv = [node.node_bin, toolPath(node), 'send', '--work-root', node.work_root, '--project', project, '--task', taskId, '--file', file];
  const r = await t.exec(argv, { stdout: out });
  if (r.code !== 0) throw failure(node.name, `cannot read ${file} of task ${taskId}`, r);
}

const WaitAnswer = z.object({ changed: z.array(z.string().check(z.maxLength(200))).check(z.maxLength(10_000)) });

/**
 * `gsync-node wait`: answers once one of the tasks needs a look (finished, gone, or its
 * run died), or after `seconds`. Ending `cancel` hangs up early.
 */
export async function waitForTasks(
  t: NodeTransport,
  node: NodeConfig,
  project: string,
  taskIds: readonly string[],
  seconds: number,
  cancel: Readable,
): Promise<string[]> {
  const argv = [
    node.node_bin,
    toolPath(node),
    'wait',
    '--work-root',
    node.work_root,
    '--project',
    project,
    '--seconds',
    String(Math.ceil(seconds)),
    ...taskIds.flatMap((id) => ['--task', id]),
  ];
  const r = await t.exec(argv, { stdin: cancel });
  if (r.code !== 0) throw failure(node.name, 'cannot wait for its tasks', r);
  const answer = WaitAnswer.safeParse(JSON.parse(r.stdout.toString('utf8') || 'null'));
  if (!answer.success) throw new ProtocolError(`node ${node.name}: unexpected answer to wait`);
  return answer.data.changed;
}
