import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import ssh2, { type AgentAuthMethod, type ConnectConfig, type PublicKeyAuthMethod } from 'ssh2';
import { SshError } from '@gsync/core';
import { type AskPassphrase, type Identities, loadIdentities } from './identity.js';
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
import { startProxyCommand } from './proxy-command.js';
import type { SshTarget } from './resolve.js';

// ssh2 is CommonJS: its named exports are reached through the default one.
const { Client } = ssh2;
export type Client = InstanceType<typeof Client>;

export interface ClientOptions {
  node: string;
  /** --accept-new: record the key of a host never seen before (never a changed one), for the node and its jump hosts. */
  acceptNew: boolean;
  askPassphrase?: AskPassphrase;
  /** For a ProxyCommand. */
  env: NodeJS.ProcessEnv;
}

/** An SSH connection and whatever carries it (jump hosts, a proxy command): closing it closes them all. */
export interface Connection {
  client: Client;
  close(): void;
}

/** What a connection runs over when it is not a TCP connection of its own. */
interface Carrier {
  sock?: Readable;
  /** How messages say the way in: " through jump host j" (a ProxyCommand tells its own story in `failure`). */
  through: string;
  close(): void;
  /** Why the carrier failed, when it can say more than the SSH layer saw. */
  failure?(): Promise<string>;
}

/**
 * Connects to a target as ssh would: through its jump hosts, each verified and logged into as
 * a host of its own, or over its ProxyCommand. Whatever fails is closed again, every hop
 * included, and the error names the hop.
 */
export async function connectThrough(target: SshTarget, o: ClientOptions, hop = false): Promise<Connection> {
  const prefix = hop ? `jump host ${target.spec}: ` : '';
  // Keys (and a passphrase) first: a carrier that ended while we waited would go unnoticed until the timeout.
  const known = await readKnownHosts(target.knownHostsFiles);
  const identities = await loadIdentities(target, o.node, prefix, o.askPassphrase);
  const carrier = await openCarrier(target, o);
  try {
    const client = await handshake(target, o, prefix, carrier, known, identities);
    // A jump host's failure reaches the connection it carries as its carrier closing, and is reported there (the node's own, by its transport).
    client.on('error', () => undefined);
    client.once('close', () => carrier.close());
    return {
      client,
      close: () => {
        client.end();
        carrier.close();
      },
    };
  } catch (error) {
    carrier.close();
    throw error;
  }
}

async function openCarrier(target: SshTarget, o: ClientOptions): Promise<Carrier> {
  const proxy = target.proxy;
  if (!proxy) return { through: '', close: () => undefined };
  if (proxy.kind === 'command') {
    const command = startProxyCommand(proxy.command, o.env);
    return { sock: command.sock, through: '', close: command.close, failure: command.failure };
  }
  const hop = await connectThrough(proxy.hop, o, true);
  try {
    const channel = await forward(hop.client, target);
    return { sock: channel, through: ` through jump host ${proxy.hop.spec}`, close: hop.close };
  } catch (error) {
    hop.close();
    throw new SshError(
      o.node,
      'connect',
      `jump host ${proxy.hop.spec} cannot open a connection to ${target.host}:${target.port}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** A direct-tcpip channel from the jump host to the target (what `ssh -W` asks for); given up after the connect timeout. */
function forward(client: Client, target: SshTarget): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${target.connectTimeoutSeconds} s`)), target.connectTimeoutSeconds * 1000);
    client.forwardOut('127.0.0.1', 0, target.host, target.port, (error, channel) => {
      clearTimeout(timer);
      if (error) return reject(error);
      resolve(channel);
    });
  });
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

