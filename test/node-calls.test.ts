import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * How many gsync-node processes a command costs a node: the node's `node_bin` is a
 * wrapper that logs each start (the detached runs are started by gsync-node itself, not
 * through node_bin, so they do not count).
 */
afterAll(cleanupTempDirs);

/** A node_bin that logs its arguments, then runs node; with `refuse`, it plays a gsync-node that predates that command. */
function loggingNodeBin(dir: string, refuse?: string): { bin: string; calls: () => string[] } {
  const log = join(dir, 'calls.log');
  writeFileSync(log, '');
  const bin = join(dir, 'node-logged');
  const refusal = refuse ? `if [ "$2" = '${refuse}' ]; then echo "gsync-node: unknown command \\"${refuse}\\"" >&2; exit 2; fi\n` : '';
  writeFileSync(bin, `#!/bin/sh\nprintf '%s\\n' "$2 $*" >> '${log}'\n${refusal}exec '${process.execPath}' "$@"\n`);
  chmodSync(bin, 0o755);
  const calls = () =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [command, ...args] = line.split(' ');
        return args.includes('--hello') ? `${command} --hello` : command!;
      });
  return { bin, calls };
}

function world(refuse?: string) {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  const node = loggingNodeBin(tempDir('gsync-bin-'), refuse);
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', node_bin: node.bin, agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
    { proj: { repo_local: repo.dir } },
  );
  return { repo, ctx: testContext(configDir), specs: tempDir('gsync-specs-'), calls: node.calls };
}

/** Waits until the node has finished every task (the runs are detached). */
async function settled(ctx: ReturnType<typeof testContext>, ids: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const states = ids.map((id) => {
      try {
        return (JSON.parse(readFileSync(join(ctx.configDir, 'nodes/l1/dispatch/proj/tasks', id, 'status.json'), 'utf8')) as { state: string }).state;
      } catch {
        return undefined;
      }
    });
    if (states.every((s) => s === 'done')) return;
    if (Date.now() > deadline) throw new Error(`tasks never finished: ${states.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('one gsync-node process per command per node', () => {
  it('dispatch: one call that says hello and takes the task, once gsync-node is installed; pull: one call for every report and result', async () => {
    const { repo, ctx, specs, calls } = world();
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', 'write a.txt from a\n') });
    // First contact: the combined call finds no gsync-node, which is installed, then the task goes.
    expect(calls()).toEqual(['accept --hello', 'hello', 'hello', 'accept']);

    const before = calls().length;
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'b.md', 'write b.txt from b\n') });
    expect(calls().slice(before)).toEqual(['accept --hello']);

    await settled(ctx, ['S01', 'S02']);
    const beforePull = calls().length;
    const report = await pullBundles(ctx, { project: 'proj' });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    expect(calls().slice(beforePull)).toEqual(['collect']);
    expect(repo.git('show', 'main:a.txt')).toBe('from a\n');
    expect(repo.git('show', 'main:b.txt')).toBe('from b\n');
  });

  it('pull from a gsync-node that predates collect asks for the report and each bundle instead', async () => {
    const { repo, ctx, specs, calls } = world('collect');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', 'write a.txt from a\n') });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'b.md', 'write b.txt from b\n') });
    await settled(ctx, ['S01', 'S02']);
    const beforePull = calls().length;
    const report = await pullBundles(ctx, { project: 'proj' });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged', 'merged']);
    expect(calls().slice(beforePull)).toEqual(['collect', 'report', 'send', 'send']);
    expect(repo.git('show', 'main:b.txt')).toBe('from b\n');
  });
});
