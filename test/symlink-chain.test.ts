import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** A chain of symlinks, each harmless alone, that together lead out of the repository never merges. */
afterAll(cleanupTempDirs);

function world(script: string) {
  const repo = gitRepo({ 'README.md': 'hello\n', 'a/b/c/keep.txt': 'x\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent: ['node', '-e', script] }] }, { proj: { repo_local: repo.dir } });
  return { repo, ctx: testContext(configDir), specs: tempDir('gsync-specs-'), tasks: join(configDir, 'nodes/l1/dispatch/proj/tasks') };
}

async function pullWhenDone(w: ReturnType<typeof world>) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(join(w.tasks, 'S01', 'status.json'), 'utf8')) as { state: string }).state === 'done') break;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
  return pullBundles(w.ctx, { project: 'proj' });
}

describe('symlinks through other symlinks', () => {
  it('rejects a chain that climbs out, though each link normalises inside the repository', async () => {
    const w = world("const fs = require('fs'); fs.symlinkSync('../../..', 'a/b/c/up'); fs.symlinkSync('a/b/c/up/../../../../etc', 'etc-link');");
    const before = w.repo.head('main');
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 's.md', 'Links\n') });
    const report = await pullWhenDone(w);
    expect(report.tasks[0]).toMatchObject({ task_id: 'S01', outcome: 'rejected' });
    expect(report.tasks[0]!.reason).toMatch(/"etc-link" is a symlink leading outside the repository/);
    expect(w.repo.head('main')).toBe(before);
  });

  it('merges links that stay inside, through a chain', async () => {
    const w = world("const fs = require('fs'); fs.symlinkSync('../../..', 'a/b/c/up'); fs.symlinkSync('a/b/c/up/README.md', 'readme-link');");
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 's.md', 'Links\n') });
    const report = await pullWhenDone(w);
    expect(report.tasks[0]).toMatchObject({ task_id: 'S01', outcome: 'merged' });
    expect(w.repo.git('cat-file', '-p', 'main:readme-link')).toBe('a/b/c/up/README.md');
  });
});
