import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshError } from '@gsync/core';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { status } from '@gsync/controller';
import { Store } from '@gsync/controller';
import { ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * The seed's acceptance, against real OpenSSH: two sshd nodes on loopback run
 * tasks in parallel and the controller merges both; two tasks over the same
 * lines give a detected conflict; basename twins both arrive intact.
 */
let world: SshWorld;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'n1' }, { name: 'n2' }, { name: 'nogit', withoutGit: true }], 'gse2e');
});

afterAll(async () => {
  await world?.stop();
  cleanupTempDirs();
});

/** Each test uses its own project name, so task dirs on the shared nodes never collide. */
function setup(repo: GitRepo, extraNodes: object[] = [], project = 'shop') {
  const configDir = tempDir('gsync-config-');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  const n2 = world.node('n2');
  writeConfig(
    configDir,
    {
      ssh_config: world.sshConfig,
      nodes: [
        // n1 through an alias in the ssh config, as `ssh n1-alias` would resolve it
        { name: 'n1', host: world.node('n1').alias, agent },
        // n2 with every field spelled out
        {
          name: 'n2',
          host: '127.0.0.1',
          port: n2.port,
          user: n2.user,
          identity_file: world.clientKey,
          known_hosts: world.knownHosts,
          work_root: '~/dispatch',
          agent,
        },
        ...extraNodes,
      ],
    },
    { [project]: { repo_local: repo.dir, main_branch: 'main', sync_mode: 'bundle' } },
  );
  return { configDir, ctx: testContext(configDir), specs: tempDir('gsync-specs-') };
}

