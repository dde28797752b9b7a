import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '@gsync/core';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';
import type { NodeConfig } from '../src/config.js';
import { type SshTarget, expandProxyCommand, parseJumpHost, resolveSshTarget } from '../src/ssh/resolve.js';

afterAll(cleanupTempDirs);

const home = tempDir('gsync-resolve-home-');
const sshConfig = join(home, 'ssh_config');
writeFileSync(
  sshConfig,
  [
    'Host target',
    '  HostName 10.1.0.5',
    '  User alice',
    '  ProxyJump bastion,carol@inner.lan:2200',
    'Host bastion',
    '  HostName 192.0.2.1',
    '  User bob',
    '  IdentityFile ~/.ssh/id_bastion',
    '  UserKnownHostsFile /kh/bastion',
    '  StrictHostKeyChecking accept-new',
    'Host inner.lan',
    '  ProxyJump elsewhere',
    '  IdentityAgent none',
    'Host cmd',
    '  HostName 10.1.0.6',
    '  User dave',
    '  ProxyCommand ssh -W %h:%p -l %r %n.via jump %% done',
    'Host oddcmd',
    '  ProxyCommand nc %x %p',
    'Host loop',
    '  ProxyJump loop',
    'Host ring1',
    '  ProxyJump ring2',
    'Host ring2',
    '  ProxyJump ring1',
    'Host strict-no',
    '  StrictHostKeyChecking no',
    'Host strict-yes',
    '  StrictHostKeyChecking yes',
    'Host agent-path',
    '  IdentityAgent /run/agent.sock',
    'Host agent-var',
    '  IdentityAgent $MY_AGENT',
    'Host agent-env',
    '  IdentityAgent SSH_AUTH_SOCK',
    '',
  ].join('\n'),
);

const env = { ...process.env, HOME: home, USER: 'me', SSH_AUTH_SOCK: '/run/agent-from-env', MY_AGENT: '/run/my-agent' };
const node = (host: string, extra: Partial<NodeConfig> = {}) =>
  ({ name: 'n', host, connect_timeout_seconds: 7, keepalive_seconds: 15, ...extra }) as NodeConfig;
const resolve = (host: string, extra: Partial<NodeConfig> = {}) => resolveSshTarget({ node: node(host, extra), sshConfig, home, env });

describe('parseJumpHost', () => {
  it('reads the forms ssh takes', () => {
    expect(parseJumpHost('bastion')).toEqual({ user: undefined, host: 'bastion' });
    expect(parseJumpHost('bob@bastion:2222')).toEqual({ user: 'bob', host: 'bastion', port: 2222 });
    expect(parseJumpHost('b@ob@host')).toEqual({ user: 'b@ob', host: 'host' });
    expect(parseJumpHost('[2001:db8::1]:22')).toEqual({ user: undefined, host: '2001:db8::1', port: 22 });
    expect(parseJumpHost('eve@[::1]')).toEqual({ user: 'eve', host: '::1' });
    expect(parseJumpHost('ssh://bob@bastion:2022')).toEqual({ user: 'bob', host: 'bastion', port: 2022 });
  });

  it('refuses what is not [user@]host[:port]', () => {
    for (const bad of ['', '@host', 'host:', 'host:0', 'host:65536', 'host:22x', '-oProxyCommand=x', 'a b', '2001:db8::1', 'user@']) {
      expect(parseJumpHost(bad), bad).toBeUndefined();
    }
  });
});

describe('expandProxyCommand', () => {
  const values = { h: '10.0.0.1', p: 22, r: 'alice', n: 'box' };

  it('fills in %h %p %r %n and %%, as ssh does', () => {
    expect(expandProxyCommand('ssh -W %h:%p -l %r %n 100%%', values)).toBe('ssh -W 10.0.0.1:22 -l alice box 100%');
  });

  it('quotes each value for the shell, so a value cannot add a command', () => {
    const cmd = expandProxyCommand('nc %h %p # %r', { ...values, h: 'a;touch /tmp/x', r: "it's $(id)" });
    expect(cmd).toBe(`nc 'a;touch /tmp/x' 22 # 'it'\\''s $(id)'`);
  });

  it('refuses a token ssh does not know', () => {
    expect(() => expandProxyCommand('nc %x', values)).toThrow(/unknown token %x/);
    expect(() => expandProxyCommand('nc %', values)).toThrow(/unknown token %/);
  });
});

