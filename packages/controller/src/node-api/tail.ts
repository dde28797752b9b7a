import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as z from 'zod/mini';
import { NodeState, ProtocolError } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import { remoteFailure as failure, type NodeTransport } from '../ssh/transport.js';
import { toolPath } from './install.js';

/** A frame header is a short JSON line; anything longer is not one. */
const HEADER_CAP = 8 * 1024;
/** An honest node says it left bytes out at most once per look at the log (4 a second): far fewer than this in one call. */
const SKIP_CAP = 4096;

const TailEnd = z.object({
  exists: z.boolean(),
  offset: z.optional(z.int().check(z.nonnegative())),
  size: z.optional(z.int().check(z.nonnegative())),
  state: z.optional(z.nullable(NodeState)),
  final: z.optional(z.boolean()),
  stopped: z.optional(z.boolean()),
  error: z.optional(z.string().check(z.maxLength(4000))),
});
export type TailEnd = z.infer<typeof TailEnd>;

const Frame = z.union([z.object({ data: z.int().check(z.positive()) }), z.object({ skip: z.int().check(z.positive()) }), z.object({ end: TailEnd })]);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** What to do with the log as it arrives; a promise holds the stream back until it is kept. */
export interface LogSink {
  data(bytes: Buffer): void | Promise<void>;
  skipped(bytes: number): void | Promise<void>;
}

/**
 * Reads `gsync-node tail`'s frames: at most `cap` bytes of log in all, each header a
 * short JSON line, a bounded number of skips (told to the sink as one, before the next
 * log bytes), nothing after the end, nothing after `deadline`. Anything else fails the
 * stream, which ends the command on the node.
 */
class Frames extends Writable {
  private header = Buffer.alloc(0);
  /** Log bytes of the current data frame still to come. */
  private want = 0;
  /** Log bytes received, and bytes the node said it left out. */
  received = 0;
  skipped = 0;
  private skips = 0;
  /** Left out since the sink was last told. */
  private unsaid = 0;
  /** The end line, once read. */
  ending: TailEnd | undefined;

  constructor(
    private readonly node: string,
    private readonly cap: number,
    private readonly deadline: number,
    private readonly sink: LogSink,
  ) {
    super();
  }

  /** Tells the sink of the bytes left out since it last heard, if any. */
  async flushSkipped(): Promise<void> {
    if (this.unsaid === 0) return;
    const bytes = this.unsaid;
    this.unsaid = 0;
    await this.sink.skipped(bytes);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null) => void): void {
    this.take(chunk).then(() => done(), done);
  }

  /** Whether the stream stopped between frames, after its end. */
  get whole(): boolean {
    return this.ending !== undefined && this.want === 0 && this.header.length === 0;
  }

  private fail(what: string): never {
    throw new ProtocolError(`node ${this.node}: ${what} in the answer to tail`);
  }

  private async take(chunk: Buffer): Promise<void> {
    if (Date.now() > this.deadline) this.fail('more than the time the call was given');
    let rest = chunk;
    while (rest.length > 0) {
      if (this.want > 0) {
        const piece = rest.subarray(0, this.want);
        this.want -= piece.length;
        rest = rest.subarray(piece.length);
        await this.sink.data(piece);
        continue;
      }
      if (this.ending) this.fail('bytes after the end');
      const nl = rest.indexOf(0x0a);
      if (this.header.length + (nl === -1 ? rest.length : nl) > HEADER_CAP) this.fail('a header line too long');
      if (nl === -1) {
        this.header = Buffer.concat([this.header, rest]);
        return;
      }
      const line = Buffer.concat([this.header, rest.subarray(0, nl)]).toString('utf8');
      this.header = Buffer.alloc(0);
      rest = rest.subarray(nl + 1);
      const frame = Frame.safeParse(parseJson(line));
      if (!frame.success) this.fail('a line outside the protocol');
      if ('data' in frame.data) {
        this.received += frame.data.data;
        if (this.received > this.cap) this.fail(`more than the ${this.cap} bytes of log asked for`);
        this.want = frame.data.data;
        await this.flushSkipped();
      } else if ('skip' in frame.data) {
        if (++this.skips > SKIP_CAP) this.fail(`more than ${SKIP_CAP} skip lines`);
        this.skipped += frame.data.skip;
        this.unsaid += frame.data.skip;
      } else this.ending = frame.data.end;
    }
  }
}

