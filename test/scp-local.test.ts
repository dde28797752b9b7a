import { chmodSync, existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles, resolve, type CleanupResult } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * The scp mode on `local` nodes (same protocol and gsync-node file, no sshd): code goes
 * out as files, the changed files come back under their full paths, and the controller
 * makes the commit. `nogit` runs gsync-node with no git on its PATH.
 */
afterAll(cleanupTempDirs);

const WITHOUT_GIT = join(import.meta.dirname, '..', 'fixtures', 'node', 'without-git.sh');

function setup(repo: GitRepo, syncMode: 'scp' | 'bundle', agent = 'edit.mjs') {
  const configDir = tempDir('gsync-config-');
  const argv = ['node', join(AGENTS, agent), '{spec_file}'];
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'nogit', transport: 'local', agent: argv, node_bin: WITHOUT_GIT },
        { name: 'withgit', transport: 'local', agent: argv },
      ],
    },
    { proj: { repo_local: repo.dir, sync_mode: syncMode } },
  );
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

const pull = (ctx: ReturnType<typeof testContext>) => pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });

function project(): GitRepo {
  const repo = gitRepo({
    'README.md': 'one\ntwo\nthree\n',
    'api/pack.py': 'api = 1\n',
    'schemas/old.py': 'old = 1\n',
    'tools/run.sh': '#!/bin/sh\necho run\n',
    '.gitignore': 'build/\n*.log\n',
  });
  chmodSync(join(repo.dir, 'tools/run.sh'), 0o755);
  repo.commitAll('tools/run.sh is a program');
  return repo;
}

