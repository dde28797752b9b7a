/**
 * The few error classes gsync throws. Each carries the data a caller needs;
 * `message` is the one line a user sees, `hint` says what to do about it.
 */
export class GsyncError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

/** The user asked for something that cannot be done as asked (bad flag, unknown name, bad id). */
export class UsageError extends GsyncError {}

/** A config file is missing, unreadable or holds a bad value. */
export class ConfigError extends GsyncError {
  readonly file: string;
  readonly field: string;
  readonly reason: string;
  constructor(file: string, field: string, reason: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`${file}: ${field ? `${field}: ` : ''}${reason}`, options);
    this.file = file;
    this.field = field;
    this.reason = reason;
  }
}

/** A git command failed. */
export class GitError extends GsyncError {
  readonly args: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  constructor(args: readonly string[], exitCode: number | undefined, stderr: string, options: { cause?: unknown } = {}) {
    const firstLine =
      stderr
        .trim()
        .split('\n')
        .find((l) => l.trim() !== '') ?? `exit code ${exitCode}`;
    super(`git ${args.slice(0, 2).join(' ')} failed: ${firstLine}`, options);
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** A node could not be reached, refused us, or a remote command failed. */
export class SshError extends GsyncError {
  readonly node: string;
  readonly kind: 'connect' | 'auth' | 'hostkey' | 'remote' | 'transfer';
  constructor(node: string, kind: SshError['kind'], message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`node ${node}: ${message}`, options);
    this.node = node;
    this.kind = kind;
  }
}

/** Something a node sent back failed verification, or the task protocol was broken. */
export class ProtocolError extends GsyncError {}

/** Another gsync process holds the lock this one needs. */
export class BusyError extends GsyncError {}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
