import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, ROOT, cleanupTempDirs, tempDir } from './helpers/git-repo.js';
import { freePort } from './helpers/sshd.js';
import { runCtl, writeConfig } from './helpers/world.js';

/**
 * `doctor` on `local` nodes (no sshd): a healthy node passes every check and is left as it
 * was; a missing agent, a node_bin that is not there and a node without git each say so with
 * the fix; a node behind a closed port gets one line while the others are still checked.
 */
afterAll(cleanupTempDirs);

const WITHOUT_GIT = join(ROOT, 'fixtures', 'node', 'without-git.sh');
const AGENT = ['node', join(AGENTS, 'noop.mjs'), '{spec_file}'];

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}
interface Doctor {
  schema_version: number;
  nodes: { node: string; checks: Check[] }[];
}

function setup(nodes: object[], projects: object = {}) {
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes }, projects);
  return configDir;
}

async function doctorJson(configDir: string, args: string[] = []): Promise<{ code: number; doc: Doctor }> {
  const r = await runCtl(configDir, ['doctor', '--json', ...args]);
  return { code: r.code, doc: JSON.parse(r.out) as Doctor };
}

const checksOf = (doc: Doctor, node: string) => doc.nodes.find((n) => n.node === node)!.checks;
const named = (doc: Doctor, node: string, name: string) => checksOf(doc, node).filter((c) => c.name === name);

