import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TaskStatus } from '@gsync/core';
import { Store, type CancelResult, type RunReport, type StatusRow } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, writeConfig } from './helpers/world.js';

/** cancel and dismiss through the CLI, on `local` nodes (the same gsync-node and protocol, no sshd). */
afterAll(cleanupTempDirs);

function world(agent: string[], nodeExtra: object = {}) {
  const repo = gitRepo({ 'a.txt': 'a\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent, ...nodeExtra },
        { name: 'l2', transport: 'local', agent, ...nodeExtra },
      ],
    },
    { proj: { repo_local: repo.dir } },
  );
  const specs = tempDir('gsync-specs-');
  const ctl = (argv: string[]) => runCtl(configDir, argv);
  const taskDir = (node: string, id: string) => join(configDir, 'nodes', node, 'dispatch/proj/tasks', id);
  const nodeStatus = (node: string, id: string): TaskStatus | undefined => {
    const file = join(taskDir(node, id), 'status.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TaskStatus) : undefined;
  };
  const dispatch = async (id: string, node: string, text: string) => {
    const r = await ctl(['dispatch', '--project', 'proj', '--spec', specFile(specs, `${id}.md`, text), '--task', id, '--node', node]);
    expect(r.code, r.err).toBe(0);
  };
  const pull = async () => {
    const r = await ctl(['pull', '--project', 'proj', '--wait', '--interval', '0.1', '--timeout', '60', '--json']);
    return { code: r.code, report: JSON.parse(r.out) as RunReport, err: r.err };
  };
  const state = async (id: string) =>
    (JSON.parse((await ctl(['status', '--project', 'proj', '--json'])).out) as { tasks: StatusRow[] }).tasks.find((t) => t.task_id === id)?.state;
  const events = (id: string) => {
    const store = new Store(join(configDir, 'gsync.db'));
    try {
      return store.events('proj', id);
    } finally {
      store.close();
    }
  };
  return { repo, configDir, ctl, taskDir, nodeStatus, dispatch, pull, state, events };
}

