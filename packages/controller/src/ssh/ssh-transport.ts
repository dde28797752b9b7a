import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import ssh2, { type AgentAuthMethod, type ConnectConfig, type PublicKeyAuthMethod } from 'ssh2';
import { SshError, quoteArgv } from '@gsync/core';
import { ExecBounds, type ExecOptions, type ExecResult, type NodeTransport } from './transport.js';
import {
  checkHostKey,
  fingerprint,
  hostLookupName,
  knownHostsLine,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
  type HostKeyVerdict,
  type KnownHostEntry,
} from './known-hosts.js';
import type { SshTarget } from './resolve.js';

// ssh2 is CommonJS: its named exports are reached through the default one.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

export interface SshOptions {
  node: string;
  target: SshTarget;
  /** Record the key of a host never seen before (never a changed one). */
  acceptNew: boolean;
}

async function readKnownHosts(files: readonly string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const file of files) {
    try {
      all.push(...parseKnownHosts(await readFile(file, 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return all;
}

/** Keys from identity files that exist and need no passphrase (encrypted ones are left to the agent). */
async function loadKeys(files: readonly string[], node: string): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new SshError(node, 'auth', `cannot read identity file ${file}: ${(error as Error).message}`);
    }
    if (!(utils.parseKey(data) instanceof Error)) keys.push(data);
  }
  return keys;
}

function hostKeyError(node: string, name: string, verdict: HostKeyVerdict, blob: Buffer, files: readonly string[]): SshError {
  const fp = fingerprint(blob);
  if (verdict.kind === 'unknown') {
    return new SshError(node, 'hostkey', `host key for ${name} is not known (${fp}); not connecting`, {
      hint: `check the fingerprint with the host's owner, then run again with --accept-new to record it in ${files[0]}`,
    });
  }
  if (verdict.kind === 'revoked') return new SshError(node, 'hostkey', `host key for ${name} is REVOKED in known_hosts (${fp})`);
  return new SshError(node, 'hostkey', `HOST KEY CHANGED for ${name}: it now offers ${fp}, which does not match known_hosts`, {
    hint: `if the host was really reinstalled, remove its old line with: ssh-keygen -R '${name}'`,
  });
}

export async function openSshTransport({ node, target, acceptNew }: SshOptions): Promise<NodeTransport> {
  const name = hostLookupName(target.hostKeyAlias ?? target.host, target.hostKeyAlias ? 22 : target.port);
  const known = await readKnownHosts(target.knownHostsFiles);
  const keys = await loadKeys(target.identityFiles, node);
  if (keys.length === 0 && !target.agentSocket) {
    throw new SshError(
      node,
      'auth',
      `no usable identity: none of ${target.identityFiles.join(', ') || '(no identity files)'} can be read without a passphrase, and no ssh-agent is running`,
      {
        hint: 'set identity_file for the node, or start ssh-agent and add the key',
      },
    );
  }
  const auth: (PublicKeyAuthMethod | AgentAuthMethod)[] = [
    ...keys.map((key) => ({ type: 'publickey' as const, username: target.user, key })),
    ...(target.agentSocket ? [{ type: 'agent' as const, username: target.user, agent: target.agentSocket }] : []),
  ];

  let rejection: SshError | undefined;
  let recordNew: string | undefined;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    readyTimeout: target.connectTimeoutSeconds * 1000,
    // A link that stalls is noticed after three unanswered keepalives, and the transfer is retried.
    keepaliveInterval: (target.keepaliveSeconds ?? 15) * 1000,
    keepaliveCountMax: 3,
    authHandler: auth,
    hostVerifier: (blob: Buffer) => {
      const verdict = checkHostKey(known, name, blob);
      if (verdict.kind === 'known') return true;
      if (verdict.kind === 'unknown' && acceptNew) {
        recordNew = knownHostsLine(name, blob);
        return true;
      }
      rejection = hostKeyError(node, name, verdict, blob, target.knownHostsFiles);
      return false;
    },
  };
  const algorithms = preferredHostKeyAlgorithms(known, name);
  if (algorithms) config.algorithms = { serverHostKey: algorithms as never };

  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', (error: Error & { level?: string; code?: string }) => {
      if (rejection) return reject(rejection);
      if (error.level === 'client-authentication') {
        return reject(
          new SshError(node, 'auth', `${target.user}@${target.host}:${target.port} refused every key we offered`, {
            hint: "check identity_file and that its public key is in the node user's authorized_keys",
            cause: error,
          }),
        );
      }
      const reason = error.code ?? error.message;
      reject(
        new SshError(node, 'connect', `cannot connect to ${target.host}:${target.port}: ${reason}`, {
          hint: 'check that the node is up and host/port in nodes.json are right',
          cause: error,
        }),
      );
    });
    // A link cut during the handshake may end with a close and no error.
    client.once('close', () => reject(rejection ?? new SshError(node, 'connect', `connection to ${target.host}:${target.port} closed during the handshake`)));
    client.connect(config);
  });
  if (recordNew) {
    const file = target.knownHostsFiles[0]!;
    await mkdir(dirname(file), { recursive: true });
    // A file whose last line has no newline would otherwise get this line glued onto it.
    const before = await readFile(file).catch(() => Buffer.alloc(0));
    const lead = before.length > 0 && before[before.length - 1] !== 0x0a ? '\n' : '';
    await appendFile(file, `${lead}${recordNew}\n`, { mode: 0o600 });
  }

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
    close: async () => {
      client.end();
    },
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
