import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store, dispatch, pullBundles, type CleanupResult } from '@gsync/controller';
import { cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { startHttpsRemote, type HttpsRemote } from './helpers/https-remote.js';
import { setUpSshRemote, type SshRemote } from './helpers/git-remote.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * Plan A (sync_mode "git") against real OpenSSH: a shared bare repository served by a
 * `git-shell` login on its own sshd, which the controller and each node reach with their
 * own keys (the nodes with a deploy key in their ~/.ssh). Code goes out as the task
 * branch on the remote, results come back the same way and are checked in quarantine
 * like bundles; where the remote fails a task travels as a bundle, with an alert.
 */
let world: SshWorld;
let remote: SshRemote;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'n1' }, { name: 'n2' }, { name: 'git' }], 'gsplana');
  remote = setUpSshRemote(world, ['n1', 'n2']);
  process.env.GIT_SSH_COMMAND = remote.sshCommand;
});

afterAll(async () => {
  delete process.env.GIT_SSH_COMMAND;
  await world?.stop();
  cleanupTempDirs();
});

const remoteBranches = (repo: GitRepo, url: string) =>
  repo
    .git('ls-remote', '--heads', url)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[1]);

function setup(repo: GitRepo, project: string, extra: object = {}) {
  const url = remote.create(repo, project);
  const configDir = tempDir('gsync-config-');
  const alerts = join(tempDir('gsync-alerts-'), 'alerts.jsonl');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    {
      ssh_config: world.sshConfig,
      nodes: ['n1', 'n2'].map((name) => ({ name, host: world.node(name).alias, agent })),
      git_config: { auto_cleanup_branches: true },
      alert_command: ['tee', '-a', alerts],
    },
    { [project]: { repo_local: repo.dir, sync_mode: 'git', repo_url: url, ...extra } },
  );
  const ctx = testContext(configDir);
  return { url, ctx, alerts, specs: tempDir('gsync-specs-'), configDir };
}

