import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { runCtl, specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * The test gate runs code a node sent (the result may rewrite the test script). Here a
 * result does exactly that and attacks everything it can name: the real repository's
 * refs and files, the config dir, a file outside its scratch dir, the user's
 * credentials and the network. Confined, every attempt fails; unconfined (the opt-in),
 * the same script reaches them, which shows the attack is real.
 */
afterAll(cleanupTempDirs);

const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

let server: Server;
let connections = 0;
let port = 0;
beforeAll(async () => {
  server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as { port: number }).port;
  return () => new Promise<void>((done) => server.close(() => done()));
});

interface World {
  repo: GitRepo;
  configDir: string;
  home: string;
  outside: string;
  ctx: ReturnType<typeof testContext>;
  specs: string;
}

function world(project: object = {}, env: NodeJS.ProcessEnv = {}): World {
  const repo = gitRepo({ 'test.sh': 'echo all good; exit 0\n', 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  const home = tempDir('gsync-home-');
  writeFileSync(join(home, '.git-credentials'), 'https://user:CANARY-TOKEN@example.invalid\n');
  const outside = tempDir('gsync-outside-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: EDIT }] },
    { proj: { repo_local: repo.dir, verify_command: ['sh', 'test.sh'], ...project } },
  );
  const ctx = testContext(configDir, { env: { ...process.env, SSH_AUTH_SOCK: '', HOME: home, ...env } });
  return { repo, configDir, home, outside, ctx, specs: tempDir('gsync-specs-') };
}

/** One line of sh (the edit agent writes it as the new test.sh): each attempt that works prints a word. */
function attack(w: World): string {
  const R = w.repo.dir;
  return [
    `git --git-dir=${R}/.git update-ref refs/heads/main HEAD~1 2>/dev/null && echo MOVED-MAIN`,
    `git --git-dir=${R}/.git branch planted HEAD 2>/dev/null && echo PLANTED`,
    'A=$(cat .git/objects/info/alternates 2>/dev/null)',
    'git --git-dir="${A%/objects}" branch planted2 HEAD 2>/dev/null && echo PLANTED-VIA-ALTERNATES',
    'echo owned > "${A%/.git/objects}/pwned.txt" 2>/dev/null && echo WROTE-REPO-VIA-ALTERNATES',
    `echo owned > ${R}/pwned.txt 2>/dev/null && echo WROTE-REPO`,
    `echo owned > ${w.configDir}/pwned.txt 2>/dev/null && echo WROTE-CONFIG`,
    `echo owned > ${w.outside}/pwned.txt 2>/dev/null && echo WROTE-OUTSIDE`,
    `ls ${R} 2>/dev/null | grep -q README && echo SAW-REPO`,
    `grep -h CANARY ${w.home}/.git-credentials 2>/dev/null && echo READ-CREDENTIALS`,
    `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>{console.log('REACHED-NETWORK');process.exit(0)}).on('error',()=>process.exit(0))"`,
    'echo attack-finished',
    'exit 0',
  ].join('; ');
}

const GOT_THROUGH = ['MOVED-MAIN', 'PLANTED', 'WROTE-REPO', 'WROTE-CONFIG', 'WROTE-OUTSIDE', 'SAW-REPO', 'READ-CREDENTIALS', 'REACHED-NETWORK', 'CANARY'];

describe('the confined test gate', () => {
  it('a result whose test script attacks the real repo, the config dir, the credentials and the network gets nowhere', async () => {
    const w = world();
    const before = w.repo.head('main');
    connections = 0;
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', `# make the tests "faster"\nwrite test.sh ${attack(w)}\n`) });
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });

    const task = report.tasks[0]!;
    const log = readFileSync(task.verify!.log, 'utf8');
    expect(log).toContain('attack-finished');
    for (const word of GOT_THROUGH) expect(log).not.toContain(word);
    // The gate passed (the script exits 0), so the task merged; main moved forward, by gsync only.
    expect(task.outcome).toBe('merged');
    expect(w.repo.head('main')).toBe(task.merge_commit);
    expect(w.repo.head('main^1')).toBe(before);
    // Only gsync's own branch is new.
    expect(w.repo.git('for-each-ref', '--format=%(refname)', 'refs/heads').trim().split('\n')).toEqual(['refs/heads/main', 'refs/heads/task/proj-S01-l1']);
    for (const dir of [w.repo.dir, w.configDir, w.outside]) expect(existsSync(join(dir, 'pwned.txt'))).toBe(false);
    expect(connections).toBe(0);
  });

  it('unconfined (the explicit opt-in) the same script does reach the credentials, the config dir and outside files', async () => {
    const w = world({ verify_isolation: 'none' });
    connections = 0;
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', `# make the tests "faster"\nwrite test.sh ${attack(w)}\n`) });
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    const log = readFileSync(join(w.configDir, 'reports', 'proj', report.tasks[0]!.task_id, 'verify.log'), 'utf8');
    for (const word of ['READ-CREDENTIALS', 'WROTE-CONFIG', 'WROTE-OUTSIDE', 'SAW-REPO', 'REACHED-NETWORK']) expect(log).toContain(word);
    expect(existsSync(join(w.outside, 'pwned.txt'))).toBe(true);
    expect(connections).toBeGreaterThan(0);
  });

  it('where the sandbox cannot run, dispatch and pull refuse with exit 2 and the fix, and nothing is sent or merged', async () => {
    const w = world();
    const missing = { GSYNC_BWRAP: join(w.outside, 'no-such-bwrap') };
    const spec = specFile(w.specs, 'a.md', '# a\nwrite a.txt a\n');
    const before = w.repo.head('main');

    const sent = await runCtl(w.configDir, ['dispatch', '--project', 'proj', '--spec', spec], missing);
    expect(sent.code).toBe(2);
    expect(sent.err).toMatch(/proj\.verify_isolation: the test gate runs in a bubblewrap sandbox, but .*no-such-bwrap is not installed; install bubblewrap/);
    expect(sent.err).toContain('"verify_isolation": "none"');
    expect(sent.err.trim().split('\n')).toHaveLength(1);

    // Dispatched while the sandbox worked, pulled where it does not: nothing merges, the result waits.
    await dispatch(w.ctx, { project: 'proj', spec });
    const pulled = await runCtl(w.configDir, ['pull', '--project', 'proj', '--wait', '--timeout', '60'], missing);
    expect(pulled.code).toBe(2);
    expect(pulled.err).toContain('install bubblewrap');
    expect(w.repo.head('main')).toBe(before);

    const after = await runCtl(w.configDir, ['pull', '--project', 'proj', '--wait', '--timeout', '60']);
    expect(after.code).toBe(0);
    expect(w.repo.git('ls-tree', '--name-only', 'main')).toContain('a.txt');
  });

  it('a sandboxed gate that runs too long is killed with everything it started, and git works inside', async () => {
    const marker = `gsync-gate-sleeper-${process.pid}`;
    const w = world({
      verify_command: [
        'sh',
        '-c',
        `git log -1 --format=%s HEAD^2; git status --porcelain | wc -l; node -e 'setTimeout(() => {}, 300000)' ${marker} & sleep 300`,
      ],
      verify_timeout_seconds: 2,
    });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# add a\nwrite a.txt a\n') });
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    const task = report.tasks[0]!;
    expect(task.outcome).toBe('rejected');
    expect(task.reason).toBe('the merged tree failed the test gate: verify_command ran longer than 2s and was killed');
    // The borrowed objects are readable: the task's commit is there, the checkout clean.
    expect(task.verify!.tail).toBe('task/S01: add a\n0');
    const survivors = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' });
    expect(survivors.stdout).toBe('');
    expect(survivors.status).toBe(1);
  });

  it('a gate that prints without end costs at most 32 MiB of log, and still says how it ended', async () => {
    const w = world({ verify_command: ['sh', '-c', 'head -c 200000000 /dev/zero | tr "\\0" x; exit 1'] });
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 'a.md', '# add a\nwrite a.txt a\n') });
    const report = await pullBundles(w.ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    const task = report.tasks[0]!;
    expect(task.outcome).toBe('rejected');
    expect(task.reason).toBe('the merged tree failed the test gate: verify_command exited with code 1');
    const size = statSync(task.verify!.log).size;
    expect(size).toBeGreaterThanOrEqual(32 * 1024 * 1024);
    expect(size).toBeLessThan(32 * 1024 * 1024 + 200);
    expect(task.verify!.tail).toContain('[gsync: the output went on past 33554432 bytes; the rest was not kept]');
  });

  it('a read-only path that does not exist is named before anything is sent', async () => {
    const w = world({ verify_readonly_paths: ['/no/such/toolchain'] });
    const sent = await runCtl(w.configDir, ['dispatch', '--project', 'proj', '--spec', specFile(w.specs, 'a.md', '# a\nwrite a.txt a\n')]);
    expect(sent.code).toBe(2);
    expect(sent.err).toContain('proj.verify_readonly_paths[0]: /no/such/toolchain does not exist');
  });
});
