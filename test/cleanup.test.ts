import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store, dispatch, pullBundles, type CleanupResult } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * `gsync-ctl cleanup` on local nodes: what finished tasks left goes (merged branches,
 * gsync's refs, reports, node task dirs, old events), and what must stay stays: unmerged,
 * conflicted and -wip branches, a running task's everything, a branch moved past main.
 */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

function world(gitConfig: object = {}) {
  const repo = gitRepo({ 'shared.txt': 'one\ntwo\nthree\n', 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  const nodes = { nodes: [{ name: 'l1', transport: 'local', agent: EDIT }], git_config: gitConfig };
  writeConfig(configDir, nodes, { proj: { repo_local: repo.dir } });
  const ctx = testContext(configDir);
  const specs = tempDir('gsync-specs-');
  const send = (name: string, text: string) => dispatch(ctx, { project: 'proj', spec: specFile(specs, name, text) });
  const pull = (wait = true) => pullBundles(ctx, { project: 'proj', wait, interval: 0.1, timeout: 60 });
  const taskDirs = () => readdirSync(join(configDir, 'nodes/l1/dispatch/proj/tasks')).filter((n) => !n.startsWith('.'));
  const cleanup = async (...args: string[]) => {
    const r = await runCtl(configDir, ['--json', 'cleanup', ...args]);
    return { code: r.code, err: r.err, result: r.code === 2 ? undefined : (JSON.parse(r.out) as CleanupResult) };
  };
  return { repo, configDir, ctx, send, pull, taskDirs, cleanup, nodes };
}

const names = (r: CleanupResult | undefined, what: string) => (r?.removed ?? []).filter((i) => i.what === what).map((i) => i.name);

describe('gsync-ctl cleanup', () => {
  it('removes what merged tasks left, keeps every unmerged, conflicted, -wip and running thing; --dry-run only says', async () => {
    const w = world();
    await w.send('1.md', '# one\nset shared.txt 2 TWO\n'); // S01: merged
    await w.send('2.md', '# two\nset shared.txt 2 deux\n'); // S02: conflicts with S01
    await w.send('3.md', '# three\nwrite half.txt half\nexit 1\n'); // S03: failed, -wip branch
    await w.pull();
    await w.send('4.md', '# four\nsleep 30\nwrite late.txt late\n'); // S04: still running
    // A merged task whose branch the user moved on afterwards: its new commit is not on main.
    await w.send('5.md', '# five\nwrite five.txt 5\n');
    for (let i = 0; i < 100 && !w.repo.git('ls-tree', '--name-only', 'main').includes('five.txt'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      await pullBundles(w.ctx, { project: 'proj', anyOrder: true });
    }
    w.repo.git('branch', '-f', 'task/proj-S05-l1', w.repo.git('commit-tree', 'main^{tree}', '-p', 'main', '-m', 'more work').trim());
    const branchesBefore = w.repo.git('for-each-ref', '--format=%(refname)', 'refs/heads').trim().split('\n');
    expect(branchesBefore).toEqual(
      expect.arrayContaining(['refs/heads/task/proj-S01-l1', 'refs/heads/task/proj-S02-l1', 'refs/heads/task/proj-S03-l1-wip', 'refs/heads/task/proj-S05-l1']),
    );
    expect(w.taskDirs()).toEqual(['S01', 'S02', 'S03', 'S04', 'S05']);

    const dry = await w.cleanup('--project', 'proj', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.result!.dry_run).toBe(true);
    expect(names(dry.result, 'branch')).toEqual(['task/proj-S01-l1']);
    expect(names(dry.result, 'node_dir').map((n) => n.split('/').pop())).toEqual(['S01', 'S05']);
    expect(dry.result!.bytes).toBeGreaterThan(0);
    expect(dry.result!.kept.map((k) => [k.task_id, k.name, k.reason])).toEqual(
      expect.arrayContaining([['S05', 'task/proj-S05-l1', expect.stringMatching(/is not on main$/)]]),
    );
    // Nothing moved.
    expect(w.repo.git('for-each-ref', '--format=%(refname)', 'refs/heads').trim().split('\n')).toEqual(branchesBefore);
    expect(w.taskDirs()).toEqual(['S01', 'S02', 'S03', 'S04', 'S05']);

    const real = await w.cleanup('--project', 'proj');
    expect(real.code).toBe(0);
    expect(names(real.result, 'branch')).toEqual(['task/proj-S01-l1']);
    const after = w.repo.git('for-each-ref', '--format=%(refname)', 'refs/heads').trim().split('\n');
    expect(after).not.toContain('refs/heads/task/proj-S01-l1');
    for (const kept of ['task/proj-S02-l1', 'task/proj-S03-l1-wip', 'task/proj-S05-l1']) expect(after).toContain(`refs/heads/${kept}`);
    expect(w.repo.git('for-each-ref', 'refs/gsync/incoming/proj/S01-l1')).toBe('');
    // The node: the merged tasks' dirs are gone (S05's dir: the task is merged, only its local branch moved on), the rest stay.
    expect(w.taskDirs()).toEqual(['S02', 'S03', 'S04']);
    // main and the user's work never move in a cleanup.
    expect(w.repo.git('status', '--porcelain')).toBe('');

    const again = await w.cleanup('--project', 'proj');
    expect(names(again.result, 'branch')).toEqual([]);
    expect(names(again.result, 'node_dir')).toEqual([]);
    // S05 is asked about again each time (its branch still holds work that is not on main).
    expect(again.result!.kept.map((k) => k.task_id)).toContain('S05');
  }, 120_000);

  it('--older-than leaves what is newer; a bad age or no project is exit 2', async () => {
    const w = world();
    await w.send('1.md', '# one\nwrite a.txt a\n');
    await w.pull();
    const recent = await w.cleanup('--project', 'proj', '--older-than', '30d');
    expect(recent.result!.removed).toEqual([]);
    expect(w.repo.git('for-each-ref', 'refs/heads/task/proj-S01-l1')).not.toBe('');
    for (const bad of [['--project', 'proj', '--older-than', '5x'], ['--project', 'proj', '--older-than', '30'], [], ['--project', 'proj', '--all']]) {
      const r = await w.cleanup(...bad);
      expect(r.code, bad.join(' ')).toBe(2);
      // Under --json the error is one JSON line, with the exit code in it.
      const error = (JSON.parse(r.err) as { error: { message: string; exit_code: number } }).error;
      expect(error.message).toMatch(/^(--older-than "|name a project|give --project or --all)/);
      expect(error.exit_code).toBe(2);
    }
    const all = await w.cleanup('--all', '--older-than', '0');
    expect(names(all.result, 'branch')).toEqual(['task/proj-S01-l1']);
  });

  it('a node it cannot reach is reported (exit 5) and its dirs are tried again next time', async () => {
    const w = world();
    await w.send('1.md', '# one\nwrite a.txt a\n');
    await w.pull();
    writeConfig(w.configDir, { nodes: [{ name: 'l1', host: '127.0.0.1', port: 1, connect_timeout_seconds: 2 }] }, { proj: { repo_local: w.repo.dir } });
    const cut = await w.cleanup('--project', 'proj');
    expect(cut.code).toBe(5);
    expect(cut.result!.unreachable.map((u) => u.node)).toEqual(['l1']);
    expect(names(cut.result, 'branch')).toEqual(['task/proj-S01-l1']);
    expect(w.taskDirs()).toEqual(['S01']);
    writeConfig(w.configDir, w.nodes, { proj: { repo_local: w.repo.dir } });
    const back = await w.cleanup('--project', 'proj');
    expect(back.code).toBe(0);
    expect(names(back.result, 'node_dir').map((n) => n.split('/').pop())).toEqual(['S01']);
    expect(w.taskDirs()).toEqual([]);
  });

  it('drops events older than retention_days and compacts the store; keeps newer ones', async () => {
    const w = world();
    await w.send('1.md', '# one\nwrite a.txt a\n');
    await w.pull();
    const store = new Store(join(w.configDir, 'gsync.db'));
    const insert = store.db.prepare("INSERT INTO events (at, project, kind, message) VALUES (?, 'proj', 'old', ?)");
    const old = new Date(Date.now() - 40 * 86400_000).toISOString();
    for (let i = 0; i < 2000; i++) insert.run(old, 'x'.repeat(500));
    const recent = store.events('proj').filter((e) => e.kind !== 'old').length;
    store.close();
    const r = await w.cleanup('--project', 'proj', '--older-than', '30d');
    expect(r.result!.events_dropped).toBe(2000);
    expect(r.result!.store_bytes.after).toBeLessThan(r.result!.store_bytes.before);
    const check = new Store(join(w.configDir, 'gsync.db'));
    const left = check.events('proj');
    check.close();
    expect(left.filter((e) => e.kind === 'old')).toEqual([]);
    expect(left.length).toBeGreaterThanOrEqual(recent);
  });

  it('auto_cleanup_branches: a merged task branch goes right after its merge; a conflicted one stays', async () => {
    const w = world({ auto_cleanup_branches: true });
    await w.send('1.md', '# one\nset shared.txt 2 TWO\n');
    await w.send('2.md', '# two\nset shared.txt 2 deux\n');
    const report = await w.pull();
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'conflicted'],
    ]);
    const refs = w.repo.git('for-each-ref', '--format=%(refname)').trim().split('\n');
    expect(refs).not.toContain('refs/heads/task/proj-S01-l1');
    expect(refs).not.toContain('refs/gsync/incoming/proj/S01-l1');
    expect(refs).toContain('refs/heads/task/proj-S02-l1');
    expect(w.repo.git('show', 'main:shared.txt')).toBe('one\nTWO\nthree\n');
  });
});
