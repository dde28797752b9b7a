import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback, Writable, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import * as z from 'zod/mini';
import { COLLECT_REPORT, NodeState, ProtocolError, TaskReport, UsageError, resultFile } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import { remoteFailure as failure, type ExecResult, type NodeTransport } from '../ssh/transport.js';
import type { TrackTransfer, TransferTicker } from '../transfer.js';
import { Hello, toolPath } from './install.js';
import { type TaskTail, WaitLines } from './tail.js';

/**
 * The controller's side of the node protocol: every operation on a node is a
 * `gsync-node` subcommand, so the node's files are only ever touched by it.
 */

/** The node already has another task under this id: another controller's, or one from before the store was made anew. */
export class TaskClashError extends UsageError {
  constructor(
    readonly node: string,
    readonly taskId: string,
  ) {
    super(`task ${taskId} already exists on node ${node} as another task (another controller's, or one from before this store)`, {
      hint: 'choose another --task, or leave --task out to take the next id free on the node too',
    });
  }
}

/** One file of the task tar: bytes in memory, or a file streamed from disk. */
export type TaskFile = { name: string; data: Buffer } | { name: string; path: string; size: number };

const AcceptAnswer = z.object({
  taskDir: z.string(),
  created: z.boolean(),
  /** The node's object cache lacks what the bundle builds on: nothing was kept, send everything. */
  need_full: z.optional(z.string().check(z.maxLength(4000))),
  start: z.optional(z.object({ started: z.boolean(), pid: z.optional(z.number()), state: z.string(), position: z.optional(z.int().check(z.positive())) })),
});
export type AcceptAnswer = z.infer<typeof AcceptAnswer>;

const HelloLine = z.object({ hello: Hello });

/** The size of the tar writeTaskTar makes: per file a 512-byte header and its data padded to 512, then two zero blocks. */
export function tarSize(files: readonly TaskFile[]): number {
  return files.reduce((sum, f) => sum + 512 + Math.ceil(('data' in f ? f.data.length : f.size) / 512) * 512, 1024);
}

/** The node command's stdin: counts the task tar as it goes out, for whoever shows the transfer. */
class TarFeed extends Transform {
  ticker: TransferTicker | undefined;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.ticker?.add(chunk.length);
    done(null, chunk);
  }
}

/** Writes the task tar into `feed` until the node answers; the transfer, when tracked, ends with the call. */
async function sendTaskTar(
  feed: TarFeed,
  files: readonly TaskFile[],
  call: Promise<ExecResult>,
  taskId: string,
  track: TrackTransfer | undefined,
): Promise<ExecResult> {
  feed.ticker = track?.([taskId], tarSize(files));
  let ok = false;
  try {
    // The node's answer ends the call; a link that fails while the tar is still going out must not wait for it.
    const wrote = writeTaskTar(files, feed);
    wrote.catch(() => undefined);
    const r = await Promise.race([call, wrote.then(() => call)]);
    ok = r.code === 0;
    return r;
  } finally {
    feed.ticker?.end(ok);
  }
}

/** A task's files as one tar, into `into` (ended at the end). */
async function writeTaskTar(files: readonly TaskFile[], into: Writable): Promise<void> {
  const tar = pack();
  tar.pipe(into);
  try {
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
  } catch (error) {
    // The node sees a cut tar and refuses it, instead of waiting for the rest.
    tar.unpipe(into);
    into.end();
    throw error;
  }
}

function acceptArgv(node: NodeConfig, project: string, taskId: string, hello: boolean): string[] {
  const argv = [
    node.node_bin,
    toolPath(node),
    'accept',
    '--work-root',
    node.work_root,
    '--project',
    project,
    '--task',
    taskId,
    '--start',
    '--max-parallel',
    String(node.max_parallel),
  ];
  return hello ? [...argv, '--hello'] : argv;
}

function parseAccept(node: NodeConfig, line: string | undefined): AcceptAnswer {
  const answer = AcceptAnswer.safeParse(parseJsonLine(line));
  if (!answer.success) throw new ProtocolError(`node ${node.name}: unexpected answer to accept`);
  return answer.data;
}

function parseJsonLine(line: string | undefined): unknown {
  try {
    return JSON.parse(line ?? 'null');
  } catch {
    return undefined;
  }
}

/** Streams the task's files (task.json, spec.md, and what its carrier sends) as one tar to `gsync-node accept --start`. */
export async function acceptTask(
  t: NodeTransport,
  node: NodeConfig,
  project: string,
  taskId: string,
  files: readonly TaskFile[],
  track?: TrackTransfer,
): Promise<AcceptAnswer> {
  const feed = new TarFeed();
  const r = await sendTaskTar(feed, files, t.exec(acceptArgv(node, project, taskId, false), { stdin: feed }), taskId, track);
  if (r.code === 3) throw new TaskClashError(node.name, taskId);
  if (r.code !== 0) throw failure(node.name, `the node did not accept task ${taskId}`, r);
  return parseAccept(node, r.stdout.toString('utf8'));
}

