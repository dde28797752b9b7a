import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { conflicts } from '@gsync/controller';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { resolve } from '@gsync/controller';
import { Store } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** The merge queue on `local` nodes: test gate, conflict forecast, resolution by an agent, the user's checkout. */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];
const RESOLVE = ['node', join(AGENTS, 'resolve.mjs'), '{spec_file}'];
const VERIFY = ['node', join(ROOT, 'fixtures/verify/no-broken.mjs')];
const FIXTURES = [join(ROOT, 'fixtures')];

function setup(repo: GitRepo, project: object = {}, nodesExtra: object = {}) {
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent: EDIT },
        { name: 'l2', transport: 'local', agent: EDIT },
      ],
      agents: { fixer: RESOLVE },
      ...nodesExtra,
    },
    { proj: { repo_local: repo.dir, ...project } },
  );
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

const pull = (ctx: ReturnType<typeof testContext>, wait = true) => pullBundles(ctx, { project: 'proj', wait, interval: 0.1, timeout: 60 });
const storeOf = (ctx: ReturnType<typeof testContext>) => new Store(join(ctx.configDir, 'gsync.db'));
const read = (repo: GitRepo, path: string) => readFileSync(join(repo.dir, path), 'utf8');

/** Uncommitted work of every kind in the user's checkout, and a check that it is all still there, byte for byte. */
function dirtyCheckout(repo: GitRepo): () => void {
  repo.write('notes.md', 'my notes\nwith an uncommitted line\n');
  repo.write('staged.txt', 'staged but not committed\n');
  repo.git('add', 'staged.txt');
  repo.write('scratch/untracked.txt', 'untracked \u00e9\u00e8 bytes\n');
  const status = repo.git('status', '--porcelain');
  return () => {
    expect(read(repo, 'notes.md')).toBe('my notes\nwith an uncommitted line\n');
    expect(read(repo, 'staged.txt')).toBe('staged but not committed\n');
    expect(read(repo, 'scratch/untracked.txt')).toBe('untracked \u00e9\u00e8 bytes\n');
    expect(repo.git('status', '--porcelain')).toBe(status);
  };
}

describe('test gate (verify_command)', () => {
  it('rejects the task that breaks the tests, merges the rest on top of the last good main, in a throw-away checkout', async () => {
    const repo = gitRepo({ 'notes.md': 'my notes\n', 'README.md': 'hello\n' });
    const unchanged = dirtyCheckout(repo);
    const { ctx, specs } = setup(repo, { verify_command: VERIFY, verify_readonly_paths: FIXTURES });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# add a\nwrite a.txt fine\n'), node: 'l1' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'b.md', '# add b, all tests pass!\nwrite b.txt BROKEN\n'), node: 'l2' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'c.md', '# add c\nwrite c.txt fine\n'), node: 'l1' });
    const report = await pull(ctx);

    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'rejected'],
      ['S03', 'merged'],
    ]);
    expect(report.exit_code).toBe(3);
    const rejected = report.tasks[1]!;
    expect(rejected.reason).toBe('the merged tree failed the test gate: verify_command exited with code 1');
    expect(rejected.verify?.tail).toContain('FAIL b.txt');
    expect(rejected.next_step).toContain('task/proj-S02-l2');
    // main: a and c, never b; S03's merge sits directly on S01's.
    expect(repo.git('ls-tree', '--name-only', 'main').split('\n')).toEqual(expect.arrayContaining(['a.txt', 'c.txt']));
    expect(repo.git('ls-tree', '--name-only', 'main')).not.toContain('b.txt');
    expect(repo.head('main^1')).toBe(report.tasks[0]!.merge_commit);
    expect(repo.git('reflog', 'main')).not.toContain(repo.head('task/proj-S02-l2').slice(0, 7));
    // The branch stays for the user; the verify log is kept; the checkout saw none of it.
    expect(repo.head('task/proj-S02-l2')).toMatch(/^[0-9a-f]{40}$/);
    expect(readFileSync(rejected.verify!.log, 'utf8')).toContain('1 failing');
    expect(existsSync(join(repo.dir, 'b.txt'))).toBe(false);
    unchanged();

    const store = storeOf(ctx);
    const events = store.events('proj', 'S02').map((e) => e.kind);
    const failed = store.events('proj', 'S02').find((e) => e.kind === 'verify_failed')!;
    store.close();
    expect(events).toEqual(expect.arrayContaining(['collected', 'verify_started', 'verify_failed']));
    expect(JSON.parse(failed.data!).tail).toContain('FAIL b.txt');
    const text = readFileSync(report.report_path!, 'utf8');
    expect(text).toContain('### S02 on l2: rejected');
    expect(text).toContain('FAIL b.txt');

    const again = await pull(ctx, false);
    expect(again.tasks).toEqual([]);
    expect(again.outstanding.map((t) => [t.task_id, t.outcome])).toEqual([['S02', 'rejected']]);
  });

  it('runs the command outside the checkout, with git pointed at a copy: it cannot move the real main', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const main = repo.head('main');
    // A hostile "test" that tries to move main in whatever repo it runs in, then reports where it ran.
    const sneaky = ['sh', '-c', 'git update-ref refs/heads/main HEAD~1 2>&1; git rev-parse --absolute-git-dir; pwd; exit 1'];
    const { ctx, specs } = setup(repo, { verify_command: sneaky });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# a\nwrite a.txt a\n') });
    const report = await pull(ctx);
    expect(report.tasks[0]!.outcome).toBe('rejected');
    expect(repo.head('main')).toBe(main);
    const ranIn = report.tasks[0]!.verify!.tail!;
    expect(ranIn).not.toContain(repo.dir);
    expect(ranIn).toMatch(/gsync-verify-/);
  });
});

