import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FILES, PROTOCOL_VERSION, sha256, type TaskReport } from '@gsync/core';
import { tasksRoot } from '@gsync/node';
import { runNodeCli, taskTar as makeTaskTar } from './helpers.js';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from '../../../test/helpers/git-repo.js';

afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

/** Runs the gsync-node CLI in this process, as a node would run it: argv, stdin, and what it printed. */
const node = (argv: string[], stdin: Readable = Readable.from([])) => runNodeCli(argv, stdin, join(AGENTS, 'noop.mjs'));

/** A task as the controller sends it, run by the edit agent. */
function taskTar(repo: GitRepo, spec: string, entries: { name: string; data: Buffer }[] = [], revs = ['refs/heads/main'], taskId = 'S01') {
  return makeTaskTar(repo, spec, { agent: EDIT, entries, revs, taskId });
}

async function acceptAndRun(repo: GitRepo, workRoot: string, spec: string): Promise<TaskReport> {
  const accepted = await node(['accept', '--work-root', workRoot, '--project', 'proj', '--task', 'S01'], taskTar(repo, spec).tar);
  expect(accepted.code, accepted.stderr).toBe(0);
  const { taskDir } = JSON.parse(accepted.stdout) as { taskDir: string };
  const run = await node(['run', '--task-dir', taskDir]);
  expect(run.code, run.stderr).toBe(0);
  const report = await node(['report', '--work-root', workRoot, '--project', 'proj', '--task', 'S01']);
  return (JSON.parse(report.stdout) as TaskReport[])[0]!;
}

