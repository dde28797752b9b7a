import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FILES, isFinal, type TaskResult, type TaskStatus } from '@gsync/core';
import { taskDir } from '@gsync/node';
import { runNodeCli, taskTar } from './helpers.js';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from '../../../test/helpers/git-repo.js';

/** gsync-node from these sources: the runs the queue starts must be the code under test, not the last build. */
const SELF = join(dirname(fileURLToPath(import.meta.url)), 'gsync-node-src.mjs');

afterAll(cleanupTempDirs);

const node = (argv: string[], stdin: Readable = Readable.from([])) => runNodeCli(argv, stdin, SELF);

function world() {
  const repo = gitRepo();
  const workRoot = tempDir('gsync-work-');
  const gate = tempDir('gsync-gate-');
  const dir = (id: string) => taskDir(workRoot, 'proj', id);
  const status = (id: string): TaskStatus | undefined => {
    const file = join(dir(id), FILES.status);
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TaskStatus) : undefined;
  };
  const accept = async (id: string, agent: string[], start = true) => {
    const argv = ['accept', '--work-root', workRoot, '--project', 'proj', '--task', id, ...(start ? ['--start', '--max-parallel', '1'] : [])];
    const r = await node(argv, taskTar(repo, `Task ${id}\n`, { taskId: id, agent }).tar);
    expect(r.code, r.stderr).toBe(0);
  };
  const cancel = async (id: string) => {
    const r = await node(['cancel', '--work-root', workRoot, '--project', 'proj', '--task', id]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { task_id: string; was: string | null; state: string | null; did: string };
  };
  return { repo, workRoot, gate, dir, status, accept, cancel };
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

describe('gsync-node cancel', () => {
  it("stops the agent's whole process group; the run commits what it had done as work in progress and ends failed", async () => {
    const w = world();
    await w.accept('S01', ['node', join(AGENTS, 'hang.mjs')]);
    const pidsFile = join(w.dir('S01'), 'hang-pids.txt');
    await until('the agent and its child run', () => existsSync(pidsFile) && w.status('S01')?.agent_pid !== undefined);
    const pids = readFileSync(pidsFile, 'utf8').trim().split(' ').map(Number);
    expect(await w.cancel('S01')).toEqual({ task_id: 'S01', was: 'running', state: expect.any(String), did: 'stopped' });
    // Both ignore SIGTERM: what is left after the grace period (1 s here) is killed.
    for (const pid of pids) expect(alive(pid)).toBe(false);
    await until('the run ends', () => isFinal(w.status('S01')?.state ?? 'running'));
    expect(w.status('S01')).toMatchObject({ state: 'failed', error: 'cancelled: the agent was stopped; what it had done is kept as work in progress' });
    const result = JSON.parse(readFileSync(join(w.dir('S01'), FILES.result), 'utf8')) as TaskResult;
    expect(result).toMatchObject({ wip: true, changed_paths: ['progress.txt'] });
    // Once it has ended there is nothing left to do.
    expect(await w.cancel('S01')).toEqual({ task_id: 'S01', was: 'failed', state: 'failed', did: 'nothing' });
  });

  it('takes a queued task off the queue: it never runs, even when a slot frees', async () => {
    const w = world();
    const gateAgent = ['node', join(AGENTS, 'gate.mjs'), w.gate];
    await w.accept('S01', gateAgent);
    await w.accept('S02', gateAgent);
    await until('S01 reaches its agent', () => existsSync(join(w.gate, 'proj-S01.started')));
    expect(w.status('S02')?.state).toBe('queued');
    expect(await w.cancel('S02')).toEqual({ task_id: 'S02', was: 'queued', state: 'failed', did: 'dequeued' });
    writeFileSync(join(w.gate, 'all.go'), '');
    await until('S01 is done', () => w.status('S01')?.state === 'done');
    // A report lets the queue start what it can: S02 is no longer in it.
    expect((await node(['report', '--work-root', w.workRoot, '--project', 'proj', '--task', 'S02'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(w.status('S02')).toMatchObject({ state: 'failed', error: 'cancelled before it started' });
    expect(existsSync(join(w.gate, 'proj-S02.started'))).toBe(false);
  });

  it('a run that finds the cancel before its agent starts never starts it', async () => {
    const w = world();
    await w.accept('S01', ['node', join(AGENTS, 'gate.mjs'), w.gate], false);
    // As when the cancel lands while the queue is starting the run.
    writeFileSync(join(w.dir('S01'), FILES.cancel), '{}');
    const run = await node(['run', '--task-dir', w.dir('S01')]);
    expect(run.code).toBe(1);
    expect(w.status('S01')).toMatchObject({ state: 'failed', error: 'cancelled before the agent started' });
    expect(existsSync(join(w.gate, 'proj-S01.started'))).toBe(false);
  });

  it('says so for a task it does not have', async () => {
    const w = world();
    expect(await w.cancel('S09')).toEqual({ task_id: 'S09', was: null, state: null, did: 'nothing' });
  });
});