/** The jump hosts of a target, first hop first. */
function hops(target: SshTarget): SshTarget[] {
  const chain: SshTarget[] = [];
  for (let t = target.proxy?.kind === 'jump' ? target.proxy.hop : undefined; t; t = t.proxy?.kind === 'jump' ? t.proxy.hop : undefined) chain.unshift(t);
  return chain;
}

describe('resolveSshTarget with ssh -G', () => {
  it('follows a ProxyJump list: the last hop is reached through the ones before it, the first as its own config says', async () => {
    const target = await resolve('target');
    expect([target.host, target.user, target.port]).toEqual(['10.1.0.5', 'alice', 22]);
    const [first, second] = hops(target);
    expect(hops(target)).toHaveLength(2);
    // The second hop's own ProxyJump (elsewhere) gives way to the list, as under ssh -J.
    expect(second).toMatchObject({ spec: 'carol@inner.lan:2200', host: 'inner.lan', user: 'carol', port: 2200, agentSocket: undefined });
    expect(first).toMatchObject({
      spec: 'bastion',
      host: '192.0.2.1',
      user: 'bob',
      identityFiles: [join(home, '.ssh/id_bastion')],
      knownHostsFiles: ['/kh/bastion'],
      acceptNew: true,
      connectTimeoutSeconds: 7,
    });
    expect(first!.proxy).toBeUndefined();
  });

  it("nodes.json's fields apply to the node, not to its jump hosts", async () => {
    const target = await resolve('target', { user: 'root2', port: 2022, identity_file: '/keys/node', known_hosts: '/kh/node' });
    expect(target).toMatchObject({ user: 'root2', port: 2022, identityFiles: ['/keys/node'], identityFixed: true, knownHostsFiles: ['/kh/node'] });
    const [first] = hops(target);
    expect(first).toMatchObject({ user: 'bob', identityFixed: false, knownHostsFiles: ['/kh/bastion'] });
  });

  it('fills in a ProxyCommand with the final host, port and user (nodes.json included)', async () => {
    expect((await resolve('cmd')).proxy).toEqual({ kind: 'command', command: 'ssh -W 10.1.0.6:22 -l dave cmd.via jump % done' });
    expect((await resolve('cmd', { port: 2200, user: 'erin' })).proxy).toEqual({
      kind: 'command',
      command: 'ssh -W 10.1.0.6:2200 -l erin cmd.via jump % done',
    });
    await expect(resolve('oddcmd')).rejects.toThrow(/node n: ProxyCommand has an unknown token %x/);
  });

  it('stops a chain of jump hosts that comes back on itself', async () => {
    const error = await resolve('ring1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/^node n: ProxyJump goes through more than 10 jump hosts/);
    // One that names itself, ssh -G already refuses.
    await expect(resolve('loop')).rejects.toThrow(/cannot resolve host "loop" with ssh -G: jumphost loop via loop/);
  });

  it('StrictHostKeyChecking: accept-new and no record a new key; yes and the default do not', async () => {
    expect((await resolve('bastion')).acceptNew).toBe(true);
    expect((await resolve('strict-no')).acceptNew).toBe(true);
    expect((await resolve('strict-yes')).acceptNew).toBe(false);
    expect((await resolve('plain.example')).acceptNew).toBe(false);
  });

  it('IdentityAgent: a path, $VAR, SSH_AUTH_SOCK, none; unset is $SSH_AUTH_SOCK', async () => {
    expect((await resolve('agent-path')).agentSocket).toBe('/run/agent.sock');
    expect((await resolve('agent-var')).agentSocket).toBe('/run/my-agent');
    expect((await resolve('agent-env')).agentSocket).toBe('/run/agent-from-env');
    expect((await resolve('inner.lan')).agentSocket).toBeUndefined();
    expect((await resolve('plain.example')).agentSocket).toBe('/run/agent-from-env');
    const noAgent = await resolveSshTarget({ node: node('plain.example'), sshConfig, home, env: { ...env, SSH_AUTH_SOCK: '' } });
    expect(noAgent.agentSocket).toBeUndefined();
  });
});