describe('Plan A: a shared remote over real SSH (git-shell)', () => {
  it('two nodes fetch their task branch from the remote, push back, and both merge; the remote branches are gone after', async () => {
    const repo = gitRepo({ 'schemas/pack.py': 'SCHEMA = 1\n', 'api/pack.py': 'def pack(): pass\n' });
    const { url, ctx, alerts, specs, configDir } = setup(repo, 'alpha');
    const a = await dispatch(ctx, { project: 'alpha', spec: specFile(specs, 'a.md', '# schema\nwrite schemas/pack.py SCHEMA = 2\n'), node: 'n1' });
    const b = await dispatch(ctx, { project: 'alpha', spec: specFile(specs, 'b.md', '# api\nwrite api/pack.py def pack(x): return x\n'), node: 'n2' });
    // The code went through the remote: nothing over the SSH connection but task.json and spec.md.
    expect([a.bundle_bytes, b.bundle_bytes]).toEqual([0, 0]);
    expect(remoteBranches(repo, url)).toEqual(expect.arrayContaining(['refs/heads/task/alpha-S01-n1', 'refs/heads/task/alpha-S02-n2']));
    expect(JSON.parse(readFileSync(join(world.node('n1').home, 'dispatch/alpha/tasks/S01/task.json'), 'utf8')).remote).toEqual({
      url,
      branch: 'refs/heads/task/alpha-S01-n1',
    });

    const report = await pullBundles(ctx, { project: 'alpha', wait: true, interval: 0.2, timeout: 90 });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'merged'],
    ]);
    expect(report.exit_code).toBe(0);
    expect(repo.git('show', 'main:schemas/pack.py')).toBe('SCHEMA = 2\n');
    expect(repo.git('show', 'main:api/pack.py')).toBe('def pack(x): return x\n');
    // Each result came back through the remote, not as a bundle, and no alert was raised.
    for (const id of ['S01', 'S02']) {
      const dir = join(world.node(id === 'S01' ? 'n1' : 'n2').home, `dispatch/alpha/tasks/${id}`);
      expect(JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')).remote).toEqual({ pushed: true });
    }
    expect(existsSync(alerts)).toBe(false);
    // auto_cleanup_branches: gone on the remote and here, main pushed nowhere it was not asked to.
    expect(remoteBranches(repo, url)).toEqual(['refs/heads/main']);
    expect(repo.git('for-each-ref', 'refs/heads/task/')).toBe('');
    const store = new Store(join(configDir, 'gsync.db'));
    expect(store.listTasks('alpha').map((t) => t.downgraded)).toEqual([null, null]);
    store.close();
  });

  it('two tasks over the same lines: the conflict is detected and nothing is overwritten', async () => {
    const repo = gitRepo({ 'config.py': 'PORT = 80\nHOST = "a"\n' });
    const { ctx, specs } = setup(repo, 'beta');
    await dispatch(ctx, { project: 'beta', spec: specFile(specs, 'a.md', '# port\nset config.py 1 PORT = 8080\n'), node: 'n1' });
    await dispatch(ctx, { project: 'beta', spec: specFile(specs, 'b.md', '# port too\nset config.py 1 PORT = 9090\n'), node: 'n2' });
    const report = await pullBundles(ctx, { project: 'beta', wait: true, interval: 0.2, timeout: 90 });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
      ['S01', 'merged'],
      ['S02', 'conflicted'],
    ]);
    expect(report.tasks[1]!.conflict_paths).toEqual(['config.py']);
    expect(repo.git('show', 'main:config.py')).toBe('PORT = 8080\nHOST = "a"\n');
    expect(repo.git('show', 'task/beta-S02-n2:config.py')).toBe('PORT = 9090\nHOST = "a"\n');
    expect(report.exit_code).toBe(3);
  });

  it('a node that loses the remote: its push and its next fetch fail, both tasks travel as bundles, merge, and each raises an alert (stderr, store, report, alert_command)', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const { ctx, alerts, specs, url } = setup(repo, 'gamma');
    try {
      // S01 gets its code from the remote; the remote is gone for n2 before it pushes back.
      const first = await dispatch(ctx, { project: 'gamma', spec: specFile(specs, 'a.md', '# a\nsleep 2\nwrite a.txt from n2\n'), node: 'n2' });
      expect(first.bundle_bytes).toBe(0);
      remote.reach('n2', 1);
      // S02, on a main that moved (so the node's cache lacks its base), cannot even fetch: the node asks for the code, and gets a bundle.
      repo.write('NOTES.md', 'a commit of the user\n');
      repo.commitAll('notes');
      const second = await dispatch(ctx, { project: 'gamma', spec: specFile(specs, 'b.md', '# b\nwrite b.txt from n2\n'), node: 'n2' });
      expect(second.bundle_bytes).toBeGreaterThan(0);
      const report = await pullBundles(ctx, { project: 'gamma', wait: true, interval: 0.2, timeout: 90 });
      expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([
        ['S01', 'merged'],
        ['S02', 'merged'],
      ]);
      expect(repo.git('show', 'main:a.txt')).toBe('from n2\n');
      expect(repo.git('show', 'main:b.txt')).toBe('from n2\n');
      expect(report.tasks[0]!.downgraded).toMatch(/^the node could not push to the shared remote \(.+\); the result came back as a bundle$/);
      expect(report.tasks[1]!.downgraded).toMatch(
        /^n2 could not take the code from the shared remote \(cannot fetch refs\/heads\/task\/gamma-S02-n2 from the shared remote: .+\); it was sent as a bundle$/,
      );
      expect(readFileSync(report.report_path!, 'utf8')).toContain("- downgraded (it travelled another way than the project's mode): the node could not push");
      const said = readFileSync(alerts, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { kind: string; task_id: string; node: string; message: string });
      expect(said.map((s) => [s.kind, s.task_id, s.node])).toEqual([
        ['downgraded', 'S02', 'n2'],
        ['downgraded', 'S01', 'n2'],
      ]);
      expect(ctx.events.filter((e) => e.kind === 'downgraded')).toHaveLength(2);
      // The branches the controller pushed for them are cleaned up after the merge all the same.
      expect(remoteBranches(repo, url)).toEqual(['refs/heads/main']);
    } finally {
      remote.reach('n2');
    }
  });

  it('a project switched between modes keeps working: bundle, then the shared remote, then bundle again', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const { ctx, specs, configDir, url } = setup(repo, 'epsilon');
    const nodes = JSON.parse(readFileSync(join(configDir, 'nodes.json'), 'utf8')) as object;
    const mode = (sync_mode: string) => writeConfig(configDir, nodes, { epsilon: { repo_local: repo.dir, sync_mode, repo_url: url } });
    for (const [i, m] of ['bundle', 'git', 'bundle'].entries()) {
      mode(m);
      const sent = await dispatch(ctx, { project: 'epsilon', spec: specFile(specs, `${i}.md`, `# step ${i}\nwrite step${i}.txt ${m}\n`), node: 'n1' });
      expect(sent.bundle_bytes > 0, m).toBe(m === 'bundle');
      const report = await pullBundles(ctx, { project: 'epsilon', wait: true, interval: 0.2, timeout: 90 });
      expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
      expect(repo.git('show', `main:step${i}.txt`)).toBe(`${m}\n`);
    }
    expect(remoteBranches(repo, url)).toEqual(['refs/heads/main']);
  });

  it('without auto_cleanup_branches the remote branches stay until cleanup, which deletes only those still where the task left them', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const { ctx, specs, configDir, url } = setup(repo, 'eta');
    const nodes = JSON.parse(readFileSync(join(configDir, 'nodes.json'), 'utf8')) as { git_config: object };
    writeConfig(configDir, { ...nodes, git_config: {} }, { eta: { repo_local: repo.dir, sync_mode: 'git', repo_url: url } });
    await dispatch(ctx, { project: 'eta', spec: specFile(specs, 'a.md', '# a\nwrite a.txt a\n'), node: 'n1' });
    await dispatch(ctx, { project: 'eta', spec: specFile(specs, 'b.md', '# b\nwrite b.txt b\n'), node: 'n2' });
    const report = await pullBundles(ctx, { project: 'eta', wait: true, interval: 0.2, timeout: 90 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged', 'merged']);
    expect(remoteBranches(repo, url)).toEqual(['refs/heads/main', 'refs/heads/task/eta-S01-n1', 'refs/heads/task/eta-S02-n2']);
    // Someone pushes more work onto S02's branch on the remote: that branch is theirs now.
    const more = repo.git('commit-tree', 'task/eta-S02-n2^{tree}', '-p', 'task/eta-S02-n2', '-m', 'more').trim();
    repo.git('push', '-q', url, `${more}:refs/heads/task/eta-S02-n2`);

    const run = async (...args: string[]) => JSON.parse((await runCtl(configDir, ['--json', 'cleanup', '--project', 'eta', ...args])).out) as CleanupResult;
    const dry = await run('--dry-run');
    expect(dry.removed.filter((r) => r.what === 'remote_branch').map((r) => r.name)).toEqual(['task/eta-S01-n1']);
    expect(dry.kept.filter((k) => k.what === 'remote_branch').map((k) => [k.name, k.reason])).toEqual([
      ['task/eta-S02-n2', `it moved to ${more.slice(0, 12)} since`],
    ]);
    expect(remoteBranches(repo, url)).toHaveLength(3);
    const real = await run();
    expect(real.removed.filter((r) => r.what === 'remote_branch').map((r) => r.name)).toEqual(['task/eta-S01-n1']);
    expect(remoteBranches(repo, url)).toEqual(['refs/heads/main', 'refs/heads/task/eta-S02-n2']);
    // The task dirs on both nodes are gone as well.
    for (const [node, id] of [
      ['n1', 'S01'],
      ['n2', 'S02'],
    ] as const)
      expect(existsSync(join(world.node(node).home, 'dispatch/eta/tasks', id))).toBe(false);
  });

  it('a remote the controller cannot push to: the task goes as a bundle, with an alert, and merges', async () => {
    const repo = gitRepo({ 'README.md': 'hello\n' });
    const { ctx, alerts, specs, configDir } = setup(repo, 'delta');
    writeConfig(
      configDir,
      {
        ssh_config: world.sshConfig,
        nodes: [{ name: 'n1', host: world.node('n1').alias, agent: ['node', join(world.agents, 'edit.mjs'), '{spec_file}'] }],
        alert_command: ['tee', '-a', alerts],
      },
      { delta: { repo_local: repo.dir, sync_mode: 'git', repo_url: `${remote.alias}:no-such-repo.git` } },
    );
    const sent = await dispatch(ctx, { project: 'delta', spec: specFile(specs, 'a.md', '# a\nwrite a.txt a\n'), node: 'n1' });
    expect(sent.bundle_bytes).toBeGreaterThan(0);
    const report = await pullBundles(ctx, { project: 'delta', wait: true, interval: 0.2, timeout: 90 });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([['S01', 'merged']]);
    const said = readFileSync(alerts, 'utf8').trim().split('\n');
    expect(JSON.parse(said[0]!).message).toMatch(/^the shared remote did not take task\/delta-S01-n1: /);
  });
});

