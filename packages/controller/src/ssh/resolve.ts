import { execa } from 'execa';
import { join } from 'node:path';
import { UsageError, quoteWord } from '@gsync/core';
import type { NodeConfig } from '../config.js';

/** Where and how to connect, after ~/.ssh/config (or ssh_config) and the node entry are applied. */
export interface SshTarget {
  /** The host as the node entry or a ProxyJump list names it: what messages call a jump host. */
  spec: string;
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  /** Only the node's own identity_file, when it names one. */
  identityFixed: boolean;
  knownHostsFiles: string[];
  hostKeyAlias: string | undefined;
  agentSocket: string | undefined;
  /** StrictHostKeyChecking accept-new (or no) in the ssh config: a key never seen before is recorded. */
  acceptNew: boolean;
  /** How the connection gets there when not directly: through a jump host, or a command's stdin and stdout. */
  proxy?: { kind: 'jump'; hop: SshTarget } | { kind: 'command'; command: string };
  connectTimeoutSeconds: number;
  keepaliveSeconds?: number;
}

/** A chain longer than this is taken for a loop (a jump host whose config names itself). */
const MAX_HOPS = 10;

function expandTilde(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path;
}

export function parseSshG(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(' ');
    if (i <= 0) continue;
    const key = line.slice(0, i).toLowerCase();
    map.set(key, [...(map.get(key) ?? []), line.slice(i + 1)]);
  }
  return map;
}

export interface JumpHost {
  user?: string;
  host: string;
  port?: number;
}

/** One element of a ProxyJump list, as ssh reads it: `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`. */
export function parseJumpHost(spec: string): JumpHost | undefined {
  let rest = spec.startsWith('ssh://') ? spec.slice('ssh://'.length).replace(/\/$/, '') : spec;
  const at = rest.lastIndexOf('@');
  const user = at >= 0 ? rest.slice(0, at) : undefined;
  rest = rest.slice(at + 1);
  const bracketed = /^\[([^\]]+)\](?::([^:]*))?$/.exec(rest);
  let host = bracketed ? bracketed[1]! : rest;
  let port = bracketed?.[2];
  if (!bracketed && rest.includes(':')) {
    // An IPv6 address needs its brackets to take a port; ssh refuses it bare too.
    if (rest.indexOf(':') !== rest.lastIndexOf(':')) return undefined;
    [host, port] = rest.split(':') as [string, string];
  }
  if (user === '' || host === '' || host.startsWith('-') || /[\s,]/.test(host) || (user && /\s/.test(user))) return undefined;
  if (port === undefined) return { user, host };
  const n = Number(port);
  return /^\d+$/.test(port) && n >= 1 && n <= 65535 ? { user, host, port: n } : undefined;
}

/**
 * ProxyCommand's %-tokens as ssh fills them in (%h host, %p port, %r user, %n the host as
 * given, %% a percent sign), each value quoted for the shell that runs the command.
 */
export function expandProxyCommand(command: string, values: { h: string; p: number; r: string; n: string }): string {
  return command.replace(/%(.?)/g, (_, token: string) => {
    if (token === '%') return '%';
    if (token === 'h' || token === 'p' || token === 'r' || token === 'n') return quoteWord(String(values[token]));
    throw new Error(`ProxyCommand has an unknown token %${token} (ssh knows %h %p %r %n %%)`);
  });
}

export interface ResolveOptions {
  node: NodeConfig;
  sshConfig: string | undefined;
  home: string;
  env: NodeJS.ProcessEnv;
}

/** The agent socket IdentityAgent names: a path, `none`, `SSH_AUTH_SOCK` or `$VAR` (ssh's forms); unset, $SSH_AUTH_SOCK. */
function agentSocket(value: string | undefined, home: string, env: NodeJS.ProcessEnv): string | undefined {
  if (value === 'none') return undefined;
  const path = value === undefined || value === 'SSH_AUTH_SOCK' ? env.SSH_AUTH_SOCK : value.startsWith('$') ? env[value.slice(1)] : expandTilde(value, home);
  return path || undefined;
}

