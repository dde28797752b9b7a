import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, main, pullBundles, scratchName } from '@gsync/controller';
import { AGENTS, NODE_TOOL, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** Two controllers (or one whose store was made anew) sharing a node: ids the node already has are skipped, never clashed on. */
afterAll(cleanupTempDirs);

function controller(home: string) {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', home, agent: ['node', join(AGENTS, 'noop.mjs')] }] }, { proj: { repo_local: repo.dir } });
  return { repo, configDir, ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

describe('a node shared by two controllers', () => {
  it('takes the next id the node does not have, and a chosen id that clashes is exit 2', async () => {
    const home = tempDir('gsync-node-home-');
    const a = controller(home);
    const b = controller(home);
    expect((await dispatch(a.ctx, { project: 'proj', spec: specFile(a.specs, 's.md', 'First\n') })).task_id).toBe('S01');
    expect((await dispatch(a.ctx, { project: 'proj', spec: specFile(a.specs, 't.md', 'Second\n') })).task_id).toBe('S02');

    const got = await dispatch(b.ctx, { project: 'proj', spec: specFile(b.specs, 's.md', 'Other\n') });
    expect(got.task_id).toBe('S03');
    expect(b.ctx.events.filter((e) => e.kind === 'id_taken')).toHaveLength(2);

    const stderr = new PassThrough();
    const err: Buffer[] = [];
    stderr.on('data', (c: Buffer) => err.push(c));
    const io = { env: { ...process.env, NO_COLOR: '1' }, stdout: new PassThrough(), stderr, nodeToolPath: NODE_TOOL, pid: process.pid };
    const code = await main(['--config-dir', b.configDir, 'dispatch', '--project', 'proj', '--task', 'S01', '--spec', specFile(b.specs, 'u.md', 'Mine\n')], io);
    expect(code).toBe(2);
    expect(Buffer.concat(err).toString('utf8')).toMatch(/task S01 already exists on node l1 as another task/);
  });
});

describe('a repository shared by two controllers', () => {
  it("never clears the other's downloads in flight", async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const configs = [tempDir('gsync-config-'), tempDir('gsync-config-')];
    for (const dir of configs) {
      writeConfig(
        dir,
        { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
        { proj: { repo_local: repo.dir } },
      );
    }
    const [a, b] = configs.map((dir) => testContext(dir));
    expect(scratchName(a!.configDir, 'proj')).not.toBe(scratchName(b!.configDir, 'proj'));
    const theirs = join(repo.dir, '.git/gsync/incoming', scratchName(b!.configDir, 'proj'), 'proj-S01-l1.bundle');
    mkdirSync(dirname(theirs), { recursive: true });
    writeFileSync(theirs, 'a download of the other controller, still arriving');
    await dispatch(a!, { project: 'proj', spec: specFile(tempDir('gsync-specs-'), 's.md', 'A\n\nwrite a.txt a\n') });
    const report = await pullBundles(a!, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(readFileSync(theirs, 'utf8')).toBe('a download of the other controller, still arriving');
    expect(existsSync(join(repo.dir, '.git/gsync/incoming', scratchName(a!.configDir, 'proj')))).toBe(false);
  });
});
