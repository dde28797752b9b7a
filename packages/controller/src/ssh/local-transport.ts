import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SshError } from '@gsync/core';
import { ExecBounds, type ExecOptions, type ExecResult, type NodeTransport } from './transport.js';

/**
 * A node that is a folder on this machine: the same protocol and the same
 * gsync-node file, run as a local process with the folder as its home.
 */
export async function openLocalTransport(node: string, home: string, env: NodeJS.ProcessEnv): Promise<NodeTransport> {
  await mkdir(home, { recursive: true });
  const childEnv = { ...env, HOME: home };
  return {
    node,
    exec: (argv, options = {}) => execLocal(node, argv, home, childEnv, options),
    close: async () => {},
  };
}

function execLocal(node: string, argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv, options: ExecOptions): Promise<ExecResult> {
  const [command, ...args] = argv;
  if (!command) return Promise.reject(new Error('empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const bounds = new ExecBounds(node, options, (error) => {
      child.kill('SIGKILL');
      reject(error);
    });
    if (options.stdout) {
      child.stdout.on('data', () => bounds.moved());
      child.stdout.pipe(options.stdout, { end: false });
    } else child.stdout.on('data', (c: Buffer) => bounds.stdout(c));
    child.stderr.on('data', (c: Buffer) => bounds.stderr(c));
    child.on('error', (error: NodeJS.ErrnoException) => {
      bounds.done();
      if (error.code === 'ENOENT') resolve({ code: 127, signal: undefined, stdout: Buffer.alloc(0), stderr: `${command}: command not found` });
      else reject(new SshError(node, 'remote', error.message, { cause: error }));
    });
    child.on('close', (code, signal) => resolve(bounds.result(code, signal ?? undefined)));
    child.stdin.on('error', () => {});
    const input = options.stdin;
    if (input === undefined) child.stdin.end();
    else if (Buffer.isBuffer(input)) child.stdin.end(input);
    else
      Readable.from(input)
        .on('data', () => bounds.moved())
        .pipe(child.stdin);
  });
}