describe('conflict forecast', () => {
  it('names every conflicting pair before anything merges, and who conflicts with main after', async () => {
    const repo = gitRepo({ 'shared.txt': 'one\ntwo\nthree\n', 'other.txt': 'x\n' });
    const { ctx, specs } = setup(repo);
    // S01 takes a while, so S02-S04 finish first and wait for it (dispatch order).
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '1.md', '# slow\nsleep 8\nwrite other.txt y\n'), node: 'l1' });
    for (const [i, word] of [
      [2, 'TWO'],
      [3, 'deux'],
      [4, 'zwei'],
    ] as const) {
      await dispatch(ctx, { project: 'proj', spec: specFile(specs, `${i}.md`, `# line two as ${word}\nset shared.txt 2 ${word}\n`), node: 'l2' });
    }
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '5.md', '# unrelated\nwrite new.txt n\n'), node: 'l2' });
    let first = await pull(ctx, false);
    for (let i = 0; i < 100 && first.tasks.filter((t) => t.outcome === 'waiting').length < 4; i++) {
      await new Promise((r) => setTimeout(r, 100));
      first = await pull(ctx, false);
    }
    expect(first.tasks.map((t) => t.outcome)).toEqual(['waiting', 'waiting', 'waiting', 'waiting']);

    const f = await conflicts(ctx, { project: 'proj' });
    expect(f.tasks).toEqual(['S02', 'S03', 'S04', 'S05']);
    expect(f.with_main).toEqual([]);
    expect(f.pairs).toEqual([
      { a: 'S02', b: 'S03', paths: ['shared.txt'] },
      { a: 'S02', b: 'S04', paths: ['shared.txt'] },
      { a: 'S03', b: 'S04', paths: ['shared.txt'] },
    ]);
    expect(f.pairs_checked).toBe(3);
    expect(f.pairs_total).toBe(6);
    expect(repo.git('log', '--oneline', 'main').split('\n').filter(Boolean)).toHaveLength(1);

    const report = await pull(ctx);
    expect(report.forecast?.pairs.map((p) => `${p.a}x${p.b}`)).toEqual(['S02xS03', 'S02xS04', 'S03xS04']);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
      ['S03', 'conflicted'],
      ['S04', 'conflicted'],
      ['S05', 'merged'],
    ]);
    const after = await conflicts(ctx, { project: 'proj' });
    expect(after.conflicted.map((c) => c.task_id)).toEqual(['S03', 'S04']);
    const store = storeOf(ctx);
    const kinds = store.events('proj').map((e) => e.kind);
    store.close();
    expect(kinds.indexOf('forecast')).toBeLessThan(kinds.indexOf('merged'));
  });

  it('warns at dispatch when a running task was given the same files, and dispatches anyway', async () => {
    const repo = gitRepo({ 'api/pack.py': 'x\n' });
    const { ctx, specs } = setup(repo);
    const one = await dispatch(ctx, { project: 'proj', spec: specFile(specs, '1.md', '# one\nsleep 1\nFiles: api/pack.py, README.md\n'), node: 'l1' });
    expect(one.warnings).toEqual([]);
    const two = await dispatch(ctx, {
      project: 'proj',
      spec: specFile(specs, '2.md', '# two\n\n## Files\n\n- `api/pack.py`\n- schemas/pack.py\n'),
      node: 'l2',
    });
    expect(two.warnings).toEqual(['S01 (running on l1) was also given api/pack.py; the two may conflict when they merge']);
    expect(two.task_id).toBe('S02');
    const three = await dispatch(ctx, { project: 'proj', spec: specFile(specs, '3.md', '# three\nFiles: schemas/other.py\n') });
    expect(three.warnings).toEqual([]);
    await pull(ctx);
  });
});

