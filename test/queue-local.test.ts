import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, main, pullBundles, status } from '@gsync/controller';
import { AGENTS, NODE_TOOL, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** A node's max_parallel, end to end on a `local` node: tasks beyond it wait on the node, and pull takes them all home. */
afterAll(cleanupTempDirs);

/** The node's status file of a task, as the node wrote it. */
function nodeState(home: string, taskId: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(home, 'dispatch/proj/tasks', taskId, 'status.json'), 'utf8')) as { state: string }).state;
  } catch {
    return undefined;
  }
}

/** `gsync-ctl status` as a user sees it, without colour. */
async function statusText(configDir: string): Promise<string> {
  const stdout = new PassThrough();
  const out: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  const io = { env: { ...process.env, NO_COLOR: '1' }, stdout, stderr: new PassThrough(), nodeToolPath: NODE_TOOL, pid: process.pid };
  expect(await main(['--config-dir', configDir, 'status', '--project', 'proj'], io)).toBe(0);
  return Buffer.concat(out).toString('utf8');
}

describe('a node with max_parallel 1', () => {
  it('queues the tasks beyond its limit, status shows them queued, and pull --wait merges all three', async () => {
    const repo = gitRepo();
    const configDir = tempDir('gsync-config-');
    const gate = tempDir('gsync-gate-');
    const agent = ['node', join(AGENTS, 'gate.mjs'), gate];
    writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent, max_parallel: 1 }] }, { proj: { repo_local: repo.dir } });
    const ctx = testContext(configDir);
    const specs = tempDir('gsync-specs-');
    for (const name of ['a', 'b', 'c']) await dispatch(ctx, { project: 'proj', spec: specFile(specs, `${name}.md`, `# task ${name}\n`) });

    // S01's agent holds the node's one slot until the test lets it go: the other two wait.
    const rows = await status(ctx, { project: 'proj' });
    expect(rows.map((r) => [r.task_id, r.state, r.node_state])).toEqual([
      ['S01', 'dispatched', 'received'],
      ['S02', 'dispatched', 'queued'],
      ['S03', 'dispatched', 'queued'],
    ]);
    expect(await statusText(configDir)).toMatch(/S02\s+l1\s+dispatched:queued[\s\S]*S03\s+l1\s+dispatched:queued/);

    // Sampled while the pull waits: never two runs at once on the node.
    const home = join(configDir, 'nodes/l1');
    const running = (s: string | undefined) => s !== undefined && !['queued', 'done', 'empty', 'failed', 'timeout'].includes(s);
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, ['S01', 'S02', 'S03'].filter((id) => running(nodeState(home, id))).length);
    }, 10);
    writeFileSync(join(gate, 'all.go'), '');
    try {
      const report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 90 });
      expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
        ['S01', 'merged'],
        ['S02', 'merged'],
        ['S03', 'merged'],
      ]);
      expect(report.exit_code).toBe(0);
    } finally {
      clearInterval(sampler);
    }
    expect(most).toBe(1);
    for (const id of ['S01', 'S02', 'S03']) expect(repo.git('show', `main:${id}.txt`)).toBe(`proj-${id}\n`);
    expect(existsSync(join(home, 'dispatch/.gsync/max-parallel.json'))).toBe(true);
  });
});
