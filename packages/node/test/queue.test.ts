import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FILES, isFinal, type NodeState, type TaskReport, type TaskStatus } from '@gsync/core';
import { taskDir } from '@gsync/node';
import { runNodeCli, taskTar as makeTaskTar } from './helpers.js';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from '../../../test/helpers/git-repo.js';

/** gsync-node from these sources: the runs the queue starts must be the code under test, not the last build. */
const SELF = join(dirname(fileURLToPath(import.meta.url)), 'gsync-node-src.mjs');

interface World {
  repo: GitRepo;
  workRoot: string;
  /** Where the gate agent says it started and waits to be let go (see fixtures/agents/gate.mjs). */
  gate: string;
}

// An agent still waiting ends when its gate dir goes, and with it its run.
afterAll(cleanupTempDirs);

function world(): World {
  return { repo: gitRepo(), workRoot: tempDir('gsync-work-'), gate: tempDir('gsync-gate-') };
}

/** A task as the controller sends it, run by the gate agent. */
function taskTar(w: World, project: string, taskId: string): Readable {
  return makeTaskTar(w.repo, `Task ${taskId}\n`, { project, taskId, agent: ['node', join(AGENTS, 'gate.mjs'), w.gate] }).tar;
}

/** Runs the gsync-node CLI in this process (the runs it starts are processes of their own). */
const node = (argv: string[], stdin: Readable = Readable.from([])) => runNodeCli(argv, stdin, SELF);

/** Runs the gsync-node CLI as a process of its own, as each SSH channel would. */
function nodeProcess(argv: string[], stdin: Readable): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    stdin.pipe(child.stdin);
  });
}

interface StartAnswer {
  started: boolean;
  state: string;
  position?: number;
}

const acceptArgv = (w: World, project: string, taskId: string, maxParallel: number) => [
  'accept',
  '--work-root',
  w.workRoot,
  '--project',
  project,
  '--task',
  taskId,
  '--start',
  '--max-parallel',
  String(maxParallel),
];

async function accept(w: World, project: string, taskId: string, maxParallel: number): Promise<StartAnswer> {
  const r = await node(acceptArgv(w, project, taskId, maxParallel), taskTar(w, project, taskId));
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { start: StartAnswer }).start;
}

function status(w: World, project: string, taskId: string): TaskStatus | undefined {
  try {
    return JSON.parse(readFileSync(join(taskDir(w.workRoot, project, taskId), FILES.status), 'utf8')) as TaskStatus;
  } catch {
    return undefined;
  }
}

const state = (w: World, project: string, taskId: string): NodeState | undefined => status(w, project, taskId)?.state;

/** A run under way: started by the queue (`received` then) and not finished. */
const isRun = (s: NodeState | undefined) => s !== undefined && s !== 'queued' && !isFinal(s);

const agentStarted = (w: World, project: string, taskId: string) => existsSync(join(w.gate, `${project}-${taskId}.started`));
const release = (w: World, project: string, taskId: string) => writeFileSync(join(w.gate, `${project}-${taskId}.go`), '');