describe('resolution by an agent', () => {
  it('dispatches the conflict handler on top of main with the conflicted branch, and merges its resolution', async () => {
    const repo = gitRepo({ 'shared.txt': 'one\ntwo\nthree\n' });
    const unchanged = dirtyCheckout(repo);
    const { ctx, specs } = setup(repo, { conflict_handler: 'fixer' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '1.md', '# first wins\nset shared.txt 2 FIRST\n'), node: 'l1' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '2.md', '# second also edits line two\nset shared.txt 2 SECOND\n'), node: 'l2' });
    const report = await pull(ctx);

    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'resolved'],
      ['S03', 'merged'],
    ]);
    expect(report.tasks[1]).toMatchObject({ conflict_paths: ['shared.txt'], resolution_task: 'S03' });
    expect(report.tasks[2]).toMatchObject({ resolves: 'S02' });
    expect(report.exit_code).toBe(0);
    expect(repo.git('show', 'main:shared.txt')).toBe('one\nFIRST\nSECOND\nthree\n');
    expect(repo.git('show', 'main:RESOLVED_BY.txt')).toBe('resolve agent: shared.txt\n');
    // The resolution carries S02's own commit: its history is not lost.
    repo.git('merge-base', '--is-ancestor', 'task/proj-S02-l2', 'main');
    unchanged();

    const spec = readFileSync(report.tasks[1]!.resolution_spec!, 'utf8');
    expect(spec).toMatch(/^# Resolve the merge conflict of S02 with main\n/);
    expect(spec).toContain('set shared.txt 2 SECOND');
    expect(spec).toContain('### S01 (merged as');
    expect(spec).toContain('set shared.txt 2 FIRST');
    expect(spec).toMatch(/<<<<<<< [0-9a-f]{40}\nFIRST\n=======\nSECOND\n>>>>>>> [0-9a-f]{40}/);
    expect(spec).toContain('No conflict markers');

    const store = storeOf(ctx);
    const s02 = store.getTask('proj', 'S02')!;
    const s03 = store.getTask('proj', 'S03')!;
    store.close();
    expect([s02.state, s02.resolved_by]).toEqual(['resolved', 'S03']);
    expect([s03.resolves, s03.merge_head]).toEqual(['S02', repo.head('task/proj-S02-l2')]);
    const text = readFileSync(report.report_path!, 'utf8');
    expect(text).toContain('- resolves the conflict of S02');
    expect(text).toContain('- being resolved by S03');

    const again = await pull(ctx, false);
    expect(again.outstanding).toEqual([]);
    expect(again.exit_code).toBe(0);
  });

  it('without a handler, says which command resolves it; that command does; a resolver that gives up is not merged', async () => {
    const repo = gitRepo({ 'shared.txt': 'one\ntwo\nthree\n' });
    const { ctx, specs } = setup(repo);
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '1.md', '# a\nset shared.txt 2 A\n'), node: 'l1' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '2.md', '# b\nset shared.txt 2 B\n'), node: 'l2' });
    const report = await pull(ctx);
    expect(report.tasks[1]!.next_step).toContain('`gsync-ctl resolve --project proj --task S02`');
    expect(existsSync(report.tasks[1]!.resolution_spec!)).toBe(true);
    expect(report.exit_code).toBe(3);

    // A resolver that leaves the markers: failed, its work kept on a -wip branch, main untouched.
    specFile(specs, 'give-up.md', 'leave-markers\n');
    const giveUpCtx = testContext(ctx.configDir);
    writeConfig(
      ctx.configDir,
      {
        nodes: [
          { name: 'l1', transport: 'local', agent: EDIT },
          { name: 'l2', transport: 'local', agent: EDIT },
        ],
        agents: { fixer: RESOLVE, quitter: ['node', join(AGENTS, 'resolve.mjs'), join(specs, 'give-up.md')] },
      },
      { proj: { repo_local: repo.dir } },
    );
    const main = repo.head('main');
    const quit = await resolve(giveUpCtx, { project: 'proj', task: 'S02', agent: 'quitter' });
    expect(quit).toMatchObject({ task_id: 'S03', resolves: 'S02' });
    await expect(resolve(giveUpCtx, { project: 'proj', task: 'S02', agent: 'fixer' })).rejects.toThrow(/already being resolved by S03/);
    const failed = await pull(giveUpCtx);
    expect(failed.tasks[0]).toMatchObject({
      task_id: 'S03',
      outcome: 'failed',
      reason: 'the agent left conflict markers in shared.txt',
      wip_branch: 'task/proj-S03-l1-wip',
    });
    expect(repo.head('main')).toBe(main);

    // A resolver that aborts the merge: its result lacks S02's work, so it is rejected, not taken as a resolution.
    specFile(specs, 'abort.md', 'abort-merge\n');
    writeConfig(
      ctx.configDir,
      {
        nodes: [
          { name: 'l1', transport: 'local', agent: EDIT },
          { name: 'l2', transport: 'local', agent: EDIT },
        ],
        agents: { fixer: RESOLVE, aborter: ['node', join(AGENTS, 'resolve.mjs'), join(specs, 'abort.md')] },
      },
      { proj: { repo_local: repo.dir } },
    );
    expect((await resolve(giveUpCtx, { project: 'proj', task: 'S02', agent: 'aborter' })).task_id).toBe('S04');
    const dropped = await pull(giveUpCtx);
    expect(dropped.tasks[0]).toMatchObject({ task_id: 'S04', outcome: 'rejected' });
    expect(dropped.tasks[0]!.reason).toMatch(/does not contain the conflicted task's head/);
    expect(repo.head('main')).toBe(main);

    const fixed = await resolve(giveUpCtx, { project: 'proj', task: 'S02', agent: 'fixer', node: 'l2' });
    expect(fixed.task_id).toBe('S05');
    const done = await pull(giveUpCtx);
    expect(done.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S05', 'merged']]);
    expect(repo.git('show', 'main:shared.txt')).toBe('one\nA\nB\nthree\n');
    await expect(resolve(giveUpCtx, { project: 'proj', task: 'S02' })).rejects.toThrow(/S02 of proj is resolved, not conflicted/);
  });
});

