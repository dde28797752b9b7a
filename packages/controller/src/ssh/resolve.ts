import { execa } from 'execa';
import { join } from 'node:path';
import { UsageError } from '@gsync/core';
import type { NodeConfig } from '../config.js';

/** Where and how to connect, after ~/.ssh/config (or ssh_config) and the node entry are applied. */
export interface SshTarget {
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  /** Only the node's own identity_file, when it names one. */
  identityFixed: boolean;
  knownHostsFiles: string[];
  hostKeyAlias: string | undefined;
  agentSocket: string | undefined;
  connectTimeoutSeconds: number;
  keepaliveSeconds?: number;
}

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

export interface ResolveOptions {
  node: NodeConfig;
  sshConfig: string | undefined;
  home: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Resolves a node the way `ssh` would: `ssh -G` is the faithful reader of
 * ssh_config (aliases, Match blocks, Include). Fields set in nodes.json win,
 * as options on ssh's command line would.
 */
export async function resolveSshTarget({ node, sshConfig, home, env }: ResolveOptions): Promise<SshTarget> {
  const host = node.host ?? node.name;
  if (host.startsWith('-') || /\s/.test(host)) throw new UsageError(`node ${node.name}: host ${JSON.stringify(host)} is not a host name`);
  const args = ['-G', ...(sshConfig ? ['-F', sshConfig] : []), '--', host];
  const result = await execa('ssh', args, { reject: false, env });
  if (result.exitCode !== 0) {
    const reason = result.failed && (result as { code?: string }).code === 'ENOENT' ? 'the ssh client is not installed' : String(result.stderr).trim();
    throw new UsageError(`node ${node.name}: cannot resolve host "${host}" with ssh -G: ${reason}`);
  }
  const g = parseSshG(String(result.stdout));
  const one = (key: string) => g.get(key)?.[0];
  for (const key of ['proxyjump', 'proxycommand']) {
    const value = one(key);
    if (value && value !== 'none') {
      throw new UsageError(`node ${node.name}: ${key} is set for "${host}" in the ssh config; gsync does not support it yet`);
    }
  }
  const agent = one('identityagent');
  return {
    host: one('hostname') ?? host,
    port: node.port ?? Number(one('port') ?? 22),
    user: node.user ?? one('user') ?? env.USER ?? 'root',
    identityFiles: node.identity_file ? [node.identity_file] : (g.get('identityfile') ?? []).map((p) => expandTilde(p, home)),
    identityFixed: node.identity_file !== undefined,
    knownHostsFiles: node.known_hosts ? [node.known_hosts] : (one('userknownhostsfile') ?? '~/.ssh/known_hosts').split(/\s+/).map((p) => expandTilde(p, home)),
    hostKeyAlias: one('hostkeyalias'),
    agentSocket: agent && agent !== 'none' && agent !== 'SSH_AUTH_SOCK' ? expandTilde(agent, home) : env.SSH_AUTH_SOCK,
    connectTimeoutSeconds: node.connect_timeout_seconds,
    keepaliveSeconds: node.keepalive_seconds,
  };
}