function hostKeyError(node: string, prefix: string, name: string, verdict: HostKeyVerdict, blob: Buffer, files: readonly string[]): SshError {
  const fp = fingerprint(blob);
  if (verdict.kind === 'unknown') {
    return new SshError(node, 'hostkey', `${prefix}host key for ${name} is not known (${fp}); not connecting`, {
      hint: `check the fingerprint with the host's owner, then run again with --accept-new to record it in ${files[0]}`,
    });
  }
  if (verdict.kind === 'revoked') return new SshError(node, 'hostkey', `${prefix}host key for ${name} is REVOKED in known_hosts (${fp})`);
  return new SshError(node, 'hostkey', `${prefix}HOST KEY CHANGED for ${name}: it now offers ${fp}, which does not match known_hosts`, {
    hint: `if the host was really reinstalled, remove its old line with: ssh-keygen -R '${name}'`,
  });
}

async function handshake(
  target: SshTarget,
  o: ClientOptions,
  prefix: string,
  carrier: Carrier,
  known: KnownHostEntry[],
  identities: Identities,
): Promise<Client> {
  const { node } = o;
  const { keys, encrypted } = identities;
  const name = hostLookupName(target.hostKeyAlias ?? target.host, target.hostKeyAlias ? 22 : target.port);
  const auth: (PublicKeyAuthMethod | AgentAuthMethod)[] = [
    ...keys.map((key) => ({ type: 'publickey' as const, username: target.user, key })),
    ...(target.agentSocket ? [{ type: 'agent' as const, username: target.user, agent: target.agentSocket }] : []),
  ];
  const acceptNew = o.acceptNew || target.acceptNew;

  let rejection: SshError | undefined;
  let recordNew: string | undefined;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    sock: carrier.sock,
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
      rejection = hostKeyError(node, prefix, name, verdict, blob, target.knownHostsFiles);
      return false;
    },
  };
  const algorithms = preferredHostKeyAlgorithms(known, name);
  if (algorithms) config.algorithms = { serverHostKey: algorithms as never };

  const where = `${target.host}:${target.port}${carrier.through}`;
  const hint = prefix
    ? 'check that the jump host is up and its entry in the ssh config is right'
    : 'check that the node is up and host/port in nodes.json are right';
  // A ProxyCommand that failed says more (its exit, its last line on stderr) than the SSH layer saw.
  const lost = async (reason: string, cause?: Error) =>
    new SshError(node, 'connect', `${prefix}cannot connect to ${where}: ${carrier.failure ? `the ProxyCommand ${await carrier.failure()}` : reason}`, {
      hint,
      cause,
    });
  const client = new Client();
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = async (error: SshError | Promise<SshError>) => {
      if (settled) return;
      settled = true;
      reject(await error);
    };
    client.once('ready', () => {
      settled = true;
      resolve();
    });
    client.on('error', (error: Error & { level?: string; code?: string }) => {
      if (rejection) return fail(rejection);
      if (error.level === 'client-authentication') {
        const skipped = encrypted.length > 0 ? `; ${encrypted.join(', ')} is encrypted and the agent did not offer it` : '';
        return fail(
          new SshError(node, 'auth', `${prefix}${target.user}@${target.host}:${target.port} refused every key we offered${skipped}`, {
            hint: "check identity_file and that its public key is in the node user's authorized_keys",
            cause: error,
          }),
        );
      }
      fail(lost(error.code ?? error.message, error));
    });
    // A link cut during the handshake may end with a close and no error.
    client.once('close', () => fail(rejection ?? lost('the connection closed during the handshake')));
    client.connect(config);
  }).catch((error: unknown) => {
    client.end();
    throw error;
  });
  if (recordNew) {
    const file = target.knownHostsFiles[0]!;
    await mkdir(dirname(file), { recursive: true });
    // A file whose last line has no newline would otherwise get this line glued onto it.
    const before = await readFile(file).catch(() => Buffer.alloc(0));
    const lead = before.length > 0 && before[before.length - 1] !== 0x0a ? '\n' : '';
    await appendFile(file, `${lead}${recordNew}\n`, { mode: 0o600 });
  }
  return client;
}