export interface TailOptions {
  from: number;
  follow: boolean;
  /** The most of the log this call may bring. */
  maxBytes: number;
  /** How long a follow may wait for the log to grow. */
  seconds: number;
}

/**
 * `gsync-node tail`: the task's agent.log from `from`, to `sink` as it comes, at most
 * `maxBytes` of it; following, until the task ends or `seconds` pass. The node's
 * process ends when this call hangs up (its stdin closes), so none is left behind.
 */
export async function tailAgentLog(t: NodeTransport, node: NodeConfig, project: string, taskId: string, options: TailOptions, sink: LogSink): Promise<TailEnd> {
  const argv = [
    node.node_bin,
    toolPath(node),
    'tail',
    '--work-root',
    node.work_root,
    '--project',
    project,
    '--task',
    taskId,
    '--from',
    String(options.from),
    '--max-bytes',
    String(options.maxBytes),
    '--seconds',
    String(Math.ceil(options.seconds)),
    ...(options.follow ? ['--follow'] : []),
  ];
  // Silence is bounded by the idle limit below, a flood by this: the node's follow time and its answer time.
  const frames = new Frames(node.name, options.maxBytes, Date.now() + (options.seconds + node.answer_timeout_seconds) * 1000, sink);
  let problem: Error | undefined;
  frames.on('error', (error) => {
    problem ??= error;
  });
  const hangUp = new PassThrough();
  try {
    // Silent while the log does not grow: only silence beyond `seconds` is the node's fault.
    const r = await t.exec(argv, { stdin: hangUp, stdout: frames, idleSeconds: options.seconds + node.answer_timeout_seconds });
    if (r.code !== 0) throw failure(node.name, `cannot read the log of task ${taskId}`, r);
  } catch (error) {
    // Ended because of what it sent: that is the reason, not the ending.
    throw problem ?? error;
  } finally {
    hangUp.end();
  }
  frames.end();
  await finished(frames).catch(() => undefined);
  if (problem) throw problem;
  if (!frames.whole || !frames.ending) throw new ProtocolError(`node ${node.name}: the answer to tail ended before its end line`);
  // It read from `from` (or from where a shrunk log ends now) on, so it ended past all it sent or left out, within the log.
  const { offset, size } = frames.ending;
  if ((offset !== undefined && offset < frames.received + frames.skipped) || (offset !== undefined && size !== undefined && offset > size)) {
    throw new ProtocolError(
      `node ${node.name}: the answer to tail ends at offset ${offset} of ${size ?? '?'} bytes, after sending ${frames.received} and leaving out ${frames.skipped}`,
    );
  }
  await frames.flushSkipped();
  return frames.ending;
}

/** A running task as `gsync-node wait --tails` shows it: its state, since when it runs, and its agent's last log line. */
export const TaskTail = z.object({
  task_id: z.string().check(z.maxLength(200)),
  state: z.nullable(NodeState),
  started_at: z.optional(z.string().check(z.maxLength(100))),
  line: z.string().check(z.maxLength(4000)),
});
export type TaskTail = z.infer<typeof TaskTail>;

const TailsLine = z.object({ tails: z.array(TaskTail).check(z.maxLength(10_000)) });

/**
 * The stdout of `gsync-node wait --tails`: lines of tails as the node sees them change,
 * each handed on at once, then the answer line, kept. At most `cap` bytes in all.
 */
export class WaitLines extends Writable {
  private partial = Buffer.alloc(0);
  private seen = 0;
  /** The last line that was not tails: the answer. */
  answer = '';

  constructor(
    private readonly cap: number,
    private readonly onTails: (tails: TaskTail[]) => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (error?: Error | null) => void): void {
    this.seen += chunk.length;
    if (this.seen > this.cap) {
      done(new ProtocolError(`more than ${this.cap} bytes of answer`));
      return;
    }
    let rest = Buffer.concat([this.partial, chunk]);
    for (let nl = rest.indexOf(0x0a); nl !== -1; nl = rest.indexOf(0x0a)) {
      this.line(rest.subarray(0, nl).toString('utf8'));
      rest = rest.subarray(nl + 1);
    }
    this.partial = rest;
    done();
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.partial.length > 0) this.line(this.partial.toString('utf8'));
    this.partial = Buffer.alloc(0);
    done();
  }

  private line(text: string): void {
    const tails = TailsLine.safeParse(parseJson(text));
    if (tails.success) this.onTails(tails.data.tails);
    else if (text.trim() !== '') this.answer = text;
  }
}
