import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { status } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** The whole loop on `local` nodes (same protocol and gsync-node file, no sshd): the agent's ways to end. */
afterAll(cleanupTempDirs);

function setup(repo: GitRepo, agent: string, nodeExtra: object = {}) {
  const configDir = tempDir('gsync-config-');
  const argv = ['node', join(AGENTS, agent), '{spec_file}'];
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent: argv, ...nodeExtra },
        { name: 'l2', transport: 'local', agent: argv, ...nodeExtra },
      ],
    },
    { proj: { repo_local: repo.dir } },
  );
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

const pull = (ctx: ReturnType<typeof testContext>) => pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
/** Alive and not a zombie (an orphan waits for init to reap it, which may take a while). */
const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

describe('tasks on local nodes', () => {
  it('an agent that changes nothing ends as empty, not as an error', async () => {
    const repo = gitRepo();
    const { ctx, specs } = setup(repo, 'noop.mjs');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# look around\n') });
    const report = await pull(ctx);
    expect(report.tasks.map((t) => t.outcome)).toEqual(['empty']);
    expect(report.exit_code).toBe(0);
    expect(repo.git('branch', '--list', 'task/*')).toBe('');
  });

  it('a failing agent is reported, its half-done work kept on a -wip branch and never merged', async () => {
    const repo = gitRepo();
    const main = repo.head('main');
    const { ctx, specs } = setup(repo, 'fail.mjs');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# try\n'), node: 'l1' });
    const report = await pull(ctx);
    expect(report.exit_code).toBe(3);
    expect(report.tasks[0]).toMatchObject({ outcome: 'failed', reason: 'the agent exited with code 3', wip_branch: 'task/proj-S01-l1-wip' });
    expect(repo.git('show', 'task/proj-S01-l1-wip:half-done.txt')).toBe('started, then crashed\n');
    expect(repo.head('main')).toBe(main);
    expect(repo.git('branch', '--list', 'task/proj-S01-l1')).toBe('');
  });

  it('an agent past its timeout is killed with every process it started, and its work in progress returned', async () => {
    const repo = gitRepo();
    const { ctx, specs } = setup(repo, 'hang.mjs', { agent_timeout_seconds: 1 });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# hang\n'), node: 'l2' });
    const report = await pull(ctx);
    expect(report.tasks[0]).toMatchObject({ outcome: 'timeout', wip_branch: 'task/proj-S01-l2-wip' });
    expect(report.tasks[0]!.reason).toMatch(/longer than 1s and was killed/);
    const home = join(ctx.configDir, 'nodes/l2');
    const pids = readFileSync(join(home, 'dispatch/proj/tasks/S01/hang-pids.txt'), 'utf8').trim().split(' ').map(Number);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(repo.git('show', 'task/proj-S01-l2-wip:progress.txt')).toBe('partial work before the hang\n');
  });

  it('without --task and --node it takes the next free id and the least busy node', async () => {
    const repo = gitRepo();
    const { ctx, specs } = setup(repo, 'noop.mjs');
    const spec = specFile(specs, 's.md', '# x\n');
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await dispatch(ctx, { project: 'proj', spec }));
    expect(got.map((r) => `${r.task_id}@${r.node}`)).toEqual(['S01@l1', 'S02@l2', 'S03@l1']);
    await pull(ctx);
    const next = await dispatch(ctx, { project: 'proj', spec, task: 'S10' });
    expect(next.task_id).toBe('S10');
    expect((await dispatch(ctx, { project: 'proj', spec })).task_id).toBe('S11');
  });
});

describe("the user's checkout", () => {
  it('merges around uncommitted work, waits where a merge would touch it, and never loses a byte', async () => {
    const repo = gitRepo({ 'mine.txt': 'committed\n', 'theirs.txt': 'old\n' });
    const { ctx, specs } = setup(repo, 'edit.mjs');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# theirs\nwrite theirs.txt new\n'), node: 'l1' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'b.md', '# mine\nwrite mine.txt from the agent\n'), node: 'l2' });
    repo.write('mine.txt', 'my uncommitted edit\n');
    repo.write('notes.txt', 'untracked notes\n');

    const first = await pull(ctx);
    expect(first.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'waiting'],
    ]);
    expect(first.tasks[1]!.reason).toMatch(/uncommitted changes to mine\.txt/);
    expect(first.exit_code).toBe(4);
    // S01 reached the working tree; the user's edit and notes are untouched.
    expect(readFileSync(join(repo.dir, 'theirs.txt'), 'utf8')).toBe('new\n');
    expect(readFileSync(join(repo.dir, 'mine.txt'), 'utf8')).toBe('my uncommitted edit\n');
    expect(readFileSync(join(repo.dir, 'notes.txt'), 'utf8')).toBe('untracked notes\n');
    expect(repo.head('main')).toBe(first.tasks[0]!.merge_commit);

    // Once the user has put their edit away themselves, the waiting task merges.
    const saved = readFileSync(join(repo.dir, 'mine.txt'), 'utf8');
    repo.git('checkout', '--', 'mine.txt');
    const second = await pullBundles(ctx, { project: 'proj' });
    expect(second.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S02', 'merged']]);
    expect(second.exit_code).toBe(0);
    expect(readFileSync(join(repo.dir, 'mine.txt'), 'utf8')).toBe('from the agent\n');
    expect(saved).toBe('my uncommitted edit\n');
  });

  it('moves main by compare-and-swap when it is not checked out, leaving the checkout alone', async () => {
    const repo = gitRepo({ 'a.txt': 'a\n' });
    repo.git('checkout', '-q', '-b', 'feature');
    repo.write('wip.txt', 'feature work\n');
    const { ctx, specs } = setup(repo, 'edit.mjs');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# a\nwrite a.txt b\n') });
    const report = await pull(ctx);
    expect(report.tasks[0]!.outcome).toBe('merged');
    expect(repo.git('show', 'main:a.txt')).toBe('b\n');
    expect(repo.git('symbolic-ref', 'HEAD').trim()).toBe('refs/heads/feature');
    expect(readFileSync(join(repo.dir, 'a.txt'), 'utf8')).toBe('a\n');
    expect(repo.git('status', '--porcelain')).toBe('?? wip.txt\n');
  });

  it('status shows node, state, branch and times', async () => {
    const repo = gitRepo();
    const { ctx, specs } = setup(repo, 'edit.mjs');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# a\nwrite x.txt x\n'), node: 'l2' });
    const before = await status(ctx, { project: 'proj' });
    expect(before[0]).toMatchObject({ task_id: 'S01', node: 'l2', state: 'dispatched', branch: 'task/proj-S01-l2', merged_at: null });
    await pull(ctx);
    const after = await status(ctx, { project: 'proj' });
    expect(after[0]).toMatchObject({ state: 'merged', node_state: 'done' });
    expect(Date.parse(after[0]!.merged_at!)).toBeGreaterThanOrEqual(Date.parse(after[0]!.dispatched_at!));
  });
});
