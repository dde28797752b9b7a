import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles, status } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { freePort } from './helpers/sshd.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * `status` asks the nodes: what a task is doing now, for how long, and where a queued one
 * stands in its node's queue; `--offline` asks nobody; `--all` spans the projects; a node
 * that does not answer says so on its tasks; `--watch` refreshes until stopped.
 */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');

function world() {
  const repo = gitRepo();
  const other = gitRepo();
  const configDir = tempDir('gsync-config-');
  const gate = tempDir('gsync-gate-');
  const nodes = { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'gate.mjs'), gate], max_parallel: 1 }] };
  const projects = { proj: { repo_local: repo.dir }, other: { repo_local: other.dir } };
  writeConfig(configDir, nodes, projects);
  return { repo, configDir, gate, nodes, projects, ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

describe('status asks the nodes', () => {
  it('shows the running task with its time, the queued ones with their place, and nothing live with --offline', async () => {
    const w = world();
    for (const name of ['a', 'b', 'c']) await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, `${name}.md`, `# ${name}\n`) });
    await new Promise((r) => setTimeout(r, 1500));
    const rows = await status(w.ctx, { project: 'proj' });
    expect(rows.map((r) => [r.task_id, r.live?.state, r.live?.position])).toEqual([
      ['S01', 'running', undefined],
      ['S02', 'queued', 1],
      ['S03', 'queued', 2],
    ]);
    expect(rows[0]!.live!.seconds).toBeGreaterThanOrEqual(1);
    const offline = await status(w.ctx, { project: 'proj', offline: true });
    expect(offline.map((r) => r.live)).toEqual([undefined, undefined, undefined]);

    const text = await runCtl(w.configDir, ['status', '--project', 'proj']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/ON THE NODE NOW/);
    expect(text.out).toMatch(/S01\s+l1\s+dispatched:\S+\s+running \d+s/);
    expect(text.out).toMatch(/S03\s+l1\s+dispatched:queued\s+queued #2/);
    expect((await runCtl(w.configDir, ['status', '--project', 'proj', '--offline'])).out).not.toMatch(/ON THE NODE NOW/);

    writeFileSync(join(w.gate, 'all.go'), '');
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged', 'merged', 'merged']);
    // Nothing is out on a node any more: nobody is asked.
    expect((await status(w.ctx, { project: 'proj' })).map((r) => r.live)).toEqual([undefined, undefined, undefined]);
  });

  it('--all lists every project with its name; --project and --all together, or neither, is exit 2', async () => {
    const w = world();
    writeFileSync(join(w.gate, 'all.go'), '');
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\n') });
    await dispatch(w.ctx, { project: 'other', spec: specFile(w.specs, 'b.md', '# b\n') });
    const rows = await status(w.ctx, { all: true, offline: true });
    expect(rows.map((r) => [r.project, r.task_id])).toEqual([
      ['proj', 'S01'],
      ['other', 'S01'],
    ]);
    const text = await runCtl(w.configDir, ['status', '--all', '--offline']);
    expect(text.out).toMatch(/^PROJECT\s+TASK/);
    expect(text.out).toMatch(/other\s+S01\s+l1/);
    for (const args of [['status'], ['status', '--all', '--project', 'proj']]) {
      const r = await runCtl(w.configDir, args);
      expect(r.code).toBe(2);
      expect(r.err.trim().split('\n')[0]).toMatch(/--project is required|not both/);
    }
  });

  it('a node that does not answer is said on its tasks, and status still exits 0', async () => {
    const w = world();
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\n') });
    // The same node, now behind a port where nothing listens.
    const port = await freePort();
    writeConfig(w.configDir, { nodes: [{ name: 'l1', host: '127.0.0.1', port, connect_timeout_seconds: 2 }] }, w.projects);
    const rows = await status(w.ctx, { project: 'proj' });
    expect(rows[0]!.live?.error).toMatch(/^l1 did not answer: /);
    const text = await runCtl(w.configDir, ['status', '--project', 'proj']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/S01\s+l1\s+dispatched\S*\s+l1 did not answer/);
    writeConfig(w.configDir, w.nodes, w.projects);
    writeFileSync(join(w.gate, 'all.go'), '');
  });

  it('--watch refreshes until stopped; --json --watch prints one JSON line per round', async () => {
    const w = world();
    writeFileSync(join(w.gate, 'all.go'), '');
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\n') });
    const run = (args: string[]) =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, [CTL, '--config-dir', w.configDir, 'status', '--project', 'proj', '--offline', ...args], {
          env: { ...process.env, NO_COLOR: '1' },
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
        setTimeout(() => child.kill('SIGINT'), 2500);
        child.on('close', () => resolve(out));
      });
    const plain = await run(['--watch', '0.4']);
    expect(plain.match(/every 0\.4 s, Ctrl-C stops/g)?.length).toBeGreaterThanOrEqual(3);
    expect(plain.match(/^TASK/gm)?.length).toBeGreaterThanOrEqual(3);
    const json = (await run(['--watch', '0.4', '--json'])).trim().split('\n');
    expect(json.length).toBeGreaterThanOrEqual(3);
    for (const line of json) expect(JSON.parse(line) as unknown).toMatchObject({ schema_version: 1, tasks: [{ task_id: 'S01' }] });
  });
});
