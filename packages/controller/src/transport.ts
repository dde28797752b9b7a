import type { Readable, Writable } from 'node:stream';

export interface ExecOptions {
  /** Sent to the remote command's stdin, then EOF. */
  stdin?: Readable | Buffer;
  /** Where stdout goes; when absent it is collected into `stdout`. */
  stdout?: Writable;
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
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return (lines.at(-1) ?? '').trim();
}
