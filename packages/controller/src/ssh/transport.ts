import type { Readable, Writable } from 'node:stream';
import { SshError, inert } from '@gsync/core';

export interface ExecOptions {
  /** Sent to the remote command's stdin, then EOF. */
  stdin?: Readable | Buffer;
  /** Where stdout goes; when absent it is collected into `stdout`, at most `maxOutputBytes`. */
  stdout?: Writable;
  /** Collected stdout beyond this ends the command (default OUTPUT_CAP): a node's answers are small. */
  maxOutputBytes?: number;
  /** The command is ended when no byte moves either way for this long (default IDLE_SECONDS). */
  idleSeconds?: number;
  /** The command is ended at this moment (ms since the epoch): the gsync-ctl command's --timeout. */
  deadline?: number;
}

/** The most a collected answer may be: far above any honest one, far below what would hurt. */
export const OUTPUT_CAP = 16 * 1024 * 1024;
/** Silence allowed by default: a node indexing a huge bundle says nothing for tens of seconds. */
export const IDLE_SECONDS = 300;
/** Of stderr only the end is kept: the last line is what is shown. */
const STDERR_KEEP = 64 * 1024;
/** More stderr than this from one command ends it: far above any honest progress output. */
const STDERR_CAP = 16 * 1024 * 1024;

/**
 * What a remote command may send and how long it may be silent. Every transport runs its
 * commands under one: past a limit the command is ended (`abort`) with the reason, never
 * read further. A stdout stream that fails (its consumer saw too much) ends it too.
 */
export class ExecBounds {
  private readonly out: Buffer[] = [];
  private outBytes = 0;
  private err: Buffer[] = [];
  private errKept = 0;
  private errBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly deadlineTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly node: string,
    private readonly options: ExecOptions,
    private readonly abort: (error: SshError) => void,
  ) {
    this.moved();
    if (options.deadline !== undefined) {
      this.deadlineTimer = setTimeout(() => this.trip("ran past gsync-ctl's --timeout", 'transfer'), Math.max(0, options.deadline - Date.now()));
      this.deadlineTimer.unref?.();
    }
    options.stdout?.on('error', (error: Error) => this.trip(`stopped reading: ${error.message}`));
  }

  /** Something moved: the silence starts again. */
  moved(): void {
    if (this.ended) return;
    clearTimeout(this.timer);
    const seconds = this.options.idleSeconds ?? IDLE_SECONDS;
    this.timer = setTimeout(() => this.trip(`said nothing for ${seconds} s`), seconds * 1000);
    this.timer.unref?.();
  }

  stdout(chunk: Buffer): void {
    this.moved();
    this.outBytes += chunk.length;
    const cap = this.options.maxOutputBytes ?? OUTPUT_CAP;
    if (this.outBytes > cap) this.trip(`sent more than ${cap} bytes`);
    else this.out.push(chunk);
  }

  /** Progress on stderr counts as life, but only up to a cap: a node cannot keep a command alive by chattering. */
  stderr(chunk: Buffer): void {
    this.errBytes += chunk.length;
    if (this.errBytes > STDERR_CAP) {
      this.trip(`wrote more than ${STDERR_CAP} bytes on stderr`);
      return;
    }
    this.moved();
    this.err.push(chunk);
    this.errKept += chunk.length;
    // Only the end is kept, trimmed now and then rather than copied on every chunk.
    if (this.errKept > 2 * STDERR_KEEP) {
      const tail = Buffer.concat(this.err).subarray(-STDERR_KEEP);
      this.err = [tail];
      this.errKept = tail.length;
    }
  }

  result(code: number | null, signal: string | undefined): ExecResult {
    this.done();
    return { code, signal, stdout: Buffer.concat(this.out), stderr: Buffer.concat(this.err).subarray(-STDERR_KEEP).toString('utf8') };
  }

  done(): void {
    this.ended = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
  }

  /** Ends the command. Cut at the deadline it counts as a cut link ('transfer'): what it was sending may have arrived. */
  private trip(reason: string, kind: 'remote' | 'transfer' = 'remote'): void {
    if (this.ended) return;
    this.done();
    this.abort(new SshError(this.node, kind, `the remote command ${reason}; it was ended`));
  }
}

export interface ExecResult {
  /** null when the remote command was killed by a signal. */
  code: number | null;
  signal: string | undefined;
  stdout: Buffer;
  stderr: string;
}

/**
 * How the controller reaches one node. The command is an argv list; the SSH
 * transport quotes each word for the remote shell, the local one runs it as is.
 * Relative paths are taken from the node user's home.
 */
export interface NodeTransport {
  readonly node: string;
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

export function lastLine(text: string): string {
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return (lines.at(-1) ?? '').trim();
}

/** A remote command that failed, as the one line its stderr ends with. */
export function remoteFailure(node: string, what: string, r: ExecResult): SshError {
  const detail = inert(lastLine(r.stderr)) || (r.signal ? `killed by ${inert(r.signal, 20)}` : `exit code ${r.code}`);
  return new SshError(node, 'remote', `${what}: ${detail.replace(/^gsync-node: /, '')}`);
}
