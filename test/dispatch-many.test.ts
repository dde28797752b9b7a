import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store, dispatchAll, pullBundles } from '@gsync/controller';
import { UsageError } from '@gsync/core';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { testContext, writeConfig } from './helpers/world.js';

/** Several specs in one dispatch: ids in the order given, spread over the nodes, sent to each node over one connection. */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

function setup(nodes: object[]) {
  const repo = gitRepo();
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes }, { proj: { repo_local: repo.dir } });
  const folder = tempDir('gsync-specs-');
  return { repo, ctx: testContext(configDir), folder, configDir };
}

function writeSpecs(folder: string, count: number): void {
  mkdirSync(folder, { recursive: true });
  for (let i = 1; i <= count; i++) writeFileSync(join(folder, `${String(i).padStart(2, '0')}-task.md`), `Task ${i}\n\nwrite out/${i}.txt task ${i}\n`);
  writeFileSync(join(folder, 'notes.json'), '{"not": "a spec"}');
}

describe('dispatch of several specs', () => {
  it('takes a folder in name order, spreads it over the least busy nodes, and everything merges in that order', async () => {
    const w = setup([
      { name: 'l1', transport: 'local', agent: EDIT },
      { name: 'l2', transport: 'local', agent: EDIT },
    ]);
    writeSpecs(w.folder, 4);
    const r = await dispatchAll(w.ctx, { project: 'proj', spec: [w.folder] });
    expect(r.failed).toEqual([]);
    expect(r.dispatched.map((d) => [d.task_id, d.node])).toEqual([
      ['S01', 'l1'],
      ['S02', 'l2'],
      ['S03', 'l1'],
      ['S04', 'l2'],
    ]);
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => `${t.task_id}:${t.outcome}`)).toEqual(['S01:merged', 'S02:merged', 'S03:merged', 'S04:merged']);
    for (let i = 1; i <= 4; i++) expect(w.repo.git('show', `main:out/${i}.txt`)).toBe(`task ${i}\n`);
  });

  it('checks every spec before sending any: one bad spec and nothing goes, no id is taken', async () => {
    const w = setup([{ name: 'l1', transport: 'local', agent: EDIT }]);
    writeSpecs(w.folder, 2);
    writeFileSync(join(w.folder, '03-empty.md'), '');
    await expect(dispatchAll(w.ctx, { project: 'proj', spec: [w.folder] })).rejects.toThrow(UsageError);
    const store = new Store(join(w.configDir, 'gsync.db'));
    expect(store.listTasks('proj')).toEqual([]);
    store.close();
  });

  it('sends what it can when a node fails, and names each spec that did not go', async () => {
    const w = setup([
      { name: 'l1', transport: 'local', agent: EDIT },
      { name: 'broken', transport: 'local', agent: EDIT, node_bin: '/nonexistent/node' },
    ]);
    writeSpecs(w.folder, 4);
    const r = await dispatchAll(w.ctx, { project: 'proj', spec: [w.folder] });
    expect(r.dispatched.map((d) => d.task_id)).toEqual(['S01', 'S03']);
    expect(r.failed.map((f) => f.spec.split('/').pop())).toEqual(['02-task.md', '04-task.md']);
    expect(r.failed[0]!.error).toMatch(/is not installed on the node/);
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => `${t.task_id}:${t.outcome}`)).toEqual(['S01:merged', 'S03:merged']);
  });
});
