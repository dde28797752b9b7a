// pnpm bench, Plan A: gsync in sync_mode "git" against the plain shared-remote script (push a
// branch, clone it on the node, run the agent, commit, push, fetch and merge by hand), over the
// same real sshd nodes and a git-shell remote on 127.0.0.1, side by side in one run.
// Sizes: BENCH_TASKS (default 6), BENCH_FILES (default 2000).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from '../test/helpers/git-repo.js';
import { setUpSshRemote, type SshRemote } from '../test/helpers/git-remote.js';
import { startSshNodes, type SshWorld } from '../test/helpers/sshd.js';
import { writeConfig } from '../test/helpers/world.js';

const TASKS = Number(process.env.BENCH_TASKS ?? 6);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const run = promisify(execFile);

function makeRepo(files: number): GitRepo {
  const repo = gitRepo({ 'README.md': 'bench\n' });
  for (let i = 0; i < files; i++) repo.write(`src/m${i % 50}/file${i}.txt`, `${`line ${i} `.repeat(60)}\n`);
  repo.commitAll('bulk');
  return repo;
}

const specFor = (i: number) => `# bench task ${i}\nwrite out/task${i}.txt result of task ${i}\n`;

function merged(dir: string, tasks: number, side: string): void {
  const files = execFileSync('git', ['ls-tree', '--name-only', 'main', 'out/'], { cwd: dir, encoding: 'utf8' }).split('\n').filter(Boolean);
  if (files.length !== tasks) throw new Error(`${side}: main has ${files.length} task outputs, expected ${tasks}`);
}

async function benchGsync(world: SshWorld, remote: SshRemote, repo: GitRepo, env: NodeJS.ProcessEnv) {
  const url = remote.create(repo, 'bench-gsync');
  const configDir = tempDir('gsync-bench-config-');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    {
      ssh_config: world.sshConfig,
      nodes: ['r1', 'r2'].map((n) => ({ name: n, host: world.node(n).alias, agent, work_root: '~/gsync-bench' })),
      git_config: { auto_cleanup_branches: true },
    },
    { bench: { repo_local: repo.dir, sync_mode: 'git', repo_url: url } },
  );
  const specs = tempDir('gsync-bench-specs-');
  const ctl = (args: string[]) => {
    const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, ...args], { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`gsync-ctl ${args.join(' ')}: ${r.stderr}`);
    if (/downgraded/.test(r.stderr)) throw new Error(`gsync-ctl ${args.join(' ')} left the shared remote: ${r.stderr}`);
  };
  const t0 = performance.now();
  for (let i = 1; i <= TASKS; i++) {
    const spec = join(specs, `s${i}.md`);
    writeFileSync(spec, specFor(i));
    ctl(['dispatch', '--project', 'bench', '--spec', spec]);
  }
  const t1 = performance.now();
  ctl(['pull-bundles', '--project', 'bench', '--wait', '--interval', '0.2']);
  const t2 = performance.now();
  merged(repo.dir, TASKS, 'gsync');
  return { dispatch: (t1 - t0) / 1000, pull: (t2 - t1) / 1000 };
}

/** The same job by hand over the same remote: what the original request's Plan A script does. */
async function benchPlain(world: SshWorld, remote: SshRemote, repo: GitRepo, env: NodeJS.ProcessEnv) {
  const url = remote.create(repo, 'bench-plain');
  const git = (...args: string[]) => run('git', args, { cwd: repo.dir, env, maxBuffer: 1 << 30 });
  const nodes = ['r1', 'r2'].map((n) => world.node(n));
  const t0 = performance.now();
  for (let i = 1; i <= TASKS; i++) {
    const node = nodes[(i - 1) % nodes.length]!;
    await git('push', '-q', url, `main:refs/heads/plain/T${i}`);
    const dir = `plainA/T${i}`;
    const job = [
      `rm -rf ${dir} && mkdir -p ${dir} && cd ${dir}`,
      `git clone -q --single-branch -b plain/T${i} ${url} repo && cd repo`,
      `printf '${specFor(i).replaceAll('\n', '\\n')}' > ../spec.md`,
      `node ${join(world.agents, 'edit.mjs')} ../spec.md >/dev/null`,
      `git add -A && git -c user.name=a -c user.email=a@b commit -qm T${i} && git push -q origin plain/T${i} && touch ../done`,
    ].join(' && ');
    await run('ssh', ['-F', world.sshConfig, node.alias, `nohup sh -c "${job.replaceAll('"', '\\"')}" >plainA-T${i}.log 2>&1 &`]);
  }
  const t1 = performance.now();
  for (let i = 1; i <= TASKS; i++) {
    const node = nodes[(i - 1) % nodes.length]!;
    for (;;) {
      const { stdout } = await run('ssh', ['-F', world.sshConfig, node.alias, `test -f plainA/T${i}/done && echo yes || echo no`]);
      if (stdout.trim() === 'yes') break;
      if (performance.now() - t1 > 120_000) throw new Error(`plain T${i} did not finish`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await git('fetch', '-q', url, `plain/T${i}:plain/T${i}`);
    await git('merge', '-q', '--no-ff', '--no-edit', `plain/T${i}`);
    await git('push', '-q', url, `:refs/heads/plain/T${i}`);
  }
  const t2 = performance.now();
  merged(repo.dir, TASKS, 'plain');
  return { dispatch: (t1 - t0) / 1000, pull: (t2 - t1) / 1000 };
}

const row = (cells: (string | number)[]) => cells.map((c, i) => String(c).padEnd(i === 0 ? 34 : 12)).join('');

const world = await startSshNodes([{ name: 'r1' }, { name: 'r2' }, { name: 'git' }], 'gsbenchr');
try {
  const remote = setUpSshRemote(world, ['r1', 'r2']);
  const env = { ...process.env, GIT_SSH_COMMAND: remote.sshCommand };
  const gRepo = makeRepo(FILES);
  const pRepo = makeRepo(FILES);
  const g = await benchGsync(world, remote, gRepo, env);
  const p = await benchPlain(world, remote, pRepo, env);
  console.log(`\nPlan A (shared remote over git-shell), repo of ${FILES} files, ${TASKS} tasks on 2 sshd nodes`);
  console.log(row(['', 'gsync', 'plain', 'gsync/plain']));
  console.log(row(['dispatch all tasks (s)', g.dispatch.toFixed(2), p.dispatch.toFixed(2), (g.dispatch / p.dispatch).toFixed(2)]));
  console.log(row(['collect + merge all (s)', g.pull.toFixed(2), p.pull.toFixed(2), (g.pull / p.pull).toFixed(2)]));
  console.log(
    row(['total (s)', (g.dispatch + g.pull).toFixed(2), (p.dispatch + p.pull).toFixed(2), ((g.dispatch + g.pull) / (p.dispatch + p.pull)).toFixed(2)]),
  );
} finally {
  await world.stop();
  cleanupTempDirs();
}
