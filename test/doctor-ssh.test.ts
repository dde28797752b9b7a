import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from './helpers/git-repo.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { runCtl, writeConfig } from './helpers/world.js';

/**
 * `doctor` against a real OpenSSH node: a host key that is not in known_hosts is a problem
 * that says how to fix it, and is not recorded unless --accept-new says so; with the key
 * known, every check passes.
 */
let world: SshWorld;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'n1' }], 'gsdoctor');
});

afterAll(async () => {
  await world?.stop();
  cleanupTempDirs();
});

interface Doctor {
  nodes: { node: string; checks: { name: string; ok: boolean; detail: string; fix?: string }[] }[];
}

function setup(knownHosts: string, sshConfig = world.sshConfig) {
  const configDir = tempDir('gsync-config-');
  const agent = ['node', join(world.agents, 'noop.mjs'), '{spec_file}'];
  writeConfig(configDir, { ssh_config: sshConfig, nodes: [{ name: 'n1', host: world.node('n1').alias, known_hosts: knownHosts, agent }] }, {});
  return configDir;
}

describe('doctor over real sshd', () => {
  it('an unknown host key is a problem with its fix, and is recorded only with --accept-new', async () => {
    const n1 = world.node('n1');
    // A known_hosts that knows another host, not this one.
    const knownHosts = join(tempDir('gsync-kh-'), 'known_hosts');
    const other = `[127.0.0.1]:1 ${n1.hostKeyPub}\n`;
    writeFileSync(knownHosts, other);
    const configDir = setup(knownHosts);

    const r = await runCtl(configDir, ['doctor', '--json']);
    expect(r.code).toBe(3);
    const checks = (JSON.parse(r.out) as Doctor).nodes[0]!.checks;
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['ssh config', true],
      ['reachable', true],
      ['host key', false],
    ]);
    expect(checks[0]!.detail).toBe(`${n1.user}@127.0.0.1:${n1.port}`);
    expect(checks[2]!.detail).toMatch(new RegExp(`host key for \\[127\\.0\\.0\\.1\\]:${n1.port} is not known \\(SHA256:`));
    expect(checks[2]!.fix).toMatch(/--accept-new to record it in .*known_hosts/);
    expect(readFileSync(knownHosts, 'utf8')).toBe(other);

    const text = await runCtl(configDir, ['doctor']);
    expect(text.code).toBe(3);
    expect(text.out).toMatch(/^n1\s+host key\s+problem\s+host key for .* is not known .*; fix: check the fingerprint .*--accept-new/m);

    const accepted = await runCtl(configDir, ['doctor', '--accept-new']);
    expect(accepted.code).toBe(0);
    expect(readFileSync(knownHosts, 'utf8')).toBe(`${other}[127.0.0.1]:${n1.port} ${n1.hostKeyPub}\n`);
  });

  it("the ssh config's StrictHostKeyChecking accept-new does not make doctor record a key", async () => {
    const knownHosts = join(tempDir('gsync-kh-'), 'known_hosts');
    writeFileSync(knownHosts, '');
    const sshConfig = join(tempDir('gsync-sshconf-'), 'ssh_config');
    // The test world's config has one Host block: the line joins it.
    writeFileSync(sshConfig, `${readFileSync(world.sshConfig, 'utf8')}  StrictHostKeyChecking accept-new\n`);
    const r = await runCtl(setup(knownHosts, sshConfig), ['doctor', '--json']);
    expect(r.code).toBe(3);
    const hostKey = (JSON.parse(r.out) as Doctor).nodes[0]!.checks.find((c) => c.name === 'host key')!;
    expect(hostKey.ok).toBe(false);
    expect(hostKey.fix).toMatch(/StrictHostKeyChecking accept-new records it at the first dispatch$/);
    expect(readFileSync(knownHosts, 'utf8')).toBe('');
  });

  it('with the host key known, every check passes', async () => {
    const n1 = world.node('n1');
    const configDir = setup(world.knownHosts);
    const before = readFileSync(world.knownHosts, 'utf8');
    const r = await runCtl(configDir, ['doctor', '--json']);
    expect(r.code).toBe(0);
    const checks = (JSON.parse(r.out) as Doctor).nodes[0]!.checks;
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['ssh config', true],
      ['reachable', true],
      ['host key', true],
      ['login', true],
      ['node.js', true],
      ['git', true],
      ['gsync-node', true],
      ['work root', true],
      ['free disk', true],
      ['agent', true],
    ]);
    expect(checks.find((c) => c.name === 'login')!.detail).toBe(`as ${n1.user}`);
    expect(checks.find((c) => c.name === 'git')!.detail).toMatch(/^git version /);
    expect(readFileSync(world.knownHosts, 'utf8')).toBe(before);
    const text = await runCtl(configDir, ['doctor']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/every check passed on 1 node/);
  });
});