describe('doctor on local nodes', () => {
  it('a healthy node passes every check, and nothing on it changes without --fix', async () => {
    const configDir = setup([{ name: 'l1', transport: 'local', agent: AGENT }]);
    const home = join(configDir, 'nodes', 'l1');
    const { code, doc } = await doctorJson(configDir);
    expect(code).toBe(0);
    expect(doc.schema_version).toBe(1);
    expect(checksOf(doc, 'l1').map((c) => [c.name, c.ok])).toEqual([
      ['reachable', true],
      ['node.js', true],
      ['git', true],
      ['gsync-node', true],
      ['work root', true],
      ['free disk', true],
      ['agent', true],
    ]);
    expect(named(doc, 'l1', 'node.js')[0]!.detail).toMatch(/^v\d+\.\d+\.\d+ \(node\)$/);
    expect(named(doc, 'l1', 'git')[0]!.detail).toMatch(/^git version /);
    expect(named(doc, 'l1', 'gsync-node')[0]).toMatchObject({ detail: /not installed yet/, fix: /doctor --fix/ });
    expect(named(doc, 'l1', 'work root')[0]!.detail).toMatch(/does not exist yet/);
    expect(named(doc, 'l1', 'free disk')[0]!.detail).toMatch(/^\d+(\.\d)? [KMGT]iB free at ~\/dispatch$/);
    expect(named(doc, 'l1', 'agent')[0]!.detail).toMatch(/^node \(the node's agent\): \//);
    // Read-only: no gsync-node, not even the work root.
    expect(existsSync(join(home, 'dispatch'))).toBe(false);

    const text = await runCtl(configDir, ['doctor']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^l1\s+node\.js\s+ok\s+v\d+/m);
    expect(text.out).toMatch(/every check passed on 1 node/);
    expect(text.out).not.toMatch(/problem/);

    const fixed = await doctorJson(configDir, ['--fix']);
    expect(fixed.code).toBe(0);
    expect(named(fixed.doc, 'l1', 'gsync-node')[0]!.detail).toMatch(/installed just now/);
    expect(existsSync(join(home, 'dispatch/.gsync/gsync-node.mjs'))).toBe(true);
    const again = await doctorJson(configDir);
    expect(named(again.doc, 'l1', 'gsync-node')[0]).toEqual({ name: 'gsync-node', ok: true, detail: expect.stringMatching(/this controller's build$/) });
    expect(named(again.doc, 'l1', 'work root')[0]!.detail).toBe('~/dispatch is writable');
  });

  it("a project's agent that is not on the node is a problem with its fix (exit 3)", async () => {
    const configDir = setup([{ name: 'l1', transport: 'local', agent: AGENT }], {
      web: { repo_local: tempDir('gsync-repo-'), agent: ['gsync-no-such-agent', '{spec}'] },
      api: { repo_local: tempDir('gsync-repo-') },
    });
    const { code, doc } = await doctorJson(configDir, ['--project', 'web']);
    expect(code).toBe(3);
    expect(named(doc, 'l1', 'agent')).toEqual([
      {
        name: 'agent',
        ok: false,
        detail: 'gsync-no-such-agent (project web) is not on the node (not on its PATH)',
        fix: 'install gsync-no-such-agent on the node, or set the agent in nodes.json or projects.json',
      },
    ]);
    expect(checksOf(doc, 'l1').filter((c) => !c.ok)).toHaveLength(1);
    // The other project runs the node's agent, which is there.
    const api = await doctorJson(configDir, ['--project', 'api']);
    expect(api.code).toBe(0);
    expect(named(api.doc, 'l1', 'agent')[0]!.detail).toMatch(/^node \(project api\): \//);
    // Without --project: every project's agent, each once.
    const all = await doctorJson(configDir);
    expect(named(all.doc, 'l1', 'agent').map((c) => [c.detail.split(':')[0], c.ok])).toEqual([
      ['gsync-no-such-agent (project web) is not on the node (not on its PATH)', false],
      ['node (project api)', true],
    ]);
    const text = await runCtl(configDir, ['doctor', '--project', 'web']);
    expect(text.out).toMatch(/^l1\s+agent\s+problem\s+gsync-no-such-agent \(project web\) is not on the node .*; fix: install gsync-no-such-agent/m);
    expect(text.out).toMatch(/1 problem\(s\) on l1/);
  });

  it('a node_bin that is not there is a problem naming it; gsync-node is not tried', async () => {
    const configDir = setup([{ name: 'l1', transport: 'local', agent: AGENT, node_bin: '/nonexistent/gsync-test/node' }]);
    const { code, doc } = await doctorJson(configDir, ['--fix']);
    expect(code).toBe(3);
    expect(named(doc, 'l1', 'node.js')).toEqual([
      {
        name: 'node.js',
        ok: false,
        detail: '"/nonexistent/gsync-test/node" is not installed on the node (or not on its PATH)',
        fix: 'install Node.js 18 or newer on the node, or set node_bin for the node in nodes.json',
      },
    ]);
    expect(named(doc, 'l1', 'gsync-node')).toEqual([]);
    // The rest is still looked at.
    expect(named(doc, 'l1', 'git')[0]!.ok).toBe(true);
    expect(named(doc, 'l1', 'work root')[0]!.ok).toBe(true);
  });

  it('what a node_bin answers is shown escaped and read only up to a bound', async () => {
    const bin = tempDir('gsync-bin-');
    const noisy = join(bin, 'noisy-node');
    writeFileSync(noisy, "#!/bin/sh\nprintf '\\033]0;pwned\\007\\033[2J not json'\n", { mode: 0o755 });
    const flood = join(bin, 'flood-node');
    writeFileSync(flood, '#!/bin/sh\nexec head -c 5000000 /dev/zero\n', { mode: 0o755 });
    const configDir = setup([
      { name: 'noisy', transport: 'local', agent: AGENT, node_bin: noisy },
      { name: 'flood', transport: 'local', agent: AGENT, node_bin: flood },
    ]);
    const { code, doc } = await doctorJson(configDir);
    expect(code).toBe(3);
    expect(named(doc, 'noisy', 'node.js')[0]).toMatchObject({ ok: false, detail: expect.stringContaining('\\x1b]0;pwned\\x07\\x1b[2J not json') });
    expect(named(doc, 'flood', 'node.js')[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/sent more than 262144 bytes/) });
    const text = await runCtl(configDir, ['doctor']);
    expect(text.out).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
    expect(text.out).toMatch(/^noisy\s+node\.js\s+problem\s+.*pwned/m);
  });

  it('a node without git passes, saying its tasks go as files', async () => {
    const configDir = setup([{ name: 'nogit', transport: 'local', agent: AGENT, node_bin: WITHOUT_GIT }]);
    const { code, doc } = await doctorJson(configDir);
    expect(code).toBe(0);
    expect(named(doc, 'nogit', 'git')).toEqual([
      {
        name: 'git',
        ok: true,
        detail: 'no git: tasks go as files (the scp mode), whatever the project says',
        fix: 'install git on the node for the bundle and git modes',
      },
    ]);
    const text = await runCtl(configDir, ['doctor']);
    expect(text.out).toMatch(/^nogit\s+git\s+note\s+no git: tasks go as files \(the scp mode\)/m);
  });

  it('a node behind a closed port is one line and exit 3; the local node is still checked', async () => {
    const port = await freePort();
    const configDir = setup([
      { name: 'gone', host: '127.0.0.1', port },
      { name: 'l1', transport: 'local', agent: AGENT },
    ]);
    const started = Date.now();
    const { code, doc } = await doctorJson(configDir);
    expect(code).toBe(3);
    expect(checksOf(doc, 'gone')).toEqual([
      { name: 'ssh config', ok: true, detail: expect.stringMatching(new RegExp(`@127\\.0\\.0\\.1:${port}$`)) },
      {
        name: 'reachable',
        ok: false,
        detail: `cannot connect to 127.0.0.1:${port}: ECONNREFUSED`,
        fix: 'check that the node is up and host/port in nodes.json are right',
      },
    ]);
    expect(checksOf(doc, 'l1').every((c) => c.ok)).toBe(true);
    expect(checksOf(doc, 'l1')).toHaveLength(7);
    expect(Date.now() - started).toBeLessThan(15_000);
    const text = await runCtl(configDir, ['doctor']);
    expect(text.code).toBe(3);
    expect(text.out.split('\n').filter((l) => l.startsWith('gone')).length).toBe(2);
    expect(text.out).toMatch(/1 problem\(s\) on gone \(of 2 node\(s\)\)/);
  });

  it('a config that does not load is exit 2 with its error; an unknown node too', async () => {
    const configDir = setup([{ name: 'l1', transport: 'local', port: 'x' }]);
    const bad = await runCtl(configDir, ['doctor']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/nodes\.json: nodes\[0\]\.port/);
    const good = setup([{ name: 'l1', transport: 'local', agent: AGENT }]);
    const unknown = await runCtl(good, ['doctor', '--node', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown node "nope"/);
  });
});