/**
 * Resolves a node the way `ssh` would: `ssh -G` is the faithful reader of
 * ssh_config (aliases, Match blocks, Include). Fields set in nodes.json win,
 * as options on ssh's command line would. A ProxyJump list is followed as ssh
 * follows it: the last jump host is resolved with the ones before it as its own
 * ProxyJump (`ssh -J`), the first with whatever its config says.
 */
export async function resolveSshTarget({ node, sshConfig, home, env }: ResolveOptions): Promise<SshTarget> {
  const host = node.host ?? node.name;
  if (host.startsWith('-') || /\s/.test(host)) throw new UsageError(`node ${node.name}: host ${JSON.stringify(host)} is not a host name`);
  const target = await resolveHost({ node, sshConfig, home, env }, host, { host, port: node.port, user: node.user }, undefined, 0);
  if (node.identity_file) target.identityFiles = [node.identity_file];
  target.identityFixed = node.identity_file !== undefined;
  if (node.known_hosts) target.knownHostsFiles = [node.known_hosts];
  return target;
}

async function resolveHost(o: ResolveOptions, spec: string, want: JumpHost, jumpBefore: string | undefined, depth: number): Promise<SshTarget> {
  const { node, sshConfig, home, env } = o;
  const args = [
    '-G',
    ...(sshConfig ? ['-F', sshConfig] : []),
    ...(want.user ? ['-l', want.user] : []),
    ...(want.port ? ['-p', String(want.port)] : []),
    ...(jumpBefore ? ['-J', jumpBefore] : []),
    '--',
    want.host,
  ];
  const result = await execa('ssh', args, { reject: false, env });
  if (result.exitCode !== 0) {
    const reason = result.failed && (result as { code?: string }).code === 'ENOENT' ? 'the ssh client is not installed' : String(result.stderr).trim();
    throw new UsageError(`node ${node.name}: cannot resolve ${depth === 0 ? 'host' : 'jump host'} "${spec}" with ssh -G: ${reason}`);
  }
  const g = parseSshG(String(result.stdout));
  const one = (key: string) => g.get(key)?.[0];
  const strict = one('stricthostkeychecking');
  const target: SshTarget = {
    spec,
    host: one('hostname') ?? want.host,
    port: Number(one('port') ?? 22),
    user: one('user') ?? env.USER ?? 'root',
    identityFiles: (g.get('identityfile') ?? []).map((p) => expandTilde(p, home)),
    identityFixed: false,
    knownHostsFiles: (one('userknownhostsfile') ?? '~/.ssh/known_hosts').split(/\s+/).map((p) => expandTilde(p, home)),
    hostKeyAlias: one('hostkeyalias'),
    agentSocket: agentSocket(one('identityagent'), home, env),
    // "no" would accept any key, even a changed one: gsync reads it as accept-new, which still refuses a change.
    acceptNew: strict === 'accept-new' || strict === 'false' || strict === 'no' || strict === 'off',
    connectTimeoutSeconds: node.connect_timeout_seconds,
    keepaliveSeconds: node.keepalive_seconds,
  };
  const jump = one('proxyjump');
  const command = one('proxycommand');
  if (jump && jump !== 'none') {
    if (depth >= MAX_HOPS) throw new UsageError(`node ${node.name}: ProxyJump goes through more than ${MAX_HOPS} jump hosts; does one of them name itself?`);
    const hops = jump.split(',');
    const last = hops.pop()!;
    const hop = parseJumpHost(last);
    if (!hop) throw new UsageError(`node ${node.name}: ProxyJump "${last}" for "${spec}" is not [user@]host[:port]`);
    target.proxy = { kind: 'jump', hop: await resolveHost(o, last, hop, hops.length > 0 ? hops.join(',') : undefined, depth + 1) };
  } else if (command && command !== 'none') {
    if (one('proxyusefdpass') === 'yes') throw new UsageError(`node ${node.name}: ProxyUseFdpass is set for "${spec}"; gsync does not support it`);
    try {
      target.proxy = { kind: 'command', command: expandProxyCommand(command, { h: target.host, p: target.port, r: target.user, n: want.host }) };
    } catch (error) {
      throw new UsageError(`node ${node.name}: ${(error as Error).message}`);
    }
  }
  return target;
}