describe('the scp mode on local nodes', () => {
  it('two nodes (one without git) work in parallel; every change comes back under its full path and both merge', async () => {
    const repo = project();
    const base = repo.head('main');
    const { ctx, specs } = setup(repo, 'scp');
    const one = [
      '# Pack the schemas',
      'write schemas/pack.py schemas = 2',
      'write api/pack.py api = 2',
      'delete schemas/old.py',
      'chmod README.md 755',
      'link latest api/pack.py',
      'write build/out.o built',
      'write debug.log noise',
      'write docs/new.md kept',
    ].join('\n');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'one.md', `${one}\n`), node: 'nogit' });
    await dispatch(ctx, {
      project: 'proj',
      spec: specFile(specs, 'two.md', '# Tools\nwrite tools/more.sh echo more\nchmod tools/run.sh 644\n'),
      node: 'withgit',
    });
    const report = await pull(ctx);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    const show = (path: string) => repo.git('show', `main:${path}`);
    // Same file name in two folders: both survive, neither flattened over the other.
    expect(show('schemas/pack.py')).toBe('schemas = 2\n');
    expect(show('api/pack.py')).toBe('api = 2\n');
    expect(repo.git('ls-tree', 'main', 'schemas/old.py')).toBe('');
    expect(repo.git('ls-tree', 'main', 'README.md')).toMatch(/^100755 /);
    expect(repo.git('ls-tree', 'main', 'tools/run.sh')).toMatch(/^100644 /);
    expect(repo.git('ls-tree', 'main', 'latest')).toMatch(/^120000 /);
    expect(show('latest')).toBe('api/pack.py');
    expect(show('docs/new.md')).toBe('kept\n');
    expect(show('tools/more.sh')).toBe('echo more\n');
    // What git would ignore stays on the node.
    expect(repo.git('ls-tree', '-r', '--name-only', 'main')).not.toMatch(/build\/|debug\.log/);
    // One commit per task, made by the controller, named as the node would name it.
    expect(repo.git('log', '-1', '--format=%s|%an', 'task/proj-S01-nogit')).toBe('task/S01: Pack the schemas|gsync agent on nogit\n');
    expect(repo.git('log', '-1', '--format=%P', 'task/proj-S01-nogit').trim()).toBe(base);
    // The checkout moved with main, the link as a link.
    expect(readFileSync(join(repo.dir, 'schemas/pack.py'), 'utf8')).toBe('schemas = 2\n');
    expect(lstatSync(join(repo.dir, 'latest')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(repo.dir, 'schemas/old.py'))).toBe(false);
    const down = ctx.events.filter((e) => e.kind === 'downgraded');
    expect(down).toEqual([]);
    // Cleanup works on a node without git as on any other: the task dirs go, the branches once on main.
    const cleaned = JSON.parse((await runCtl(ctx.configDir, ['--json', 'cleanup', '--project', 'proj', '--older-than', '0'])).out) as CleanupResult;
    expect(
      cleaned.removed
        .filter((r) => r.what === 'node_dir')
        .map((r) => r.task_id)
        .sort(),
    ).toEqual(['S01', 'S02']);
    for (const [node, id] of [
      ['nogit', 'S01'],
      ['withgit', 'S02'],
    ] as const)
      expect(existsSync(join(ctx.configDir, 'nodes', node, 'dispatch/proj/tasks', id))).toBe(false);
    expect(repo.git('branch', '--list', 'task/*')).toBe('');
  });

  it('a bundle project sends a node without git its files, with an alert, and merges the result', async () => {
    const repo = project();
    const { ctx, specs } = setup(repo, 'bundle');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'one.md', '# x\nwrite api/pack.py api = 3\n'), node: 'nogit' });
    expect(ctx.events.find((e) => e.kind === 'downgraded')?.message).toMatch(/nogit has no git; the code was sent as files/);
    const report = await pull(ctx);
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:api/pack.py')).toBe('api = 3\n');
  });

  it('two tasks changing the same lines: one merges, the other is a conflict, and its resolution (no git on the node) merges both', async () => {
    const repo = project();
    const { ctx, specs } = setup(repo, 'scp');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'a.md', '# a\nset README.md 2 two from a\n'), node: 'nogit' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'b.md', '# b\nset README.md 2 two from b\n'), node: 'withgit' });
    const first = await pull(ctx);
    expect(first.tasks.map((t) => t.outcome).sort()).toEqual(['conflicted', 'merged']);
    expect(first.exit_code).toBe(3);
    const merged = first.tasks.find((t) => t.outcome === 'merged')!;
    const conflicted = first.tasks.find((t) => t.outcome === 'conflicted')!;
    const winner = merged.task_id === 'S01' ? 'a' : 'b';
    expect(repo.git('show', 'main:README.md')).toBe(`one\ntwo from ${winner}\nthree\n`);
    // Nothing silently overwritten: the other side stays on its branch.
    expect(repo.git('show', `${conflicted.branch}:README.md`)).toMatch(/two from [ab]/);

    const { ctx: resolver } = { ctx: testContext(ctx.configDir) };
    writeConfig(
      ctx.configDir,
      {
        nodes: [
          { name: 'nogit', transport: 'local', agent: ['node', join(AGENTS, 'resolve.mjs'), '{spec_file}'], node_bin: WITHOUT_GIT },
          { name: 'withgit', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] },
        ],
      },
      { proj: { repo_local: repo.dir, sync_mode: 'scp' } },
    );
    await resolve(resolver, { project: 'proj', task: conflicted.task_id, node: 'nogit' });
    const second = await pull(resolver);
    expect(second.tasks.map((t) => t.outcome)).toEqual(['merged']);
    const readme = repo.git('show', 'main:README.md');
    expect(readme).toContain('two from a');
    expect(readme).toContain('two from b');
    expect(readme).not.toMatch(/<<<<<<<|>>>>>>>/);
    // The resolution is a merge of main and the conflicted branch.
    expect(repo.git('log', '-1', '--format=%P', `task/proj-S03-nogit`).trim().split(' ')).toHaveLength(2);
  });

  it('an agent that fails keeps its files as work in progress; one that changes nothing is empty', async () => {
    const repo = project();
    const { ctx, specs } = setup(repo, 'scp');
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'f.md', '# f\nwrite half.txt half\nexit 4\n'), node: 'nogit' });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 'n.md', '# nothing\n'), node: 'nogit' });
    const report = await pull(ctx);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'failed'],
      ['S02', 'empty'],
    ]);
    expect(repo.git('show', 'task/proj-S01-nogit-wip:half.txt')).toBe('half\n');
    expect(repo.git('log', '-1', '--format=%s', 'task/proj-S01-nogit-wip')).toMatch(/\(work in progress\)/);
  });

  it('a secret the agent writes stays on the node, named by path and rule; the rest comes home unmerged', async () => {
    const repo = project();
    const { ctx, specs } = setup(repo, 'scp');
    await dispatch(ctx, {
      project: 'proj',
      spec: specFile(specs, 's.md', '# s\nwrite notes.md fine\nwrite deploy/id_rsa -----BEGIN OPENSSH PRIVATE KEY-----\n'),
      node: 'nogit',
    });
    const report = await pull(ctx);
    // As in the git modes: the rest comes home on its branch, not merged, and the user decides.
    expect(report.tasks.map((t) => t.outcome)).toEqual(['withheld']);
    const branch = report.tasks[0]!.branch;
    expect(repo.git('ls-tree', '-r', '--name-only', branch)).not.toMatch(/id_rsa/);
    expect(repo.git('show', `${branch}:notes.md`)).toBe('fine\n');
    const nodeRepo = join(ctx.configDir, 'nodes/nogit/dispatch/proj/tasks/S01/repo');
    expect(readFileSync(join(nodeRepo, 'deploy/id_rsa'), 'utf8')).toMatch(/PRIVATE KEY/);
    const result = JSON.parse(readFileSync(join(nodeRepo, '../result.json'), 'utf8')) as { withheld: unknown };
    expect(result.withheld).toEqual([{ path: 'deploy/id_rsa', rule: expect.any(String) }]);
  });
});
