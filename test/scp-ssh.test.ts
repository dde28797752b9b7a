import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, dispatch, pullBundles } from '@gsync/controller';
import { cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * The scp mode (sync_mode "scp") against real OpenSSH, the request's acceptance list:
 * two nodes — `bare` has no git at all on its PATH — run tasks in parallel and both
 * merge; two tasks over the same lines are a conflict and nothing is overwritten; a
 * project switched between modes keeps working, with a task in flight across each
 * switch; and a node without git in a git-mode project gets files, with an alert.
 */
let world: SshWorld;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'bare', withoutGit: true }, { name: 'full' }], 'gsscp');
});

afterAll(async () => {
  await world?.stop();
  cleanupTempDirs();
});

function setup(repo: GitRepo, project: string, syncMode: string, extra: object = {}) {
  const configDir = tempDir('gsync-config-');
  const alerts = join(tempDir('gsync-alerts-'), 'alerts.jsonl');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  const nodes = {
    ssh_config: world.sshConfig,
    nodes: ['bare', 'full'].map((name) => ({ name, host: world.node(name).alias, agent })),
    alert_command: ['tee', '-a', alerts],
  };
  const mode = (sync_mode: string) => writeConfig(configDir, nodes, { [project]: { repo_local: repo.dir, sync_mode, ...extra } });
  mode(syncMode);
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-'), alerts, configDir, mode };
}

const pull = (ctx: ReturnType<typeof testContext>, project: string) => pullBundles(ctx, { project, wait: true, interval: 0.2, timeout: 90 });

describe('the scp mode over real SSH', () => {
  it('two nodes, one without git, work in parallel; files come back under their full paths and both merge', async () => {
    const repo = gitRepo({ 'schemas/pack.py': 'SCHEMA = 1\n', 'api/pack.py': 'def pack(): pass\n', 'old.txt': 'old\n' });
    const { ctx, specs, alerts } = setup(repo, 'alpha', 'scp');
    const a = await dispatch(ctx, {
      project: 'alpha',
      spec: specFile(specs, 'a.md', '# schema\nwrite schemas/pack.py SCHEMA = 2\ndelete old.txt\n'),
      node: 'bare',
    });
    const b = await dispatch(ctx, { project: 'alpha', spec: specFile(specs, 'b.md', '# api\nwrite api/pack.py def pack(x): return x\n'), node: 'full' });
    // The code went as files: the tar of main's tree, on each node, and no git repository there.
    expect(a.bundle_bytes).toBeGreaterThan(0);
    expect(b.bundle_bytes).toBe(a.bundle_bytes);
    const task = join(world.node('bare').home, 'dispatch/alpha/tasks/S01');
    expect(JSON.parse(readFileSync(join(task, 'task.json'), 'utf8')).tree.file.name).toBe('tree.tar');
    const report = await pull(ctx, 'alpha');
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    expect(report.exit_code).toBe(0);
    expect(repo.git('show', 'main:schemas/pack.py')).toBe('SCHEMA = 2\n');
    expect(repo.git('show', 'main:api/pack.py')).toBe('def pack(x): return x\n');
    expect(repo.git('ls-tree', 'main', 'old.txt')).toBe('');
    expect(existsSync(join(task, 'repo/.git'))).toBe(false);
    expect(existsSync(join(world.node('bare').home, 'dispatch/alpha/cache.git'))).toBe(false);
    // The project's own mode: nothing was downgraded.
    expect(existsSync(alerts)).toBe(false);
  });

  it('two tasks over the same lines: the conflict is detected and nothing is overwritten', async () => {
    const repo = gitRepo({ 'config.py': 'PORT = 80\nHOST = "a"\n' });
    const { ctx, specs } = setup(repo, 'beta', 'scp');
    await dispatch(ctx, { project: 'beta', spec: specFile(specs, 'a.md', '# port\nset config.py 1 PORT = 8080\n'), node: 'bare' });
    await dispatch(ctx, { project: 'beta', spec: specFile(specs, 'b.md', '# port too\nset config.py 1 PORT = 9090\n'), node: 'full' });
    const report = await pull(ctx, 'beta');
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'conflicted'],
    ]);
    expect(report.tasks[1]!.conflict_paths).toEqual(['config.py']);
    expect(repo.git('show', 'main:config.py')).toBe('PORT = 8080\nHOST = "a"\n');
    expect(repo.git('show', 'task/beta-S02-full:config.py')).toBe('PORT = 9090\nHOST = "a"\n');
    expect(report.exit_code).toBe(3);
  });

  it('a project switched between modes keeps working, with a task in flight across each switch: bundle, scp, bundle', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const { ctx, specs, mode } = setup(repo, 'gamma', 'bundle');
    const inFlight = (i: number, m: string) => specFile(specs, `${i}.md`, `# step ${i}\nsleep 1\nwrite step${i}.txt ${m}\n`);
    await dispatch(ctx, { project: 'gamma', spec: inFlight(0, 'bundle'), node: 'full' });
    mode('scp');
    await dispatch(ctx, { project: 'gamma', spec: inFlight(1, 'scp'), node: 'full' });
    // The bundle task comes back as a bundle though the project is in the scp mode now.
    let report = await pull(ctx, 'gamma');
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    await dispatch(ctx, { project: 'gamma', spec: inFlight(2, 'scp'), node: 'full' });
    mode('bundle');
    await dispatch(ctx, { project: 'gamma', spec: inFlight(3, 'bundle'), node: 'full' });
    report = await pull(ctx, 'gamma');
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S03', 'merged'],
      ['S04', 'merged'],
    ]);
    for (const [i, m] of ['bundle', 'scp', 'scp', 'bundle'].entries()) expect(repo.git('show', `main:step${i}.txt`)).toBe(`${m}\n`);
    const node = (id: string) => JSON.parse(readFileSync(join(world.node('full').home, `dispatch/gamma/tasks/${id}/task.json`), 'utf8')) as object;
    expect(['S01', 'S02', 'S03', 'S04'].map((id) => ('tree' in node(id) ? 'files' : 'bundle'))).toEqual(['bundle', 'files', 'files', 'bundle']);
  });

  it('a node without git in a shared-remote project gets the code as files, with an alert, and its result merges', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const url = join(tempDir('gsync-remote-'), 'delta.git');
    repo.git('init', '-q', '--bare', url);
    const { ctx, specs, alerts, configDir } = setup(repo, 'delta', 'git', { repo_url: url });
    await dispatch(ctx, { project: 'delta', spec: specFile(specs, 'a.md', '# a\nwrite a.txt from bare\n'), node: 'bare' });
    const report = await pull(ctx, 'delta');
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'merged']]);
    expect(readFileSync(report.report_path!, 'utf8')).toContain(
      "- downgraded (it travelled another way than the project's mode): bare has no git; the code was sent as files (the scp mode)",
    );
    expect(repo.git('show', 'main:a.txt')).toBe('from bare\n');
    const said = readFileSync(alerts, 'utf8').trim().split('\n');
    expect(said).toHaveLength(1);
    expect(JSON.parse(said[0]!)).toMatchObject({ kind: 'downgraded', node: 'bare', message: 'bare has no git; the code was sent as files (the scp mode)' });
    const store = new Store(join(configDir, 'gsync.db'));
    expect(store.listTasks('delta').map((t) => t.downgraded)).toEqual(['bare has no git; the code was sent as files (the scp mode)']);
    store.close();
    // Nothing went through the remote.
    expect(repo.git('ls-remote', url)).toBe('');
  });
});
