import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { retry } from '@gsync/controller';
import { status } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** A node that stops answering: its tasks turn stale after stale_after_seconds and can be retried elsewhere. */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

function setup() {
  const repo = gitRepo({ 'a.txt': 'a\n' });
  const configDir = tempDir('gsync-config-');
  const nodes = (l1Broken: boolean) => ({
    stale_after_seconds: 1,
    nodes: [
      { name: 'l1', transport: 'local', agent: EDIT, ...(l1Broken ? { node_bin: '/nonexistent/node' } : {}) },
      { name: 'l2', transport: 'local', agent: EDIT },
    ],
  });
  writeConfig(configDir, nodes(false), { proj: { repo_local: repo.dir } });
  const breakL1 = (broken: boolean) => writeFileSync(join(configDir, 'nodes.json'), JSON.stringify(nodes(broken)));
  return { repo, ctx: testContext(configDir), specs: tempDir('gsync-specs-'), breakL1 };
}

describe('stale tasks', () => {
  it('marks the task stale when its node stops answering, and retry sends it to another node', async () => {
    const { repo, ctx, specs, breakL1 } = setup();
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# slow work\nsleep 4\nwrite a.txt from l1\n'), node: 'l1' });
    breakL1(true);
    await new Promise((r) => setTimeout(r, 1200));
    const report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 30 });
    expect(report.unreachable.map((u) => u.node)).toEqual(['l1']);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'stale']]);
    expect(report.tasks[0]!.next_step).toContain('gsync-ctl retry --project proj --task S01');
    expect(report.exit_code).toBe(3);

    const again = await retry(ctx, { project: 'proj', task: 'S01' });
    expect([again.task_id, again.node, again.retry_of]).toEqual(['S02', 'l2', 'S01']);
    const done = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 30 });
    expect(done.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S02', 'merged']]);
    expect(repo.git('show', 'main:a.txt')).toBe('from l1\n');

    // l1 comes back with its own result: the retried task is not asked about again, nothing merges twice.
    breakL1(false);
    await new Promise((r) => setTimeout(r, 3500));
    const later = await pullBundles(ctx, { project: 'proj' });
    expect(later.tasks).toEqual([]);
    expect((await status(ctx, { project: 'proj' })).map((r) => [r.task_id, r.state])).toEqual([
      ['S01', 'retried'],
      ['S02', 'merged'],
    ]);
    await expect(retry(ctx, { project: 'proj', task: 'S02' })).rejects.toThrow(
      'task S02 is merged; only a stale, failed, timeout, rejected, withheld, cancelled, dismissed task can be retried',
    );
  });

  it('a stale task whose node answers again goes on as before', async () => {
    const { repo, ctx, specs, breakL1 } = setup();
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# quick\nwrite a.txt A\n'), node: 'l1' });
    breakL1(true);
    await new Promise((r) => setTimeout(r, 1200));
    expect((await pullBundles(ctx, { project: 'proj' })).tasks.map((t) => t.outcome)).toEqual(['stale']);
    breakL1(false);
    const back = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 30 });
    expect(back.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'merged']]);
    expect(repo.git('show', 'main:a.txt')).toBe('A\n');
  });
});
