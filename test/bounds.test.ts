import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig, runCtl } from './helpers/world.js';

/**
 * Every read from a node is bounded: a node command that never answers, never stops, or
 * sends more than it announced is ended with the reason, and the run goes on. Specs are
 * read with a cap too. The nodes are `local` ones whose node_bin plays a bad gsync-node
 * for one subcommand and runs the real one for the rest.
 */
afterAll(cleanupTempDirs);

/** A node_bin that runs `script` (sh) instead of gsync-node for `command`, and the real gsync-node otherwise. */
function badNodeBin(command: string, script: string): string {
  const bin = join(tempDir('gsync-bin-'), 'node-bad');
  writeFileSync(bin, `#!/bin/sh\nif [ "$2" = '${command}' ]; then\n${script}\nfi\nexec '${process.execPath}' "$@"\n`);
  chmodSync(bin, 0o755);
  return bin;
}

function world(nodeBin?: string, extra: { node?: object; project?: object } = {}) {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  const node = {
    name: 'l1',
    transport: 'local',
    agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'],
    answer_timeout_seconds: 2,
    ...(nodeBin ? { node_bin: nodeBin } : {}),
    ...extra.node,
  };
  writeConfig(configDir, { nodes: [node] }, { proj: { repo_local: repo.dir, ...extra.project } });
  const ctx = testContext(configDir);
  return { repo, ctx, specs: tempDir('gsync-specs-'), tasks: join(configDir, 'nodes/l1/dispatch/proj/tasks') };
}