const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('gsync-ctl cancel', () => {
  it('stops a running agent with every process it started; the next pull brings its work back on -wip, never merged, with the reason', async () => {
    const w = world(['node', join(AGENTS, 'hang.mjs'), '{spec_file}']);
    const main = w.repo.head('main');
    await w.dispatch('S01', 'l1', '# hang\n');
    const pidsFile = join(w.taskDir('l1', 'S01'), 'hang-pids.txt');
    await until('the agent and its child run', () => existsSync(pidsFile) && w.nodeStatus('l1', 'S01')?.agent_pid !== undefined);
    const pids = readFileSync(pidsFile, 'utf8').trim().split(' ').map(Number);
    expect(pids.every(alive)).toBe(true);

    // Both ignore SIGTERM: the grace period passes, then SIGKILL takes the whole group.
    const reason = 'wrong spec \u001b[31mred\u0007';
    const r = await w.ctl(['cancel', '--project', 'proj', '--task', 'S01', '--reason', reason]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^cancelled S01: its agent on l1 was stopped; the next pull brings back what it had done on task\/proj-S01-l1-wip, never merged/);
    expect(r.out + r.err).not.toMatch(/[\u0007\u001b]/);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(await w.state('S01')).toBe('cancelling');

    const again = await w.ctl(['cancel', '--project', 'proj', '--task', 'S01', '--json']);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out) as CancelResult).toMatchObject({ task_id: 'S01', already: true, was: 'cancelling', reason });

    const { code, report } = await w.pull();
    expect(code).toBe(0);
    expect(report.tasks).toMatchObject([{ task_id: 'S01', outcome: 'cancelled', wip_branch: 'task/proj-S01-l1-wip', reason }]);
    expect(w.repo.git('show', 'task/proj-S01-l1-wip:progress.txt')).toBe('partial work before the hang\n');
    expect(w.repo.git('branch', '--list', 'task/proj-S01-l1')).toBe('');
    expect(w.repo.head('main')).toBe(main);
    expect(w.nodeStatus('l1', 'S01')).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/^cancelled: the agent was stopped; what it had done is kept/),
    });
    const md = readFileSync(report.report_path!, 'utf8');
    expect(md).toContain('### S01 on l1: cancelled');
    expect(md).toContain('- why: wrong spec');
    expect(md).not.toMatch(/[\u0007\u001b]/);
    expect(w.events('S01').find((e) => e.kind === 'cancelled')).toMatchObject({
      message: `S01 on l1 cancelled: ${reason}`,
      data: JSON.stringify({ reason, was: 'dispatched' }),
    });

    expect(await w.state('S01')).toBe('cancelled');
    const third = await w.ctl(['cancel', '--project', 'proj', '--task', 'S01']);
    expect(third.code).toBe(0);
    expect(third.out).toMatch(/^S01 is already cancelled: its work so far is on task\/proj-S01-l1-wip, not merged/);
    const later = await w.pull();
    expect(later.code).toBe(0);
    expect(later.report.tasks).toEqual([]);
    expect(w.repo.head('main')).toBe(main);
  });

  it('takes a task still queued on its node off the queue: it never runs; a merged or never dispatched task is refused', async () => {
    const gate = tempDir('gsync-gate-');
    const w = world(['node', join(AGENTS, 'gate.mjs'), gate], { max_parallel: 1 });
    await w.dispatch('S01', 'l1', '# one\n');
    await w.dispatch('S02', 'l1', '# two\n');
    await until('S01 runs', () => existsSync(join(gate, 'proj-S01.started')));
    expect(w.nodeStatus('l1', 'S02')?.state).toBe('queued');

    const r = await w.ctl(['cancel', '--project', 'proj', '--task', 'S02', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out) as CancelResult).toMatchObject({
      task_id: 'S02',
      was: 'dispatched',
      state: 'cancelling',
      already: false,
      reason: null,
      node_answer: { was: 'queued', state: 'failed', did: 'dequeued' },
    });
    writeFileSync(join(gate, 'all.go'), '');
    const { code, report } = await w.pull();
    expect(code).toBe(0);
    // S02 is settled in the first round, S01 once its agent is let go.
    expect(report.tasks.map((t) => [t.task_id, t.outcome, t.wip_branch]).sort()).toEqual([
      ['S01', 'merged', undefined],
      ['S02', 'cancelled', undefined],
    ]);
    expect(existsSync(join(gate, 'proj-S02.started'))).toBe(false);
    expect(w.nodeStatus('l1', 'S02')!.history.map((h) => h.state)).toEqual(['queued', 'failed']);

    const merged = await w.ctl(['cancel', '--project', 'proj', '--task', 'S01']);
    expect(merged.code).toBe(2);
    expect(merged.err).toBe('gsync-ctl: task S01 has already ended (merged): there is nothing to cancel\n');

    // A row whose dispatch never finished: nothing runs anywhere.
    const store = new Store(join(w.configDir, 'gsync.db'));
    const base = w.repo.head('main');
    store.insertTask({
      project: 'proj',
      task_id: 'S03',
      node: 'l2',
      branch: 'task/proj-S03-l2',
      base_ref: 'refs/heads/main',
      base_commit: base,
      spec_title: 't',
      spec_sha256: 'f'.repeat(64),
    });
    store.close();
    const never = await w.ctl(['cancel', '--project', 'proj', '--task', 'S03']);
    expect(never.code).toBe(2);
    expect(never.err).toBe('gsync-ctl: task S03 was never dispatched (its dispatch did not finish): nothing runs to cancel\n');
  });
});