describe('Plan A over HTTPS with a token (git http-backend behind a server that demands it)', () => {
  const TOKEN = `gsync-test-token-${process.pid}-${Date.now()}`;
  let https: HttpsRemote;
  const saved = { ...process.env };

  beforeAll(async () => {
    https = await startHttpsRemote(TOKEN);
    // The token and the certificate live in each side's environment, nowhere else.
    for (const name of ['n1', 'n2']) {
      const n = world.node(name);
      const file = join(n.home, '.ssh', 'environment');
      writeFileSync(file, `GIT_SSL_CAINFO=${https.caFile}\nGITHUB_TOKEN=${TOKEN}\n`);
      chownSync(file, n.uid, n.uid);
    }
    process.env.GIT_SSL_CAINFO = https.caFile;
    process.env.GITHUB_TOKEN = TOKEN;
  });

  afterAll(async () => {
    for (const name of ['n1', 'n2']) writeFileSync(join(world.node(name).home, '.ssh', 'environment'), '');
    process.env.GITHUB_TOKEN = saved.GITHUB_TOKEN;
    if (saved.GITHUB_TOKEN === undefined) delete process.env.GITHUB_TOKEN;
    delete process.env.GIT_SSL_CAINFO;
    await https?.stop();
  });

  /** Every file under `dir` whose bytes hold `needle`, links not followed. */
  function filesHolding(dir: string, needle: string, skip: (path: string) => boolean = () => false): string[] {
    const found: string[] = [];
    const walk = (path: string) => {
      if (skip(path)) return;
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) return;
      if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
      else if (st.isFile() && readFileSync(path).includes(needle)) found.push(path);
    };
    walk(dir);
    return found;
  }

  it('two nodes fetch and push with the token handed over by a credential helper; the token is in no argument and no file gsync writes', async () => {
    const repo = gitRepo({ 'schemas/pack.py': 'SCHEMA = 1\n', 'api/pack.py': 'def pack(): pass\n' });
    const bare = join(https.root, 'zeta.git');
    execFileSync('git', ['init', '-q', '--bare', bare]);
    execFileSync('git', ['-C', bare, 'config', 'http.receivepack', 'true']);
    repo.git('push', '-q', bare, 'main');
    const url = https.url('zeta');
    // The server demands the token: without it, git is turned away (run aside: the server is in this process).
    const turnedAway = await new Promise<number | null>((done) =>
      execFile('git', ['ls-remote', url], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } }, (error) =>
        done(error ? ((error as { code?: number }).code ?? -1) : 0),
      ),
    );
    expect(turnedAway).toBe(128);

    const configDir = tempDir('gsync-config-');
    const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
    writeConfig(
      configDir,
      {
        ssh_config: world.sshConfig,
        github_token_env: 'GITHUB_TOKEN',
        nodes: ['n1', 'n2'].map((name) => ({ name, host: world.node(name).alias, agent })),
        git_config: { auto_cleanup_branches: true },
      },
      { zeta: { repo_local: repo.dir, sync_mode: 'git', repo_url: url } },
    );
    const ctx = testContext(configDir);
    const specs = tempDir('gsync-specs-');

    // Every process argument on this machine, looked at while the whole round trip runs.
    const seen: string[] = [];
    const watch = setInterval(() => {
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          const cmdline = readFileSync(`/proc/${pid}/cmdline`);
          if (cmdline.includes(TOKEN)) seen.push(cmdline.toString().replaceAll('\0', ' '));
        } catch {
          // gone already
        }
      }
    }, 5);
    let report: Awaited<ReturnType<typeof pullBundles>>;
    try {
      const a = await dispatch(ctx, { project: 'zeta', spec: specFile(specs, 'a.md', '# schema\nwrite schemas/pack.py SCHEMA = 2\n'), node: 'n1' });
      const b = await dispatch(ctx, { project: 'zeta', spec: specFile(specs, 'b.md', '# api\nwrite api/pack.py def pack(x): return x\n'), node: 'n2' });
      expect([a.bundle_bytes, b.bundle_bytes]).toEqual([0, 0]);
      report = await pullBundles(ctx, { project: 'zeta', wait: true, interval: 0.2, timeout: 90 });
    } finally {
      clearInterval(watch);
    }
    expect(report.tasks.map((t) => [t.task_id, t.outcome, t.downgraded])).toEqual([
      ['S01', 'merged', undefined],
      ['S02', 'merged', undefined],
    ]);
    expect(repo.git('show', 'main:api/pack.py')).toBe('def pack(x): return x\n');
    for (const id of ['S01', 'S02']) {
      const dir = join(world.node(id === 'S01' ? 'n1' : 'n2').home, `dispatch/zeta/tasks/${id}`);
      expect(JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')).remote).toEqual({ pushed: true });
    }
    expect(https.counts.served).toBeGreaterThan(0);
    expect(https.counts.refused).toBeGreaterThan(0);
    expect(seen).toEqual([]);
    // Nowhere gsync writes: the config dir (store, reports), the repository, the nodes' work roots; nor the remote.
    const homes = ['n1', 'n2'].map((n) => join(world.node(n).home, 'dispatch'));
    for (const dir of [configDir, repo.dir, ...homes, bare]) expect(filesHolding(dir, TOKEN), dir).toEqual([]);
  });
});
