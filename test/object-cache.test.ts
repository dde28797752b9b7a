import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles, resolve } from '@gsync/controller';
import { AGENTS, NODE_TOOL, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * The node's object cache: a re-dispatch sends only what changed, and whatever happens
 * to main, to the controller's objects or to the cache itself, every task still gets
 * its whole base and merges as a full dispatch would.
 */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

/** A repo with enough history that a full bundle dwarfs the change of one commit. */
function bigRepo(): GitRepo {
  const files: Record<string, string> = {};
  for (let i = 0; i < 200; i++) files[`src/mod${i}.py`] = `# module ${i}\n${'x = 1\n'.repeat(50)}`;
  const repo = gitRepo(files);
  for (let c = 0; c < 5; c++) {
    for (let i = c; i < 200; i += 5) repo.write(`src/mod${i}.py`, `# module ${i} v${c}\n${`y${c} = ${i}\n`.repeat(60)}`);
    repo.commitAll(`history ${c}`);
  }
  return repo;
}

function setup(repo: GitRepo, projects: Record<string, string> = { proj: repo.dir }) {
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: EDIT }] },
    Object.fromEntries(Object.entries(projects).map(([name, dir]) => [name, { repo_local: dir }])),
  );
  const ctx = testContext(configDir);
  return { ctx, specs: tempDir('gsync-specs-'), cache: (project = 'proj') => join(configDir, 'nodes/l1/dispatch', project, 'cache.git') };
}

type Ctx = ReturnType<typeof setup>;

async function send(w: Ctx, text: string, project = 'proj', task?: string) {
  return dispatch(w.ctx, { project, spec: specFile(w.specs, `${Math.random()}.md`, text), node: 'l1', ...(task ? { task } : {}) });
}

async function mergeAll(w: Ctx, project = 'proj') {
  const report = await pullBundles(w.ctx, { project, wait: true, interval: 0.1, timeout: 60 });
  expect(report.tasks.map((t) => `${t.task_id}:${t.outcome}`).filter((t) => !t.endsWith(':merged'))).toEqual([]);
  expect(report.exit_code).toBe(0);
  return report;
}