describe('Plan B over real SSH', () => {
  it('runs two tasks on two nodes in parallel and merges both, basename twins intact', async () => {
    const repo = gitRepo({ 'schemas/pack.py': 'SCHEMA = 1\n', 'api/pack.py': 'def pack(): pass\n' });
    const { ctx, specs } = setup(repo);
    const base = repo.head();
    const a = await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'a.md', '# schema\nwrite schemas/pack.py SCHEMA = 2\n'), node: 'n1' });
    const b = await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'b.md', '# api\nwrite api/pack.py def pack(x): return x\n'), node: 'n2' });
    expect([a.task_id, a.node, a.branch]).toEqual(['S01', 'n1', 'task/shop-S01-n1']);
    expect([b.task_id, b.node, b.branch]).toEqual(['S02', 'n2', 'task/shop-S02-n2']);
    // The task dir landed where the protocol says, owned by the node's own user.
    const taskDir = join(world.node('n1').home, 'dispatch/shop/tasks/S01');
    expect(readdirSync(taskDir)).toEqual(expect.arrayContaining(['task.json', 'spec.md', 'status.json']));

    const report = await pullBundles(ctx, { project: 'shop', wait: true, interval: 0.2, timeout: 60 });
    expect(report.exit_code).toBe(0);
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    expect(repo.git('show', 'main:schemas/pack.py')).toBe('SCHEMA = 2\n');
    expect(repo.git('show', 'main:api/pack.py')).toBe('def pack(x): return x\n');
    expect(repo.git('rev-list', '--count', `${base}..main`).trim()).toBe('4');
    expect(repo.git('rev-parse', 'task/shop-S01-n1').trim()).toBe(repo.git('rev-parse', 'main^^2').trim());
    // Every step was recorded.
    const store = new Store(join(ctx.configDir, 'gsync.db'));
    const kinds = store.events('shop').map((e) => `${e.task_id ?? '-'}:${e.kind}`);
    store.close();
    expect(kinds).toEqual(expect.arrayContaining(['S01:dispatched', 'S02:dispatched', 'S01:collected', 'S02:collected', 'S01:merged', 'S02:merged']));
    expect(existsSync(join(ctx.configDir, 'reports/shop/merge_report.md'))).toBe(true);

    // Running it again does nothing new.
    const main = repo.head('main');
    const again = await pullBundles(ctx, { project: 'shop' });
    expect(again.tasks).toEqual([]);
    expect(again.exit_code).toBe(0);
    expect(repo.head('main')).toBe(main);
  });

  it('detects two tasks over the same lines as a conflict and leaves main as the first merge left it', async () => {
    const repo = gitRepo({ 'app/config.py': 'TIMEOUT = 30\nRETRIES = 1\n' });
    const { ctx, specs } = setup(repo, [], 'conf');
    await dispatch(ctx, { project: 'conf', spec: specFile(specs, '1.md', '# longer\nset app/config.py 1 TIMEOUT = 60\n'), node: 'n1' });
    await dispatch(ctx, { project: 'conf', spec: specFile(specs, '2.md', '# shorter\nset app/config.py 1 TIMEOUT = 5\n'), node: 'n2' });
    const report = await pullBundles(ctx, { project: 'conf', wait: true, interval: 0.2, timeout: 60 });
    expect(report.exit_code).toBe(3);
    const [first, second] = report.tasks;
    expect(first).toMatchObject({ task_id: 'S01', outcome: 'merged' });
    expect(second).toMatchObject({ task_id: 'S02', outcome: 'conflicted', conflict_paths: ['app/config.py'] });
    expect(repo.head('main')).toBe(first!.merge_commit);
    expect(repo.git('show', 'main:app/config.py')).toBe('TIMEOUT = 60\nRETRIES = 1\n');
    // The conflicted work is kept on its branch, and the checkout is clean.
    expect(repo.git('show', 'task/conf-S02-n2:app/config.py')).toBe('TIMEOUT = 5\nRETRIES = 1\n');
    expect(repo.git('status', '--porcelain')).toBe('');
    const rows = await status(ctx, { project: 'conf' });
    expect(rows.map((r) => [r.task_id, r.node, r.state])).toEqual([
      ['S01', 'n1', 'merged'],
      ['S02', 'n2', 'conflicted'],
    ]);
    // Still conflicted on a second run, and nothing new happens.
    const again = await pullBundles(ctx, { project: 'conf' });
    expect(again.tasks).toEqual([]);
    expect(again.outstanding.map((t) => t.task_id)).toEqual(['S02']);
    expect(again.exit_code).toBe(3);
  });

  it('refuses a node whose host key does not match known_hosts, and leaves nothing behind', async () => {
    const repo = gitRepo();
    const n1 = world.node('n1');
    const wrongKnownHosts = join(world.dir, 'known_hosts_wrong');
    writeFileSync(wrongKnownHosts, `[127.0.0.1]:${n1.port} ${world.node('n2').hostKeyPub}\n`);
    const { ctx, specs } = setup(repo, [
      { name: 'evil', host: '127.0.0.1', port: n1.port, user: n1.user, identity_file: world.clientKey, known_hosts: wrongKnownHosts, work_root: '~/evil' },
    ]);
    const error = await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'x.md', '# x\n'), node: 'evil' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SshError);
    expect((error as SshError).kind).toBe('hostkey');
    expect((error as Error).message).toMatch(/HOST KEY CHANGED.*SHA256:/);
    expect(existsSync(join(n1.home, 'evil'))).toBe(false);
    expect(await status(ctx, { project: 'shop' })).toEqual([]);
  });

  it('stops at an unknown host key unless --accept-new, which records it', async () => {
    const repo = gitRepo();
    const n2 = world.node('n2');
    const emptyKnownHosts = join(tempDir(), 'known_hosts');
    // A file whose last line lacks its newline: the recorded key must not be glued onto it.
    const other = 'other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherHostKeyOtherHostKeyOtherHostKeyOth';
    writeFileSync(emptyKnownHosts, other);
    const node = {
      name: 'fresh',
      host: '127.0.0.1',
      port: n2.port,
      user: n2.user,
      identity_file: world.clientKey,
      known_hosts: emptyKnownHosts,
      agent: ['node', join(world.agents, 'noop.mjs')],
    };
    const { ctx, specs } = setup(repo, [node]);
    const spec = specFile(specs, 'x.md', '# nothing\n');
    await expect(dispatch(ctx, { project: 'shop', spec, node: 'fresh' })).rejects.toThrow(/not known \(SHA256:/);
    const accepted = await dispatch({ ...ctx, acceptNew: true }, { project: 'shop', spec, node: 'fresh' });
    expect(accepted.node).toBe('fresh');
    expect(readFileSync(emptyKnownHosts, 'utf8')).toContain(`[127.0.0.1]:${n2.port} ${n2.hostKeyPub}`);
    expect(readFileSync(emptyKnownHosts, 'utf8').split('\n')[0]).toBe(other);
  });

  it('says clearly when a node is unreachable', async () => {
    const repo = gitRepo();
    const { ctx, specs } = setup(repo, [
      { name: 'down', host: '127.0.0.1', port: 1, user: 'nobody', identity_file: world.clientKey, known_hosts: world.knownHosts, connect_timeout_seconds: 5 },
    ]);
    const error = await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'x.md', '# x\n'), node: 'down' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SshError);
    expect((error as Error).message).toMatch(/node down: cannot connect to 127\.0\.0\.1:1: ECONNREFUSED/);
    expect(await status(ctx, { project: 'shop' })).toEqual([]);
  });

  it('sends a node without git the code as files (the scp mode), says so, and merges its result', async () => {
    const repo = gitRepo();
    const nogit = world.node('nogit');
    const { ctx, specs } = setup(repo, [
      {
        name: 'nogit',
        host: '127.0.0.1',
        port: nogit.port,
        user: nogit.user,
        identity_file: world.clientKey,
        known_hosts: world.knownHosts,
        agent: ['node', join(world.agents, 'edit.mjs'), '{spec_file}'],
      },
    ]);
    await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'x.md', '# x\nwrite from-nogit.txt plain files\n'), node: 'nogit' });
    expect(ctx.events.find((e) => e.kind === 'downgraded')?.message).toBe('S01: nogit has no git; the code was sent as files (the scp mode)');
    const report = await pullBundles(ctx, { project: 'shop', wait: true, interval: 0.2, timeout: 60 });
    expect(report.tasks.map((t) => [t.outcome, t.reason])).toEqual([['merged', undefined]]);
    expect(repo.git('show', 'main:from-nogit.txt')).toBe('plain files\n');
  });

  it('passes a spec full of shell metacharacters to the agent byte for byte', async () => {
    const repo = gitRepo();
    const n1 = world.node('n1');
    const { ctx, specs } = setup(repo, [
      { name: 'echo', host: n1.alias, work_root: '~/echo', agent: ['node', join(world.agents, 'echo-argv.mjs'), '{spec}', '--file={spec_file}'] },
    ]);
    const text = `# $(touch /tmp/pwned) \`id\` ; rm -rf ~ && echo "it's" | cat\n'quoted' $HOME * ? [a] {b} \\ \n`;
    await dispatch(ctx, { project: 'shop', spec: specFile(specs, 'evil.md', text), node: 'echo' });
    const report = await pullBundles(ctx, { project: 'shop', wait: true, interval: 0.2, timeout: 60 });
    expect(report.tasks[0]).toMatchObject({ outcome: 'merged' });
    const argv = JSON.parse(repo.git('show', 'main:argv.json')) as string[];
    expect(argv[0]).toBe(text);
    expect(argv[1]).toBe(`--file=${join(n1.home, 'echo/shop/tasks/S01/spec.md')}`);
    expect(execFileSync('ls', ['-a', n1.home], { encoding: 'utf8' })).not.toMatch(/pwned/);
  });
});