async function finished(tasks: string, ids: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  const state = (id: string) => {
    try {
      return (JSON.parse(readFileSync(join(tasks, id, 'status.json'), 'utf8')) as { state: string }).state;
    } catch {
      return undefined;
    }
  };
  while (!ids.every((id) => state(id) === 'done')) {
    if (Date.now() > deadline) throw new Error(`not finished: ${ids.map(state).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('bounded reads from a node', () => {
  it('ends a collect that never answers, after answer_timeout_seconds, and says so', async () => {
    const w = world(badNodeBin('collect', 'exec sleep 600'));
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
    await finished(w.tasks, ['S01']);
    const started = Date.now();
    const report = await pullBundles(w.ctx, { project: 'proj' });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(report.unreachable.map((u) => u.error).join('\n')).toMatch(/said nothing for 2 s; it was ended/);
    expect(report.main_after).toBe(report.main_before);
  });

  it('ends a collect whose output never stops, long before it costs memory', async () => {
    const w = world(badNodeBin('collect', 'exec cat /dev/zero'));
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
    await finished(w.tasks, ['S01']);
    const before = process.memoryUsage().rss;
    const report = await pullBundles(w.ctx, { project: 'proj' });
    expect(report.unreachable.map((u) => u.error).join('\n')).toMatch(
      /collect (sent more than its report announced|did not begin with report\.json|stream is not a tar)/,
    );
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it('ends a report whose answer never stops (a node without collect)', async () => {
    const w = world(badNodeBin('collect', 'echo \'gsync-node: unknown command "collect"\' >&2; exit 2\nfi\nif [ "$2" = report ]; then\nexec yes'));
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
    await finished(w.tasks, ['S01']);
    const report = await pullBundles(w.ctx, { project: 'proj' });
    expect(report.unreachable.map((u) => u.error).join('\n')).toMatch(/sent more than \d+ bytes; it was ended/);
  });

  it('rejects a result whose bundle has more bytes than result.json announced, and merges the honest one beside it', async () => {
    for (const withCollect of [true, false]) {
      const bin = withCollect ? undefined : badNodeBin('collect', 'echo \'gsync-node: unknown command "collect"\' >&2; exit 2');
      const w = world(bin);
      await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
      await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'b.md', 'write b.txt b\n') });
      await finished(w.tasks, ['S01', 'S02']);
      appendFileSync(join(w.tasks, 'S01', 'result.bundle'), Buffer.alloc(100_000, 7));
      const report = await pullBundles(w.ctx, { project: 'proj' });
      const outcome = Object.fromEntries(report.tasks.map((t) => [t.task_id, t]));
      expect(outcome.S01?.outcome).toBe('rejected');
      expect(outcome.S01?.reason).toMatch(/announced|more than the announced/);
      expect(outcome.S02?.outcome).toBe('merged');
      expect(w.repo.git('show', 'main:b.txt')).toBe('b\n');
    }
  });
});

describe('--timeout bounds a whole command', () => {
  const patient = { node: { answer_timeout_seconds: 300 } };

  it('pull: a collect that never answers is ended at --timeout, long before answer_timeout_seconds', async () => {
    const w = world(badNodeBin('collect', 'exec sleep 600'), patient);
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
    await finished(w.tasks, ['S01']);
    const started = Date.now();
    const r = await runCtl(w.ctx.configDir, ['pull', '--project', 'proj', '--timeout', '3']);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.code).toBe(5);
    expect(r.out + r.err).toContain("ran past gsync-ctl's --timeout; it was ended");
    expect(w.repo.git('for-each-ref', 'refs/heads/main', '--format=%(objectname)').trim()).toBe(w.repo.head('main'));
    // The task is still there to collect: a pull without the hang merges it.
    writeConfig(
      w.ctx.configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
      { proj: { repo_local: w.repo.dir } },
    );
    expect((await runCtl(w.ctx.configDir, ['pull', '--project', 'proj'])).code).toBe(0);
    expect(w.repo.git('show', 'main:a.txt')).toBe('a\n');
  });

  it('dispatch: an accept that never answers is ended at --timeout, and the next pull settles the task', async () => {
    const w = world(badNodeBin('accept', 'exec sleep 600'), patient);
    const started = Date.now();
    const r = await runCtl(w.ctx.configDir, ['dispatch', '--project', 'proj', '--spec', specFile(w.specs, 'a.md', 'write a.txt a\n'), '--timeout', '3']);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.code).toBe(5);
    expect(r.err).toContain("ran past gsync-ctl's --timeout");
    expect(
      r.err
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('gsync-ctl:')),
    ).toHaveLength(1);
    // The task never reached the node (its accept only slept): the next pull asks, and lets the id go.
    writeConfig(
      w.ctx.configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
      { proj: { repo_local: w.repo.dir } },
    );
    const pulled = await runCtl(w.ctx.configDir, ['--json', 'pull', '--project', 'proj']);
    expect(pulled.code).toBe(0);
    expect(pulled.err).toContain('S01: an interrupted dispatch never reached l1; its id is free again');
    expect(JSON.parse((await runCtl(w.ctx.configDir, ['--json', 'status', '--project', 'proj'])).out)).toEqual({ schema_version: 1, tasks: [] });
  });

  it('pull --wait: a test gate still running at --timeout judges nothing; the task is tested again next time', async () => {
    const w = world(undefined, { project: { verify_command: ['sh', '-c', 'sleep 60'], verify_isolation: 'none' } });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'write a.txt a\n') });
    await finished(w.tasks, ['S01']);
    const started = Date.now();
    const r = await runCtl(w.ctx.configDir, ['--json', 'pull', '--project', 'proj', '--wait', '--timeout', '4']);
    expect(Date.now() - started).toBeLessThan(20_000);
    const report = JSON.parse(r.out) as { tasks: { task_id: string; outcome: string; reason: string }[] };
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'waiting']]);
    expect(report.tasks[0]!.reason).toBe("gsync-ctl's --timeout passed while its test gate ran; not judged");
    expect(w.repo.git('ls-tree', '--name-only', 'main')).not.toContain('a.txt');

    writeConfig(
      w.ctx.configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
      { proj: { repo_local: w.repo.dir, verify_command: ['true'], verify_isolation: 'none' } },
    );
    expect((await runCtl(w.ctx.configDir, ['pull', '--project', 'proj'])).code).toBe(0);
    expect(w.repo.git('show', 'main:a.txt')).toBe('a\n');
  });

  it('pull --wait: a task still running at --timeout is said to run (exit 4), and its node is not called unreachable', async () => {
    const w = world();
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', 'sleep 8\nwrite a.txt a\n') });
    const started = Date.now();
    const r = await runCtl(w.ctx.configDir, ['--json', 'pull', '--project', 'proj', '--wait', '--interval', '5', '--timeout', '3']);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.code, r.err).toBe(4);
    const report = JSON.parse(r.out) as { pending: { task_id: string }[]; unreachable: unknown[] };
    expect(report.unreachable).toEqual([]);
    expect(report.pending.map((t) => t.task_id)).toEqual(['S01']);
    expect(r.err).not.toContain('--timeout; it was ended');
    await finished(w.tasks, ['S01']);
  });

  it('refuses a --timeout that is not a positive number, with exit 2', async () => {
    const w = world();
    for (const bad of ['0', '-1', 'soon']) {
      const r = await runCtl(w.ctx.configDir, ['status', '--project', 'proj', '--timeout', bad]);
      expect(r.code).toBe(2);
      expect(r.err.trim()).toBe('gsync-ctl: --timeout must be a number of seconds above 0, such as --timeout 600');
    }
  });
});

describe('specs are read with a cap', () => {
  it('refuses a FIFO, a device and a huge file at once, with exit 2 and nothing sent', async () => {
    const w = world();
    const fifo = join(tempDir('gsync-fifo-'), 'spec.md');
    execFileSync('mkfifo', [fifo]);
    const huge = join(tempDir('gsync-huge-'), 'spec.md');
    closeSync(openSync(huge, 'w'));
    execFileSync('truncate', ['-s', '10G', huge]);
    for (const [spec, why] of [
      [fifo, /not a regular file/],
      ['/dev/zero', /not a regular file/],
      [huge, /10737418240 bytes; a spec may be at most/],
    ] as const) {
      const r = await runCtl(w.ctx.configDir, ['dispatch', '--project', 'proj', '--spec', spec]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(why);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    expect(w.repo.git('for-each-ref', 'refs/heads/task/')).toBe('');
  });
});
