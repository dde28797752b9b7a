import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** `pull --wait` waits on the node (a long poll), not by starting a node process every interval. */
afterAll(cleanupTempDirs);

/** A node_bin that notes every gsync-node command it starts, then runs it. */
function countingNodeBin(): { bin: string; calls: () => string[] } {
  const dir = tempDir('gsync-bin-');
  const log = join(dir, 'calls.log');
  const bin = join(dir, 'node-counting');
  writeFileSync(bin, `#!/bin/sh\necho "$2" >> '${log}'\nexec '${process.execPath}' "$@"\n`);
  chmodSync(bin, 0o755);
  return { bin, calls: () => readFileSync(log, 'utf8').trim().split('\n') };
}

describe('pull --wait', () => {
  it('asks each node once per change, however short the interval', async () => {
    const repo = gitRepo();
    const { bin, calls } = countingNodeBin();
    const configDir = tempDir('gsync-config-');
    const agent = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];
    writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent, node_bin: bin }] }, { proj: { repo_local: repo.dir } });
    const ctx = testContext(configDir);
    await dispatch(ctx, { project: 'proj', spec: specFile(tempDir('gsync-specs-'), 's.md', 'Slow\n\nsleep 4\nwrite slow.txt done\n') });
    const before = calls().length;
    const report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:slow.txt')).toBe('done\n');
    const during = calls().slice(before);
    // Polling every 0.1 s for 4 s would have started gsync-node about 40 times.
    expect(during.filter((c) => c === 'wait').length).toBeGreaterThanOrEqual(1);
    expect(during.filter((c) => c === 'report').length).toBeLessThanOrEqual(3);
    expect(during.length).toBeLessThanOrEqual(8);
    expect(ctx.events.some((e) => e.kind === 'wait_fallback')).toBe(false);
  });
});
