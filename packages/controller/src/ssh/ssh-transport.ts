import { Readable } from 'node:stream';
import { SshError, quoteArgv } from '@gsync/core';
import type { AskPassphrase } from './identity.js';
import type { SshTarget } from './resolve.js';
import { type Client, connectThrough } from './ssh-client.js';
import { ExecBounds, type ExecOptions, type ExecResult, type NodeTransport } from './transport.js';

export interface SshOptions {
  node: string;
  target: SshTarget;
  /** Record the key of a host never seen before (never a changed one). */
  acceptNew: boolean;
  askPassphrase?: AskPassphrase;
  env: NodeJS.ProcessEnv;
}

export async function openSshTransport({ node, target, acceptNew, askPassphrase, env }: SshOptions): Promise<NodeTransport> {
  const { client, close } = await connectThrough(target, { node, acceptNew, askPassphrase, env });

  // After the handshake, a dropped or stalled connection fails whatever runs on it, as a transfer error.
  const link: { lost?: SshError } = {};
  client.on('error', (error: Error) => {
    link.lost ??= new SshError(node, 'transfer', `the connection to ${target.host}:${target.port} was lost: ${error.message}`, { cause: error });
  });
  client.on('close', () => {
    link.lost ??= new SshError(node, 'transfer', `the connection to ${target.host}:${target.port} closed`);
  });
  return {
    node,
    exec: (argv, options) => (link.lost ? Promise.reject(link.lost) : execRemote(client, node, argv, options ?? {}, link)),
    close: async () => close(),
  };
}

function execRemote(client: Client, node: string, argv: readonly string[], options: ExecOptions, link: { lost?: SshError }): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(quoteArgv(argv), (error, stream) => {
      if (error) return reject(new SshError(node, 'remote', `cannot start a remote command: ${error.message}`, { cause: error }));
      let code: number | null = null;
      let signal: string | undefined;
      let aborted: SshError | undefined;
      // Past a limit: the command is killed where the server allows, its channel closed, and nothing more is read.
      const bounds = new ExecBounds(node, options, (why) => {
        aborted = why;
        try {
          stream.signal('KILL');
        } catch {
          // Closing the channel is what counts.
        }
        stream.unpipe();
        stream.removeAllListeners('data');
        stream.stderr.removeAllListeners('data');
        stream.close();
        // The connection goes too: a command that would not stop may still hold the session.
        link.lost ??= new SshError(node, 'transfer', `the connection was closed after a command that had to be ended (${why.message})`);
        client.end();
        reject(why);
      });
      stream.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s ?? undefined;
      });
      if (options.stdout) {
        stream.on('data', () => bounds.moved());
        stream.pipe(options.stdout, { end: false });
      } else stream.on('data', (c: Buffer) => bounds.stdout(c));
      stream.stderr.on('data', (c: Buffer) => bounds.stderr(c));
      stream.on('close', () => {
        bounds.done();
        if (aborted) return;
        // No exit status at all: the command did not end, the connection did.
        if (code === null && signal === undefined)
          return reject(link.lost ?? new SshError(node, 'transfer', 'the connection dropped before the remote command finished'));
        resolve(bounds.result(code, signal));
      });
      stream.on('error', (e: Error) => {
        bounds.done();
        reject(new SshError(node, 'transfer', e.message, { cause: e }));
      });
      const input = options.stdin;
      if (input === undefined) stream.end();
      else if (Buffer.isBuffer(input)) stream.end(input);
      else
        Readable.from(input)
          .on('data', () => bounds.moved())
          .pipe(stream);
    });
  });
}