describe('the merge queue over real SSH', () => {
  it('gates on the tests, resolves a conflict with an agent on another node, and keeps the dirty checkout byte for byte', async () => {
    const repo = gitRepo({ 'app/config.py': 'TIMEOUT = 30\nRETRIES = 1\n', 'notes.md': 'notes\n' });
    repo.write('notes.md', 'notes\nmy uncommitted line\n');
    const { configDir, specs } = setup(repo, [], 'queue');
    const nodes = JSON.parse(readFileSync(join(configDir, 'nodes.json'), 'utf8')) as { agents?: object };
    nodes.agents = { fixer: ['node', join(world.agents, 'resolve.mjs'), '{spec_file}'] };
    writeFileSync(join(configDir, 'nodes.json'), JSON.stringify(nodes));
    writeConfig(configDir, nodes, {
      queue: {
        repo_local: repo.dir,
        verify_command: ['node', join(ROOT, 'fixtures/verify/no-broken.mjs')],
        verify_readonly_paths: [join(ROOT, 'fixtures')],
        conflict_handler: 'fixer',
      },
    });
    const ctx = testContext(configDir);
    await dispatch(ctx, { project: 'queue', spec: specFile(specs, '1.md', '# longer timeout\nset app/config.py 1 TIMEOUT = 60\n'), node: 'n1' });
    await dispatch(ctx, { project: 'queue', spec: specFile(specs, '2.md', '# break it\nwrite app/broken.py BROKEN\n'), node: 'n2' });
    await dispatch(ctx, { project: 'queue', spec: specFile(specs, '3.md', '# shorter timeout\nset app/config.py 1 TIMEOUT = 5\n'), node: 'n2' });
    const report = await pullBundles(ctx, { project: 'queue', wait: true, interval: 0.2, timeout: 90 });

    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'rejected'],
      ['S03', 'resolved'],
      ['S04', 'merged'],
    ]);
    expect(report.tasks[3]).toMatchObject({ resolves: 'S03' });
    // Foreseen before it merged: against S01 if both were collected in one round, else against main.
    const foreseen = [...report.forecast!.pairs.map((p) => `${p.a}x${p.b}:${p.paths}`), ...report.forecast!.with_main.map((m) => `${m.task_id}:${m.paths}`)];
    expect(foreseen.filter((f) => f.includes('S03'))).toEqual([expect.stringMatching(/^(S01xS03|S03):app\/config\.py$/)]);
    expect(repo.git('show', 'main:app/config.py')).toBe('TIMEOUT = 60\nTIMEOUT = 5\nRETRIES = 1\n');
    expect(repo.git('ls-tree', '-r', '--name-only', 'main')).not.toContain('app/broken.py');
    expect(readFileSync(join(repo.dir, 'notes.md'), 'utf8')).toBe('notes\nmy uncommitted line\n');
    expect(report.exit_code).toBe(3);
    expect(report.tasks.filter((t) => t.outcome === 'rejected').map((t) => t.task_id)).toEqual(['S02']);
  });
});