/** Collects a command's output as lines, at most `cap` bytes; `line(n)` resolves once line n is complete or the output ends. */
class Lines extends Writable {
  private data = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  ended = false;
  overflow = false;
  constructor(private readonly cap: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.data.length + chunk.length > this.cap) {
      // An error on the stream ends the command (see ExecBounds): nothing more is read.
      this.overflow = true;
      this.wake();
      done(new ProtocolError(`more than ${this.cap} bytes of answer`));
      return;
    }
    // Kept as bytes and decoded per line: a character split across chunks stays whole.
    this.data = Buffer.concat([this.data, chunk]);
    this.wake();
    done();
  }
  finish(): void {
    this.ended = true;
    this.wake();
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  async line(n: number): Promise<string | undefined> {
    for (;;) {
      let start = 0;
      for (let i = 0; ; i++) {
        const end = this.data.indexOf(0x0a, start);
        if (end === -1) break;
        if (i === n) return this.data.subarray(start, end).toString('utf8');
        start = end + 1;
      }
      if (this.ended || this.overflow) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/**
 * `gsync-node accept --hello`: one process for the install check and the task. The node
 * first says who it is and what its object cache holds; then the caller either sends the
 * task (`accept`) or nothing (`skip`, when gsync-node must be installed first). `hello` is
 * undefined when the node's gsync-node is missing or too old to answer so.
 */
export interface HelloAccept {
  hello: Hello | undefined;
  accept(files: readonly TaskFile[], track?: TrackTransfer): Promise<AcceptAnswer>;
  /** Ends the call without a task; a no-op once `accept` was called. */
  skip(): Promise<void>;
}

export async function openHelloAccept(t: NodeTransport, node: NodeConfig, project: string, taskId: string): Promise<HelloAccept> {
  const feed = new TarFeed();
  feed.on('error', () => undefined);
  const out = new Lines(4 * 1024 * 1024);
  let failed: unknown;
  const call = t
    .exec(acceptArgv(node, project, taskId, true), { stdin: feed, stdout: out })
    .catch((error: unknown) => {
      failed = error;
      throw error;
    })
    .finally(() => out.finish());
  // Whatever happens to the call is seen by accept or skip; never an unhandled rejection.
  call.catch(() => undefined);
  const first = await Promise.race([out.line(0), call.then(() => undefined)]);
  const parsed = HelloLine.safeParse(parseJsonLine(first));
  // A call that failed (cut, ended for silence) is that failure, not a node without gsync-node.
  if (!parsed.success && failed !== undefined) {
    feed.end();
    throw failed;
  }
  let used = false;
  return {
    hello: parsed.success ? parsed.data.hello : undefined,
    async accept(files, track) {
      used = true;
      const r = await sendTaskTar(feed, files, call, taskId, track);
      if (r.code === 3) throw new TaskClashError(node.name, taskId);
      if (r.code !== 0) throw failure(node.name, `the node did not accept task ${taskId}`, r);
      if (out.overflow) throw new ProtocolError(`node ${node.name}: the answer to accept is too long`);
      return parseAccept(node, await out.line(1));
    },
    async skip() {
      if (used) return;
      used = true;
      feed.end();
      await call.catch(() => undefined);
    },
  };
}

/** Status and result of each task; what comes back is validated, never trusted. */
export async function reportTasks(t: NodeTransport, node: NodeConfig, project: string, taskIds: readonly string[]): Promise<TaskReport[]> {
  if (taskIds.length === 0) return [];
  const argv = [node.node_bin, toolPath(node), 'report', '--work-root', node.work_root, '--project', project, ...taskIds.flatMap((id) => ['--task', id])];
  const r = await t.exec(argv);
  if (r.code !== 0) throw failure(node.name, 'cannot read task status', r);
  return parseReports(node, r.stdout.toString('utf8'));
}

const RemovedTask = z.object({
  task_id: z.string(),
  removed: z.boolean(),
  bytes: z.number().check(z.nonnegative()),
  kept: z.optional(z.string()),
});
export type RemovedTask = z.infer<typeof RemovedTask>;

/** Removes finished task dirs on the node (with `dryRun`, says what would go); only answers about the tasks asked for count. */
export async function removeTaskDirs(t: NodeTransport, node: NodeConfig, project: string, taskIds: readonly string[], dryRun: boolean): Promise<RemovedTask[]> {
  if (taskIds.length === 0) return [];
  const argv = [node.node_bin, toolPath(node), 'remove', '--work-root', node.work_root, '--project', project, ...taskIds.flatMap((id) => ['--task', id])];
  const r = await t.exec(dryRun ? [...argv, '--dry-run'] : argv);
  if (r.code !== 0) throw failure(node.name, 'cannot remove task dirs', r);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    throw new ProtocolError(`node ${node.name}: the answer to remove is not JSON`);
  }
  const parsed = z.array(RemovedTask).safeParse(json);
  if (!parsed.success) throw new ProtocolError(`node ${node.name}: the answer to remove does not follow protocol v1`);
  return parsed.data.filter((a) => taskIds.includes(a.task_id));
}

const CancelAnswer = z.object({
  task_id: z.string(),
  was: z.nullable(NodeState),
  state: z.nullable(NodeState),
  did: z.enum(['dequeued', 'stopped', 'nothing']),
});
export type CancelAnswer = z.infer<typeof CancelAnswer>;

/** `gsync-node cancel`: takes the task off the node's queue, or stops its agent's process group; says what it found and did. */
export async function cancelTaskRun(t: NodeTransport, node: NodeConfig, project: string, taskId: string): Promise<CancelAnswer> {
  const argv = [node.node_bin, toolPath(node), 'cancel', '--work-root', node.work_root, '--project', project, '--task', taskId];
  const r = await t.exec(argv, { maxOutputBytes: 64 * 1024 });
  if (r.code !== 0) throw failure(node.name, `cannot cancel task ${taskId}`, r);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    throw new ProtocolError(`node ${node.name}: the answer to cancel is not JSON`);
  }
  const parsed = CancelAnswer.safeParse(json);
  if (!parsed.success || parsed.data.task_id !== taskId) throw new ProtocolError(`node ${node.name}: the answer to cancel does not follow protocol v1`);
  return parsed.data;
}

function parseReports(node: NodeConfig, text: string): TaskReport[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProtocolError(`node ${node.name}: the task report is not JSON`);
  }
  const parsed = z.array(TaskReport).safeParse(json);
  if (!parsed.success) throw new ProtocolError(`node ${node.name}: the task report does not follow protocol v1`);
  return parsed.data;
}