/** Polls until `check` holds; fails saying what never happened. */
async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function report(w: World, project: string, taskIds: string[]): Promise<TaskReport[]> {
  const r = await node(['report', '--work-root', w.workRoot, '--project', project, ...taskIds.flatMap((id) => ['--task', id])]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as TaskReport[];
}

describe('the node queue (max_parallel)', () => {
  it('starts no more runs than the limit; the rest wait as queued, and say their place', async () => {
    const w = world();
    expect(await accept(w, 'proj', 'S01', 2)).toMatchObject({ started: true });
    expect(await accept(w, 'proj', 'S02', 2)).toMatchObject({ started: true });
    expect(await accept(w, 'proj', 'S03', 2)).toEqual({ started: false, state: 'queued', position: 1 });
    expect(await accept(w, 'proj', 'S04', 2)).toEqual({ started: false, state: 'queued', position: 2 });
    await until('both runs reach their agents', () => agentStarted(w, 'proj', 'S01') && agentStarted(w, 'proj', 'S02'));
    // Asking about them (which lets the queue start what it can) starts nothing while both slots are taken.
    const reports = await report(w, 'proj', ['S01', 'S02', 'S03', 'S04']);
    expect(reports.map((r) => r.status?.state)).toEqual(['running', 'running', 'queued', 'queued']);
    // Nor does a wait take a queued task for one whose run died.
    const stdin = new PassThrough();
    const waited = await node(['wait', '--work-root', w.workRoot, '--project', 'proj', '--task', 'S03', '--task', 'S04', '--seconds', '1'], stdin);
    stdin.end();
    expect(JSON.parse(waited.stdout)).toEqual({ changed: [] });
    writeFileSync(join(w.gate, 'all.go'), '');
    await until('all four are done', () => ['S01', 'S02', 'S03', 'S04'].every((id) => state(w, 'proj', id) === 'done'));
  });

  it('starts the oldest queued task, by accept time, when a run finishes', async () => {
    const w = world();
    expect(await accept(w, 'proj', 'S01', 1)).toMatchObject({ started: true });
    // Accepted out of id order: the queue goes by arrival.
    expect(await accept(w, 'proj', 'S03', 1)).toMatchObject({ state: 'queued', position: 1 });
    expect(await accept(w, 'proj', 'S02', 1)).toMatchObject({ state: 'queued', position: 2 });
    await until('S01 reaches its agent', () => agentStarted(w, 'proj', 'S01'));
    release(w, 'proj', 'S01');
    await until('S03 reaches its agent', () => agentStarted(w, 'proj', 'S03'));
    expect(state(w, 'proj', 'S01')).toBe('done');
    expect(state(w, 'proj', 'S02')).toBe('queued');
    const steps = status(w, 'proj', 'S03')!.history.map((h) => h.state);
    expect(steps.slice(0, 3)).toEqual(['queued', 'received', 'preparing']);
    release(w, 'proj', 'S03');
    await until('S02 reaches its agent', () => agentStarted(w, 'proj', 'S02'));
    release(w, 'proj', 'S02');
    await until('S02 is done', () => state(w, 'proj', 'S02') === 'done');
  });

  it('a report starts queued work once a killed run has left its slot, and never takes a queued task for a dead one', async () => {
    const w = world();
    await accept(w, 'proj', 'S01', 1);
    expect(await accept(w, 'proj', 'S02', 1)).toMatchObject({ state: 'queued' });
    await until('S01 reaches its agent', () => agentStarted(w, 'proj', 'S01') && status(w, 'proj', 'S01')?.agent_pid !== undefined);
    const killed = status(w, 'proj', 'S01')!;
    // kill -9 of the runner, then of the agent's whole group: nothing is left to end S01 or start S02.
    process.kill(killed.pid!, 'SIGKILL');
    process.kill(-killed.agent_pid!, 'SIGKILL');
    expect(state(w, 'proj', 'S02')).toBe('queued');
    await until('a report starts S02', async () => isRun((await report(w, 'proj', ['S02']))[0]!.status?.state));
    const [dead] = await report(w, 'proj', ['S01']);
    expect(dead!.status).toMatchObject({ state: 'failed' });
    release(w, 'proj', 'S02');
    await until('S02 is done', () => state(w, 'proj', 'S02') === 'done');
  });

  it('counts the runs of every project under the work root', async () => {
    const w = world();
    expect(await accept(w, 'alpha', 'S01', 2)).toMatchObject({ started: true });
    expect(await accept(w, 'beta', 'S01', 2)).toMatchObject({ started: true });
    expect(await accept(w, 'alpha', 'S02', 2)).toMatchObject({ state: 'queued', position: 1 });
    expect(await accept(w, 'beta', 'S02', 2)).toMatchObject({ state: 'queued', position: 2 });
    await until('both runs reach their agents', () => agentStarted(w, 'alpha', 'S01') && agentStarted(w, 'beta', 'S01'));
    release(w, 'beta', 'S01');
    // beta's finished run frees the slot for alpha's task, queued first.
    await until('alpha S02 reaches its agent', () => agentStarted(w, 'alpha', 'S02'));
    expect(state(w, 'beta', 'S02')).toBe('queued');
    writeFileSync(join(w.gate, 'all.go'), '');
    await until('all are done', () => ['alpha', 'beta'].every((p) => state(w, p, 'S01') === 'done' && state(w, p, 'S02') === 'done'));
  });

  it('takes over the queue lock of a process that died holding it', async () => {
    const w = world();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    mkdirSync(join(w.workRoot, '.gsync'), { recursive: true });
    writeFileSync(join(w.workRoot, '.gsync', 'queue.lock'), `${dead} 0123456789ab\n`);
    expect(await accept(w, 'proj', 'S01', 1)).toMatchObject({ started: true });
    expect(existsSync(join(w.workRoot, '.gsync', 'queue.lock'))).toBe(false);
    expect(JSON.parse(readFileSync(join(w.workRoot, '.gsync', 'max-parallel.json'), 'utf8'))).toEqual({ max_parallel: 1 });
    release(w, 'proj', 'S01');
    await until('S01 is done', () => state(w, 'proj', 'S01') === 'done');
  });

  it('never has more runs than the limit when eight accepts arrive at once', { timeout: 180_000 }, async () => {
    const w = world();
    const ids = Array.from({ length: 8 }, (_, i) => `S0${i + 1}`);
    let most = 0;
    const sample = () => {
      const running = ids.filter((id) => isRun(state(w, 'proj', id))).length;
      most = Math.max(most, running);
    };
    const sampler = setInterval(sample, 10);
    // Keeps both slots full: an agent is let go only when two run, or when nothing is left waiting.
    const releaser = setInterval(() => {
      const waiting = ids.filter((id) => state(w, 'proj', id) === 'queued').length;
      const started = ids.filter((id) => agentStarted(w, 'proj', id) && !existsSync(join(w.gate, `proj-${id}.go`)));
      if (started.length >= 2 || (waiting === 0 && started.length > 0)) release(w, 'proj', started[0]!);
    }, 50);
    try {
      const answers = await Promise.all(ids.map((id) => nodeProcess(acceptArgv(w, 'proj', id, 2), taskTar(w, 'proj', id))));
      for (const a of answers) expect(a.code, a.stderr).toBe(0);
      const starts = answers.map((a) => (JSON.parse(a.stdout) as { start: StartAnswer }).start);
      // Which accept starts which task depends on who takes the lock when; each says where its task is.
      for (const s of starts) expect(s.state === 'queued' ? s.position! >= 1 : isRun(s.state as NodeState) || isFinal(s.state as NodeState)).toBe(true);
      // As a controller does while it waits: a report every second also starts queued work a run's own kick missed.
      const reporter = setInterval(() => void node(['report', '--work-root', w.workRoot, '--project', 'proj', ...ids.flatMap((id) => ['--task', id])]), 1000);
      try {
        await until('all eight are done', () => ids.every((id) => state(w, 'proj', id) === 'done'), 150_000);
      } finally {
        clearInterval(reporter);
      }
    } finally {
      clearInterval(sampler);
      clearInterval(releaser);
    }
    sample();
    expect(most).toBe(2);
    // Each task ran once: one start by the queue, one run.
    for (const id of ids) {
      const steps = status(w, 'proj', id)!.history.map((h) => h.state);
      expect(steps.filter((s) => s === 'received')).toHaveLength(1);
      expect(steps.filter((s) => s === 'preparing')).toHaveLength(1);
    }
  });
});