describe("the user's checkout", () => {
  it('with main checked out in another worktree: merges around its uncommitted work and waits where it would touch it', async () => {
    const repo = gitRepo({ 'a.txt': 'a\n', 'b.txt': 'b\n' });
    repo.git('checkout', '-q', '-b', 'elsewhere');
    const wt = join(tempDir('gsync-wt-'), 'main-wt');
    repo.git('worktree', 'add', '-q', wt, 'main');
    writeFileSync(join(wt, 'b.txt'), 'my uncommitted b\n');
    const { ctx, specs } = setup(repo, { verify_command: VERIFY, verify_readonly_paths: FIXTURES });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '1.md', '# a\nwrite a.txt A\n'), node: 'l1' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, '2.md', '# b\nwrite b.txt B\n'), node: 'l2' });
    const report = await pull(ctx);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'waiting'],
    ]);
    expect(report.tasks[1]!.reason).toContain(`uncommitted changes to b.txt in ${wt}`);
    expect(readFileSync(join(wt, 'a.txt'), 'utf8')).toBe('A\n');
    expect(readFileSync(join(wt, 'b.txt'), 'utf8')).toBe('my uncommitted b\n');
    expect(readFileSync(join(repo.dir, 'a.txt'), 'utf8')).toBe('a\n');
    expect(report.exit_code).toBe(4);
  });
});