describe('the object cache on a node', () => {
  it('sends the whole history once, then only what changed, and nothing when main has not moved', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    const first = await send(w, 'One\n\nwrite a.txt one\n');
    await mergeAll(w);
    expect(first.bundle_bytes).toBeGreaterThan(20_000);

    // main moved by the merge of S01 only: the node has S01's result and the old base.
    repo.write('README.md', 'changed on main\n');
    repo.commitAll('a change on main');
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    expect(second.bundle_bytes).toBeGreaterThan(0);
    expect(second.bundle_bytes).toBeLessThan(first.bundle_bytes / 20);
    await mergeAll(w);

    // Nothing new on main since the node last saw it, apart from the merge the node itself made: at most that merge commit.
    const third = await send(w, 'Three\n\nwrite c.txt three\n');
    expect(third.bundle_bytes).toBeLessThan(2_000);
    const fourth = await send(w, 'Four\n\nwrite d.txt four\n');
    expect(fourth.bundle_bytes).toBe(0);
    await mergeAll(w);
    for (const f of ['a.txt', 'b.txt', 'c.txt', 'd.txt']) expect(repo.git('show', `main:${f}`)).not.toBe('');
  });

  it('a resolution on the node that ran the conflicted task gets a thin bundle without that branch, and merges', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    writeConfig(
      w.ctx.configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: EDIT }], agents: { resolve: ['node', join(AGENTS, 'resolve.mjs'), '{spec_file}'] } },
      { proj: { repo_local: repo.dir } },
    );
    const first = await send(w, 'One\n\nwrite a.txt one\n');
    await send(w, 'Two\n\nwrite a.txt two\n');
    const pulled = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(pulled.tasks.map((t) => `${t.task_id}:${t.outcome}`)).toEqual(['S01:merged', 'S02:conflicted']);
    // The node's cache holds S02's branch (it ran there): the bundle leaves that tip out, and the node pins it from its cache.
    const fixing = await resolve(w.ctx, { project: 'proj', task: 'S02', agent: 'resolve' });
    expect(fixing.warnings).toEqual([]);
    expect(fixing.bundle_bytes).toBeLessThan(first.bundle_bytes / 20);
    const merged = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(merged.tasks.map((t) => `${t.task_id}:${t.outcome}`)).toEqual([`${fixing.task_id}:merged`]);
    expect(repo.git('show', 'main:a.txt')).toBe('one\ntwo\n');
  });

  it('keeps working when main is reset backwards and rewritten, even after the controller prunes the old commits', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'One\n\nwrite a.txt one\n');
    await mergeAll(w);
    // Force-push style: main goes back two commits and gets a new history of its own.
    repo.git('reset', '-q', '--hard', 'main~3');
    repo.write('rewritten.txt', 'new history\n');
    repo.commitAll('rewritten');
    repo.git('branch', '-D', 'task/proj-S01-l1');
    repo.git('reflog', 'expire', '--expire=now', '--all');
    repo.git('gc', '-q', '--prune=now');
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    expect(second.bundle_bytes).toBeGreaterThan(0);
    await mergeAll(w);
    expect(repo.git('show', 'main:b.txt')).toBe('two\n');
    expect(repo.git('show', 'main:rewritten.txt')).toBe('new history\n');
  });

  it('sends everything again when the cache was deleted', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    const first = await send(w, 'One\n\nwrite a.txt one\n');
    await mergeAll(w);
    rmSync(w.cache(), { recursive: true, force: true });
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    expect(second.bundle_bytes).toBeGreaterThan(first.bundle_bytes * 0.9);
    await mergeAll(w);
    expect(repo.git('show', 'main:b.txt')).toBe('two\n');
  });

  it('never trusts a damaged cache: a truncated pack gets the whole history into a new cache', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'One\n\nwrite a.txt one\n');
    await mergeAll(w);
    const packs = join(w.cache(), 'objects/pack');
    for (const f of readdirSync(packs).filter((f) => f.endsWith('.pack'))) truncateSync(join(packs, f), 1000);
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    expect(second.bundle_bytes).toBeGreaterThan(20_000);
    await mergeAll(w);
    expect(repo.git('show', 'main:b.txt')).toBe('two\n');
    const dispatchDir = join(w.cache(), '..');
    expect(readdirSync(dispatchDir).some((f) => f.startsWith('cache.git.damaged-'))).toBe(true);
    execFileSync('git', ['fsck', '--no-dangling'], { cwd: w.cache(), stdio: 'pipe' });
  });

  it('lies about its cache in vain: a node that lacks what it claimed asks for everything', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'One\n\nwrite a.txt one\n');
    await mergeAll(w);
    // The cache names a newer main whose commit and tree it has, but nothing below them.
    repo.write('README.md', 'moved\n');
    repo.commitAll('main moves');
    const cache = w.cache();
    const copy = (type: string, oid: string) =>
      execFileSync('git', ['hash-object', '-w', '--literally', '-t', type, '--stdin'], {
        cwd: cache,
        input: execFileSync('git', ['cat-file', type, oid], { cwd: repo.dir }),
      });
    copy('tree', repo.head('main^{tree}'));
    copy('commit', repo.head('main'));
    execFileSync('git', ['update-ref', 'refs/heads/claimed', repo.head('main')], { cwd: cache });
    repo.write('README.md', 'moved again\n');
    repo.commitAll('main moves again');
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    await mergeAll(w);
    expect(second.bundle_bytes).toBeGreaterThan(20_000);
    expect(w.ctx.events.some((e) => e.kind === 'cache_miss')).toBe(true);
    expect(repo.git('show', 'main:b.txt')).toBe('two\n');
  });

  it.each([
    ['with no bundle to send (main has not moved)', false],
    ['with a thin bundle (main moved)', true],
  ])('never trusts a cache that lost an object below a commit it holds: %s, the node asks for everything', async (_, moved) => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'One\n\nwrite a.txt one\n');
    const status = join(w.cache(), '../tasks/S01/status.json');
    const deadline = Date.now() + 60_000;
    while (!existsSync(status) || !['done', 'failed'].includes((JSON.parse(readFileSync(status, 'utf8')) as { state: string }).state)) {
      if (Date.now() > deadline) throw new Error('S01 never finished');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Every object loose, then one blob of main's tree gone: the commit and its tree still resolve.
    const cache = w.cache();
    const packs = join(cache, 'objects/pack');
    for (const f of readdirSync(packs).filter((f) => f.endsWith('.pack'))) {
      const moved = join(tempDir('gsync-pack-'), f);
      execFileSync('mv', [join(packs, f), moved]);
      rmSync(join(packs, f.replace(/\.pack$/, '.idx')), { force: true });
      execFileSync('git', ['unpack-objects', '-q'], { cwd: cache, input: readFileSync(moved) });
    }
    const blob = repo.head('main:src/mod7.py');
    rmSync(join(cache, 'objects', blob.slice(0, 2), blob.slice(2)));
    if (moved) {
      repo.write('README.md', 'moved\n');
      repo.commitAll('main moves');
    }
    const second = await send(w, 'Two\n\nwrite b.txt two\n');
    expect(second.bundle_bytes).toBeGreaterThan(20_000);
    expect(w.ctx.events.some((e) => e.kind === 'cache_miss')).toBe(true);
    await mergeAll(w);
    expect(repo.git('show', 'main:b.txt')).toBe('two\n');
    expect(repo.git('show', 'main:a.txt')).toBe('one\n');
  });

  it('keeps two projects on one node apart', async () => {
    const a = bigRepo();
    const b = gitRepo({ 'other.txt': 'other project\n' });
    const w = setup(a, { proj: a.dir, other: b.dir });
    await send(w, 'A\n\nwrite a.txt a\n', 'proj');
    await send(w, 'B\n\nwrite b.txt b\n', 'other');
    await mergeAll(w, 'proj');
    await mergeAll(w, 'other');
    expect(a.git('show', 'main:a.txt')).toBe('a\n');
    expect(b.git('show', 'main:b.txt')).toBe('b\n');
    expect(existsSync(w.cache('proj'))).toBe(true);
    expect(existsSync(w.cache('other'))).toBe(true);
    expect(() => execFileSync('git', ['cat-file', '-e', `${b.head('main')}^{commit}`], { cwd: w.cache('proj'), stdio: 'pipe' })).toThrow();
  });

  it('serves a second controller on the same node: what it cannot vouch for is sent again', async () => {
    const repo = bigRepo();
    const w1 = setup(repo);
    const clone = tempDir('gsync-clone-');
    execFileSync('git', ['clone', '-q', repo.dir, clone]);
    const other = gitRepo({ 'unrelated.txt': 'x\n' });
    // A second controller, its own store, the same node folder and the same project name, another repository.
    const configDir = tempDir('gsync-config-');
    writeConfig(
      configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: EDIT, home: join(w1.ctx.configDir, 'nodes/l1') }] },
      { proj: { repo_local: other.dir } },
    );
    const w2 = { ...w1, ctx: testContext(configDir) };
    await send(w1, 'One\n\nwrite a.txt one\n', 'proj', 'A01');
    const theirs = await send(w2, 'Theirs\n\nwrite t.txt t\n', 'proj', 'B01');
    expect(theirs.bundle_bytes).toBeGreaterThan(0);
    await mergeAll(w1);
    await mergeAll(w2);
    expect(repo.git('show', 'main:a.txt')).toBe('one\n');
    expect(other.git('show', 'main:t.txt')).toBe('t\n');
  });

  it('a running task is untouched while another dispatch updates the cache and the cache is collected', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'Slow\n\nsleep 3\nwrite slow.txt slow\n');
    repo.write('README.md', 'moved while S01 runs\n');
    repo.commitAll('main moves');
    await send(w, 'Fast\n\nwrite fast.txt fast\n');
    execFileSync('git', ['gc', '-q', '--prune=now'], { cwd: w.cache() });
    await mergeAll(w);
    expect(repo.git('show', 'main:slow.txt')).toBe('slow\n');
    expect(repo.git('show', 'main:fast.txt')).toBe('fast\n');
  });

  it('replaces an older gsync-node on the node before it uses the cache', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    // What an older build answers: a hello without a cache, and no idea of what a thin bundle is.
    const tool = join(w.ctx.configDir, 'nodes/l1/dispatch/.gsync/gsync-node.mjs');
    mkdirSync(dirname(tool), { recursive: true });
    writeFileSync(
      tool,
      `if (process.argv[2] === 'hello') console.log(JSON.stringify({ version: '0.0.1', protocol: 1, sha256: 'old', node: process.version, git: 'git version 2' }));\nelse process.exit(1);\n`,
    );
    const first = await send(w, 'One\n\nwrite a.txt one\n');
    expect(first.tool_installed).toBe(true);
    expect(readFileSync(tool)).toEqual(readFileSync(NODE_TOOL));
    await mergeAll(w);
    expect(repo.git('show', 'main:a.txt')).toBe('one\n');
  });

  it('costs a task its checkout, not the history', async () => {
    const repo = bigRepo();
    const w = setup(repo);
    await send(w, 'One\n\nwrite a.txt one\n');
    await send(w, 'Two\n\nwrite b.txt two\n');
    await mergeAll(w);
    const du = (dir: string) => Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
    const tasks = join(w.cache(), '..', 'tasks');
    const checkout = du(join(tasks, 'S02', 'repo')) - statSync(join(tasks, 'S02', 'repo', '.git')).size;
    const history = du(join(w.cache(), 'objects'));
    expect(du(join(tasks, 'S02'))).toBeLessThan(checkout * 1.5 + 64 * 1024);
    expect(history).toBeGreaterThan(0);
  });
});
