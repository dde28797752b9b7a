import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { inert } from '@gsync/core';
import { lastLine } from './transport.js';

export interface ProxyCommand {
  /** The command's stdout and stdin: the connection to the host. */
  sock: Duplex;
  close(): void;
  /** How the command ended (waiting a moment for it to end), with the last line it wrote on stderr. */
  failure(): Promise<string>;
}

/** Of the command's stderr only the end is kept: its last line is what is shown. */
const STDERR_KEEP = 4096;

/**
 * Runs an ssh_config ProxyCommand. It is a shell command line by ssh's own contract, so it runs
 * with `sh -c` (`exec`, so a signal reaches the command itself); its values were quoted when
 * the %-tokens were filled in.
 */
export function startProxyCommand(command: string, env: NodeJS.ProcessEnv): ProxyCommand {
  const child = spawn('/bin/sh', ['-c', `exec ${command}`], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
  });
  const ended = new Promise<string>((resolve) => {
    child.once('error', (error) => resolve(`could not be started: ${error.message}`));
    child.once('close', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`));
  });
  const sock = Duplex.from({ readable: child.stdout, writable: child.stdin });
  // A command that ends early breaks its pipes, maybe after the SSH layer let go of `sock`; the reason is told by `failure`.
  for (const stream of [child.stdin, child.stdout, sock]) stream.on('error', () => undefined);
  return {
    sock,
    close: () => {
      sock.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
    failure: async () => {
      const how = await Promise.race([ended, new Promise<string>((resolve) => setTimeout(() => resolve('stopped answering'), 2000).unref())]);
      const line = inert(lastLine(stderr));
      return line ? `${how}: ${line}` : how;
    },
  };
}
