import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** Secret rules judge what a task adds: a file that already held key-like material on main can still be edited. */
afterAll(cleanupTempDirs);

// Built at run time, so no scanner of this repository takes the test data for a real key.
const KEY = ['-----BEGIN', 'RSA PRIVATE KEY-----'].join(' ');
const TOKEN = `ghp_${'A1b2C3d4E5'.repeat(4)}`;

function world() {
  const repo = gitRepo({ 'README.md': 'hello\n', 'fixtures/test-key.pem': `${KEY}\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n` });
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
    { proj: { repo_local: repo.dir } },
  );
  return { repo, ctx: testContext(configDir), specs: tempDir('gsync-specs-'), tasks: join(configDir, 'nodes/l1/dispatch/proj/tasks') };
}

async function pullWhenDone(w: ReturnType<typeof world>, id: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if (['done', 'empty', 'failed'].includes((JSON.parse(readFileSync(join(w.tasks, id, 'status.json'), 'utf8')) as { state: string }).state)) break;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`${id} never finished`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return pullBundles(w.ctx, { project: 'proj' });
}

describe('secrets main already had', () => {
  it('lets a task edit a file whose key-like content was already on main', async () => {
    const w = world();
    await dispatch(w.ctx, {
      project: 'proj',
      spec: specFile(w.specs, 'a.md', 'Comment the fixture\n\nappend fixtures/test-key.pem # test fixture, not a real key\n'),
    });
    const report = await pullWhenDone(w, 'S01');
    expect(report.tasks[0]).toMatchObject({ outcome: 'merged' });
    expect(report.tasks[0]!.withheld ?? []).toEqual([]);
    expect(w.repo.git('show', 'main:fixtures/test-key.pem')).toContain('# test fixture, not a real key');
  });

  it('still withholds what a task adds to such a file', async () => {
    const w = world();
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', `Add a token\n\nappend fixtures/test-key.pem token ${TOKEN}\n`) });
    const report = await pullWhenDone(w, 'S01');
    expect(report.tasks[0]).toMatchObject({ outcome: 'withheld', withheld: [{ path: 'fixtures/test-key.pem', rule: 'GitHub token' }] });
    expect(report.exit_code).toBe(3);
    expect(w.repo.git('show', 'main:fixtures/test-key.pem')).not.toContain(TOKEN);
  });
});