/** The report of every task at most this long: a few KB per task. */
const MAX_REPORT_BYTES = 16 * 1024 * 1024;
/** Tar headers and padding around each entry. */
const TAR_SLACK = 2048;

async function readAll(entry: Readable, cap: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of entry) {
    size += (chunk as Buffer).length;
    if (size > cap) throw new ProtocolError(`more than ${cap} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

type Finished = TaskReport & { result: NonNullable<TaskReport['result']> };

/**
 * What the caller does with one finished task's result bundle as it streams in: read
 * `entry` whole, or record why not (`refuse`) and leave it, which is then skipped unread.
 */
export interface BundleHandler {
  /** Told of the results' transfer once the report says how much is coming. */
  track?: TrackTransfer | undefined;
  take(report: Finished, entry: Readable): Promise<void>;
  refuse(report: Finished, reason: string): void;
}

/**
 * `gsync-node collect`: one process per node and pull. The node answers with a tar: the
 * report of every task asked about, then `<task_id>.bundle` for each finished one, handed
 * to `bundles` as it streams in. The stream may carry no more than the report cap plus
 * the bundles the report announced; a bundle whose size is not the one announced is
 * refused (its task is rejected) and skipped. Anything else in the stream ends the command
 * and fails the call. Undefined when the node's gsync-node predates `collect` (the
 * caller asks file by file).
 */
export async function collectResults(
  t: NodeTransport,
  node: NodeConfig,
  project: string,
  taskIds: readonly string[],
  maxBytes: number,
  bundles: BundleHandler,
): Promise<TaskReport[] | undefined> {
  if (taskIds.length === 0) return [];
  const argv = [node.node_bin, toolPath(node), 'collect', '--work-root', node.work_root, '--project', project, ...taskIds.flatMap((id) => ['--task', id])];
  let budget = MAX_REPORT_BYTES + TAR_SLACK * 4;
  let ticker: TransferTicker | undefined;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      budget -= chunk.length;
      ticker?.add(chunk.length);
      if (budget < 0) done(new ProtocolError(`node ${node.name}: collect sent more than its report announced`));
      else done(null, chunk);
    },
  });
  const tar = extract();
  meter.pipe(tar as unknown as Writable);
  let reports: TaskReport[] | undefined;
  let problem: Error | undefined;
  const fail = (error: unknown) => {
    problem ??= error instanceof Error ? error : new Error(String(error));
    meter.destroy(problem);
  };
  const seen = new Set<string>();
  const read = async (name: string, size: number, entry: Readable): Promise<void> => {
    if (reports === undefined) {
      if (name !== COLLECT_REPORT) throw new ProtocolError(`node ${node.name}: collect did not begin with ${COLLECT_REPORT}`);
      reports = parseReports(node, (await readAll(entry, MAX_REPORT_BYTES)).toString('utf8'));
      const coming = reports.filter((r) => r.result && taskIds.includes(r.task_id));
      const sizes = coming.map((r) => Math.min(resultFile(r.result!)?.size ?? 0, maxBytes));
      budget += sizes.reduce((sum, size) => sum + size + TAR_SLACK, 0);
      // What follows the report: each result with its tar header and padding, then the tar's end.
      if (bundles.track && coming.length > 0)
        ticker = bundles.track(
          coming.map((r) => r.task_id),
          sizes.reduce((sum, size) => sum + 512 + Math.ceil(size / 512) * 512, 1024),
        );
      return;
    }
    const dot = name.lastIndexOf('.');
    const id = dot > 0 ? name.slice(0, dot) : '';
    const report = reports.find((r) => r.task_id === id);
    const file = report?.result ? resultFile(report.result) : undefined;
    // `<task_id>.bundle`, or `.tar` for a result of files: the kind result.json announced.
    const kind = report?.result?.files ? 'tar' : 'bundle';
    if (!report?.result || name !== `${id}.${kind}` || seen.has(id) || !taskIds.includes(id)) {
      throw new ProtocolError(`node ${node.name}: unexpected entry in the collect stream`);
    }
    seen.add(id);
    const finished = { ...report, result: report.result };
    if (file && size === file.size) return bundles.take(finished, entry);
    if (size > maxBytes) throw new ProtocolError(`node ${node.name}: the result ${kind} of ${id} is ${size} bytes, over the ${maxBytes}-byte limit`);
    // Skipped unread: only what it has over its announced size is added to what the stream may carry.
    budget += Math.max(size - (file?.size ?? 0), 0);
    bundles.refuse(
      finished,
      file
        ? `the node sent ${size} bytes of its result ${kind}, result.json announced ${file.size}`
        : 'result.json announces neither a bundle with its head nor a tar of files',
    );
  };
  tar.on('entry', (header, entry, next) => {
    read(header.name, header.size ?? 0, entry).then(
      () => {
        entry.resume();
        next();
      },
      (error: unknown) => {
        entry.resume();
        fail(error);
      },
    );
  });
  const unpacked = new Promise<void>((resolve) => {
    tar.on('finish', resolve);
    tar.on('close', resolve);
    tar.on('error', (error: Error) => {
      fail(new ProtocolError(`node ${node.name}: the collect stream is not a tar: ${error.message}`));
      resolve();
    });
  });
  let r: ExecResult;
  try {
    r = await t.exec(argv, { stdout: meter });
  } catch (error) {
    ticker?.end(false);
    // Ended because of what it sent: that is the reason, not the ending.
    throw problem ?? error;
  }
  // Every byte has passed the meter by now: the transfer is over, whatever the checks still to come say.
  ticker?.end(r.code === 0 && !problem);
  if (r.code === 2 && /unknown command/.test(r.stderr)) return undefined;
  if (r.code !== 0) throw failure(node.name, 'cannot collect task results', r);
  meter.end();
  await unpacked;
  if (problem) throw problem;
  if (reports === undefined) throw new ProtocolError(`node ${node.name}: collect sent no ${COLLECT_REPORT}`);
  return reports;
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
 * run died), or after `seconds`. Ending `cancel` hangs up early. With `onTails`, the node
 * also says each task's state and last log line while it waits, over the same call.
 */
export async function waitForTasks(
  t: NodeTransport,
  node: NodeConfig,
  project: string,
  taskIds: readonly string[],
  seconds: number,
  cancel: Readable,
  onTails?: (tails: TaskTail[]) => void,
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
  // A line of tails a second for the whole wait, a few hundred bytes per task: far below this.
  const lines = onTails
    ? new WaitLines(1024 * 1024 + taskIds.length * 64 * 1024, (tails) => onTails(tails.filter((x) => taskIds.includes(x.task_id))))
    : undefined;
  // Silent by design for `seconds`: only silence beyond that is the node's fault.
  const r = await t.exec(lines ? [...argv, '--tails'] : argv, {
    stdin: cancel,
    idleSeconds: seconds + node.answer_timeout_seconds,
    maxOutputBytes: 1024 * 1024,
    ...(lines ? { stdout: lines } : {}),
  });
  if (r.code !== 0) throw failure(node.name, 'cannot wait for its tasks', r);
  if (lines) {
    lines.end();
    await finished(lines).catch(() => undefined);
  }
  let json: unknown = null;
  try {
    json = JSON.parse((lines ? lines.answer : r.stdout.toString('utf8')) || 'null');
  } catch {
    // not JSON: the check below says so
  }
  const answer = WaitAnswer.safeParse(json);
  if (!answer.success) throw new ProtocolError(`node ${node.name}: unexpected answer to wait`);
  return answer.data.changed;
}
