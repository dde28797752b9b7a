import type { Readable, Writable } from 'node:stream';
import { SshError } from '@gsync/core';

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
  const lines = text
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return (lines.at(-1) ?? '').trim();
}

/** A remote command that failed, as the one line its stderr ends with. */
export function remoteFailure(node: string, what: string, r: ExecResult): SshError {
  const detail = lastLine(r.stderr) || (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
  return new SshError(node, 'remote', `${what}: ${detail.replace(/^gsync-node: /, '')}`);
}