describe('gsync-ctl cancel of work that finished before the pull', () => {
  it('a task its node finished but no pull collected yet comes back on -wip all the same, never merged', async () => {
    const w = world(['node', join(AGENTS, 'edit.mjs'), '{spec_file}']);
    const main = w.repo.head('main');
    await w.dispatch('S01', 'l2', '# edit a\nwrite a.txt changed\n');
    await until('the node has finished it', () => w.nodeStatus('l2', 'S01')?.state === 'done');
    const r = await w.ctl(['cancel', '--project', 'proj', '--task', 'S01']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^cancelled S01: it had already ended on l2 \(done\); the next pull brings back what it made on task\/proj-S01-l2-wip, never merged/);
    const { code, report } = await w.pull();
    expect(code).toBe(0);
    expect(report.tasks).toMatchObject([{ task_id: 'S01', outcome: 'cancelled', wip_branch: 'task/proj-S01-l2-wip', reason: 'no reason given' }]);
    expect(w.repo.git('show', 'task/proj-S01-l2-wip:a.txt')).toBe('changed\n');
    expect(w.repo.git('branch', '--list', 'task/proj-S01-l2')).toBe('');
    expect(w.repo.head('main')).toBe(main);
  });
});

describe('gsync-ctl dismiss', () => {
  it('sets a failed task aside: pull exits 0 again, its -wip branch stays, and retry still sends it', async () => {
    const w = world(['node', join(AGENTS, 'fail.mjs'), '{spec_file}']);
    await w.dispatch('S01', 'l1', '# try\n');
    expect((await w.pull()).code).toBe(3);
    expect((await w.pull()).code).toBe(3);

    const r = await w.ctl(['dismiss', '--project', 'proj', '--task', 'S01', '--reason', 'done by hand']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('dismissed S01 (failed); kept task/proj-S01-l1-wip\n');
    const after = await w.pull();
    expect(after.code).toBe(0);
    expect(after.report.outstanding).toEqual([]);
    expect(await w.state('S01')).toBe('dismissed');
    expect(w.repo.git('show', 'task/proj-S01-l1-wip:half-done.txt')).toBe('started, then crashed\n');
    expect(w.events('S01').find((e) => e.kind === 'dismissed')).toMatchObject({ message: 'S01 (failed) dismissed: done by hand; task/proj-S01-l1-wip kept' });

    const again = await w.ctl(['dismiss', '--project', 'proj', '--task', 'S01']);
    expect(again.code).toBe(0);
    expect(again.out).toBe('S01 is already dismissed; kept task/proj-S01-l1-wip\n');

    const retried = await w.ctl(['retry', '--project', 'proj', '--task', 'S01']);
    expect(retried.code, retried.err).toBe(0);
    expect(retried.out).toMatch(/^dispatched S02 to l2 .* \(retry of S01\)/);
    expect(await w.state('S01')).toBe('retried');
    // The retry fails too (the same agent): waited for, so nothing runs on after the test.
    expect((await w.pull()).report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S02', 'failed']]);
  });

  it('refuses a running task and a merged one with one line, changing nothing', async () => {
    const gate = tempDir('gsync-gate-');
    const w = world(['node', join(AGENTS, 'gate.mjs'), gate]);
    await w.dispatch('S01', 'l1', '# one\n');
    await until('S01 runs', () => existsSync(join(gate, 'proj-S01.started')));
    const running = await w.ctl(['dismiss', '--project', 'proj', '--task', 'S01']);
    expect(running.code).toBe(2);
    expect(running.err).toBe('gsync-ctl: task S01 is still running (dispatched): cancel it first, or wait for it to end\n');
    expect(await w.state('S01')).toBe('dispatched');

    writeFileSync(join(gate, 'all.go'), '');
    expect((await w.pull()).code).toBe(0);
    const merged = await w.ctl(['dismiss', '--project', 'proj', '--task', 'S01']);
    expect(merged.code).toBe(2);
    expect(merged.err).toBe('gsync-ctl: task S01 is merged: it needs no attention, there is nothing to dismiss\n');
    expect(await w.state('S01')).toBe('merged');
  });
});