describe('gsync-node', () => {
  it('says hello with its protocol and the git it finds', async () => {
    const r = await node(['hello']);
    expect(r.code).toBe(0);
    const hello = JSON.parse(r.stdout) as { protocol: number; git: string | null };
    expect(hello.protocol).toBe(PROTOCOL_VERSION);
    expect(hello.git).toMatch(/^git version /);
  });

  it('runs a task from its bundle: the agent commits on the task branch, and result.bundle carries just that', async () => {
    const repo = gitRepo({ 'a.py': 'one\n' });
    const workRoot = tempDir('gsync-work-');
    const report = await acceptAndRun(repo, workRoot, 'Change a\n\nwrite a.py two\nwrite api/pack.py new\n');
    expect(report.status?.state).toBe('done');
    const result = report.result!;
    expect(result).toMatchObject({ base: repo.head(), commits: 1, wip: false, branch: 'task/proj-S01-n1' });
    expect(result.changed_paths.sort()).toEqual(['a.py', 'api/pack.py']);
    const bundle = join(tasksRoot(workRoot, 'proj'), 'S01', FILES.resultBundle);
    expect(statSync(bundle).size).toBe(result.bundle!.size);
    expect(sha256(readFileSync(bundle))).toBe(result.bundle!.sha256);
    // The controller's repository has the base: the bundle needs nothing more, and holds the agent's work.
    execFileSync('git', ['bundle', 'verify', '-q', bundle], { cwd: repo.dir, stdio: 'pipe' });
    repo.git('fetch', '-q', bundle, `refs/heads/task/proj-S01-n1:refs/heads/got`);
    expect(repo.git('show', 'got:a.py')).toBe('two\n');
  });

  it('ends a task whose agent changes nothing as empty, with no result', async () => {
    const repo = gitRepo();
    const report = await acceptAndRun(repo, tempDir('gsync-work-'), 'Do nothing\n');
    expect(report.status?.state).toBe('empty');
    expect(report.result).toBeNull();
  });

  it('withholds a secret the agent wrote: not committed, reported by path and rule, left on disk', async () => {
    const repo = gitRepo();
    const workRoot = tempDir('gsync-work-');
    const report = await acceptAndRun(repo, workRoot, 'Leak\n\nwrite .env API_TOKEN=abc\nwrite ok.txt fine\n');
    expect(report.status?.state).toBe('done');
    expect(report.result?.changed_paths).toEqual(['ok.txt']);
    expect(report.result?.withheld?.map((w) => w.path)).toEqual(['.env']);
    expect(existsSync(join(tasksRoot(workRoot, 'proj'), 'S01', 'repo', '.env'))).toBe(true);
  });

  it('accepts the same task twice as one (a re-send after a lost answer), never as two', async () => {
    const repo = gitRepo();
    const workRoot = tempDir('gsync-work-');
    const argv = ['accept', '--work-root', workRoot, '--project', 'proj', '--task', 'S01'];
    const first = await node(argv, taskTar(repo, 'Same\n').tar);
    const second = await node(argv, taskTar(repo, 'Same\n').tar);
    expect(JSON.parse(first.stdout)).toMatchObject({ created: true });
    expect(JSON.parse(second.stdout)).toMatchObject({ created: false });
    // Another task under the same id is not the same task: exit 3, the id is taken.
    const other = await node(argv, taskTar(repo, 'Different\n').tar);
    expect(other.code).toBe(3);
    expect(other.stderr).toMatch(/already exists on this node with another manifest/);
    expect(readdirSync(tasksRoot(workRoot, 'proj'))).toEqual(['S01']);
  });

  it('asks for the whole history when its object cache lacks what a thin bundle builds on, and keeps nothing', async () => {
    const repo = gitRepo();
    repo.write('b.txt', 'second\n');
    repo.commitAll('second');
    const workRoot = tempDir('gsync-work-');
    const argv = ['accept', '--work-root', workRoot, '--project', 'proj', '--task', 'S01', '--start'];
    const r = await node(argv, taskTar(repo, 'Thin\n', [], ['refs/heads/main', '^main~1']).tar);
    expect(r.code, r.stderr).toBe(0);
    const answer = JSON.parse(r.stdout) as { created: boolean; need_full?: string; start?: unknown };
    expect(answer).toMatchObject({ created: false });
    expect(answer.need_full).toMatch(/lacks what the bundle builds on/);
    expect(answer.start).toBeUndefined();
    expect(readdirSync(tasksRoot(workRoot, 'proj')).filter((f) => !f.startsWith('.'))).toEqual([]);
    // The whole history then goes into the cache, and a later task with no bundle at all builds on it.
    const full = await node(argv.slice(0, -1), taskTar(repo, 'Full\n').tar);
    expect(JSON.parse(full.stdout)).toMatchObject({ created: true });
    const hello = JSON.parse((await node(['hello', '--work-root', workRoot, '--project', 'proj'])).stdout) as { cache: string[] };
    expect(hello.cache).toEqual([repo.head()]);
  });

  it('takes tasks arriving at once into one new object cache', async () => {
    const repo = gitRepo();
    // Several rounds of eight at once: two of them creating the cache together is then all but certain.
    for (let round = 0; round < 4; round++) {
      const workRoot = tempDir('gsync-work-');
      const accept = (id: string) =>
        node(['accept', '--work-root', workRoot, '--project', 'proj', '--task', id], taskTar(repo, `Task ${id}\n`, [], ['refs/heads/main'], id).tar);
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => accept(`S0${i + 1}`)));
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(join(workRoot, 'proj')).sort()).toEqual(['cache.git', 'tasks']);
    }
  });

  it('checks out tasks starting at once from one object cache, each its own worktree', async () => {
    const repo = gitRepo({ 'a.py': 'one\n' });
    // Several rounds of eight at once: one run's `worktree prune` inside another's `worktree add` is then all but certain.
    for (let round = 0; round < 4; round++) {
      const workRoot = tempDir('gsync-work-');
      const ids = Array.from({ length: 8 }, (_, i) => `S0${i + 1}`);
      const dirs: string[] = [];
      for (const id of ids) {
        const accepted = await node(
          ['accept', '--work-root', workRoot, '--project', 'proj', '--task', id],
          taskTar(repo, `T ${id}\n\nwrite ${id}.txt x\n`, [], ['refs/heads/main'], id).tar,
        );
        expect(accepted.code, accepted.stderr).toBe(0);
        dirs.push((JSON.parse(accepted.stdout) as { taskDir: string }).taskDir);
      }
      const runs = await Promise.all(dirs.map((dir) => node(['run', '--task-dir', dir])));
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
      const report = await node(['report', '--work-root', workRoot, '--project', 'proj', ...ids.flatMap((id) => ['--task', id])]);
      const reports = JSON.parse(report.stdout) as TaskReport[];
      expect(reports.map((r) => `${r.task_id} ${r.status?.state} ${r.result?.changed_paths.join(',')}`)).toEqual(ids.map((id) => `${id} done ${id}.txt`));
    }
  });

  it('refuses a task stream with any other entry, and leaves no task dir behind', async () => {
    const repo = gitRepo();
    const workRoot = tempDir('gsync-work-');
    const r = await node(
      ['accept', '--work-root', workRoot, '--project', 'proj', '--task', 'S01'],
      taskTar(repo, 'X\n', [{ name: '../evil', data: Buffer.from('x') }]).tar,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unexpected entry in the task stream: "\.\.\/evil"/);
    const root = tasksRoot(workRoot, 'proj');
    expect(existsSync(root) ? readdirSync(root).filter((f) => !f.startsWith('.')) : []).toEqual([]);
  });

  it('sends only the files a controller may read, and says how to use it on a bad command', async () => {
    const workRoot = tempDir('gsync-work-');
    const denied = await node(['send', '--work-root', workRoot, '--project', 'proj', '--task', 'S01', '--file', 'task.json']);
    expect(denied.code).toBe(2);
    expect(denied.stderr).toMatch(/--file must be one of/);
    const unknown = await node(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"[\s\S]*usage:/);
  });

  it('waits until a task needs a look, or until its time is up, or until the controller hangs up', async () => {
    const repo = gitRepo();
    const workRoot = tempDir('gsync-work-');
    const argv = ['wait', '--work-root', workRoot, '--project', 'proj', '--task', 'S01'];
    /** As over SSH: stdin stays open while the controller waits. */
    const waitFor = async (seconds: number) => {
      const stdin = new PassThrough();
      const r = await node([...argv, '--seconds', String(seconds)], stdin);
      stdin.end();
      return JSON.parse(r.stdout) as { changed: string[] };
    };
    // A task it never had needs a look at once.
    expect(await waitFor(5)).toEqual({ changed: ['S01'] });
    const accepted = await node(['accept', '--work-root', workRoot, '--project', 'proj', '--task', 'S01'], taskTar(repo, 'Wait\n').tar);
    expect(accepted.code).toBe(0);
    // Received and not started: nothing to look at until the time is up.
    const t0 = Date.now();
    expect(await waitFor(1)).toEqual({ changed: [] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    // A controller that hangs up ends the wait early.
    const stdin = new PassThrough();
    const waiting = node([...argv, '--seconds', '30'], stdin);
    setTimeout(() => stdin.end(), 300);
    expect(JSON.parse((await waiting).stdout)).toEqual({ changed: [] });
    // Once run, the finished task is reported.
    await node(['run', '--task-dir', join(tasksRoot(workRoot, 'proj'), 'S01')]);
    expect(await waitFor(5)).toEqual({ changed: ['S01'] });
  });

  it('reports a task it never had as missing, not as an error', async () => {
    const r = await node(['report', '--work-root', tempDir('gsync-work-'), '--project', 'proj', '--task', 'S09']);
    expect(r.code).toBe(0);
    const [report] = JSON.parse(r.stdout) as TaskReport[];
    expect(report).toMatchObject({ task_id: 'S09', exists: false, status: null, result: null });
  });
});
