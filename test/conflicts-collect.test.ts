import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { conflicts, dispatch, pullBundles, status } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * `conflicts` run right after the agents finish, before any pull: it collects the finished
 * work from the nodes (checked, kept on the task branches, nothing merged), then forecasts.
 * `pull --no-merge` collects the same way and leaves the merging to a later pull.
 */
afterAll(cleanupTempDirs);

function world() {
  const repo = gitRepo({ 'config.py': 'PORT = 80\nHOST = "a"\n', 'other.txt': 'x\n' });
  const configDir = tempDir('gsync-config-');
  const agent = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent },
        { name: 'l2', transport: 'local', agent },
      ],
    },
    { proj: { repo_local: repo.dir } },
  );
  return { repo, configDir, ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

/** Until every task's status file on its node is final: the agents are done, no pull has run. */
async function finishedOnNodes(configDir: string, tasks: [string, string][]): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const done = tasks.every(([node, id]) => {
      const file = join(configDir, 'nodes', node, 'dispatch/proj/tasks', id, 'status.json');
      return existsSync(file) && /"state": "(done|empty|failed|timeout)"/.test(readFileSync(file, 'utf8'));
    });
    if (done) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the tasks did not finish');
}

describe('conflicts sees finished work', () => {
  it('collects what finished on the nodes, forecasts the conflict, and merges nothing', async () => {
    const w = world();
    const main = w.repo.head('main');
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\nset config.py 1 PORT = 8080\n'), node: 'l1' });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'b.md', '# b\nset config.py 1 PORT = 9090\n'), node: 'l2' });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'c.md', '# c\nsleep 30\nwrite other.txt y\n'), node: 'l2' });
    await finishedOnNodes(w.configDir, [
      ['l1', 'S01'],
      ['l2', 'S02'],
    ]);
    // Offline, it knows only what a pull collected: nothing yet.
    const offline = await conflicts(w.ctx, { project: 'proj', offline: true });
    expect([offline.tasks, offline.pairs, offline.collected_now]).toEqual([[], [], []]);

    const f = await conflicts(w.ctx, { project: 'proj' });
    expect(f.collected_now).toEqual(['S01', 'S02']);
    expect(f.tasks).toEqual(['S01', 'S02']);
    expect(f.pairs).toEqual([{ a: 'S01', b: 'S02', paths: ['config.py'] }]);
    expect(f.running).toEqual([{ task_id: 'S03', node: 'l2' }]);
    expect(w.repo.head('main')).toBe(main);
    expect(w.repo.git('show', 'task/proj-S01-l1:config.py')).toBe('PORT = 8080\nHOST = "a"\n');
    expect((await status(w.ctx, { project: 'proj', offline: true })).map((r) => r.state)).toEqual(['collected', 'collected', 'dispatched']);

    const cli = await runCtl(w.configDir, ['conflicts', '--project', 'proj']);
    expect(cli.code).toBe(3);
    expect(cli.out).toMatch(/conflict pair\s+S01 × S02: config\.py/);
    expect(cli.out).toMatch(/still running, not in the forecast: S03 \(l2\)/);
  });

  it('pull --no-merge collects and keeps the tasks on their branches; the next pull merges them', async () => {
    const w = world();
    const main = w.repo.head('main');
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\nwrite a.txt a\n'), node: 'l1' });
    const held = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60, noMerge: true });
    expect(held.unmerged).toEqual([{ task_id: 'S01', node: 'l1', branch: 'task/proj-S01-l1' }]);
    expect(held.exit_code).toBe(0);
    expect(w.repo.head('main')).toBe(main);
    expect(w.repo.git('show', 'task/proj-S01-l1:a.txt')).toBe('a\n');
    const cli = await runCtl(w.configDir, ['pull', '--project', 'proj', '--no-merge']);
    expect(cli.code).toBe(0);
    expect(cli.out).toMatch(/collected\s+S01 \(l1\) task\/proj-S01-l1, not merged \(--no-merge\): a pull merges it/);
    const merged = await pullBundles(w.ctx, { project: 'proj' });
    expect(merged.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'merged']]);
    expect(w.repo.git('show', 'main:a.txt')).toBe('a\n');
  });

  it('a collected task that dismiss sets aside is never merged, and its branch stays', async () => {
    const w = world();
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# a\nwrite a.txt a\n'), node: 'l1' });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'b.md', '# b\nwrite b.txt b\n'), node: 'l2' });
    const held = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60, noMerge: true });
    expect(held.unmerged?.map((u) => u.task_id)).toEqual(['S01', 'S02']);
    const dismissed = await runCtl(w.configDir, ['dismiss', '--project', 'proj', '--task', 'S02', '--reason', 'not wanted']);
    expect(dismissed.code, dismissed.err).toBe(0);
    expect(dismissed.out).toContain('dismissed S02 (collected); kept task/proj-S02-l2');
    const merged = await pullBundles(w.ctx, { project: 'proj' });
    expect(merged.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'merged']]);
    expect(merged.exit_code).toBe(0);
    expect(w.repo.git('ls-tree', '--name-only', 'main').split('\n')).not.toContain('b.txt');
    expect(w.repo.git('show', 'task/proj-S02-l2:b.txt')).toBe('b\n');
    const rows = await status(w.ctx, { project: 'proj', offline: true });
    expect(rows.map((r) => [r.task_id, r.state])).toEqual([
      ['S01', 'merged'],
      ['S02', 'dismissed'],
    ]);
  });
});
