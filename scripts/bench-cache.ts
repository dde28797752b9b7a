// pnpm bench, part 3: a big repository and the node's object cache, over a real sshd node on
// 127.0.0.1. First contact sends the whole history; a re-dispatch after one commit on main sends
// only the change. Compared side by side with the hand-written round trip (git bundle of main,
// scp, ssh git clone) and with the physical floor (the thin pack `git fetch` would send).
// The repository is generated (BENCH_HISTORY_COMMITS, _FILES, _MB; default 20000 commits over
// 3000 files, about 300 MB packed) or taken from BENCH_REPO=/path (its checked-out branch is main).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, cleanupTempDirs, tempDir } from '../test/helpers/git-repo.js';
import { startSshNodes } from '../test/helpers/sshd.js';
import { writeConfig } from '../test/helpers/world.js';
import { makeHistory } from './make-history.js';

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const MiB = 1024 * 1024;

/** Runs gsync-ctl: seconds, its own peak RSS, and the peak RSS with the git processes it ran (GNU time). */
function ctl(configDir: string, args: string[]): { seconds: number; rssMiB: number; selfMiB: number; stdout: string; code: number | null } {
  const argv = [process.execPath, '--import', join(ROOT, 'scripts/rss-probe.mjs'), CTL, '--config-dir', configDir, ...args];
  const t0 = performance.now();
  const r = TIME
    ? spawnSync(TIME, ['-f', 'RSS_KB=%M', ...argv], { encoding: 'utf8', maxBuffer: 1 << 28 })
    : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  const rss = /(?:^|\n)RSS_KB=(\d+)/.exec(r.stderr ?? '');
  const self = /SELF_RSS_KB=(\d+)/.exec(r.stderr ?? '');
  if (r.status !== 0 && r.status !== 4) throw new Error(`gsync-ctl ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return {
    seconds: (performance.now() - t0) / 1000,
    rssMiB: rss ? Number(rss[1]) / 1024 : 0,
    selfMiB: self ? Number(self[1]) / 1024 : 0,
    stdout: r.stdout,
    code: r.status,
  };
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8', maxBuffer: 1 << 28 }).trim();
const du = (path: string) => Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);

/** When the agent of a task started on the node, from its status.json history. */
function agentStartedAt(statusFile: string): number {
  const deadline = Date.now() + 600_000;
  while (Date.now() < deadline) {
    try {
      const s = JSON.parse(readFileSync(statusFile, 'utf8')) as { history: { state: string; at: string }[] };
      const running = s.history.find((h) => h.state === 'running');
      if (running) return Date.parse(running.at);
    } catch {
      // not there yet
    }
    execFileSync('sleep', ['0.05']);
  }
  throw new Error(`no agent start in ${statusFile}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** CPU seconds a process and the children it has reaped have used (utime, stime, cutime, cstime). */
function cpuOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / 100;
  } catch {
    return 0;
  }
}

/** A process and every descendant alive now. */
function tree(root: number): number[] {
  const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
  const pids = [root];
  for (let i = 0; i < pids.length; i++) for (const [pid, ppid] of out) if (ppid === pids[i]) pids.push(pid!);
  return pids;
}

const treeCpu = (root: number) => tree(root).reduce((sum, pid) => sum + cpuOf(pid), 0);

/**
 * CPU used by the controller and by the node (its sshd and all it starts) over a window
 * in which `pull --wait` waits on a task that runs `seconds` and does nothing.
 */
async function waitingCpu(configDir: string, sshdPid: number, specs: string): Promise<{ controller: number; node: number; window: number }> {
  const spec = join(specs, 'idle.md');
  writeFileSync(spec, '# idle\nsleep 25\nwrite out/idle.txt idle\n');
  ctl(configDir, ['dispatch', '--project', 'big', '--spec', spec]);
  const pull = spawn(process.execPath, [CTL, '--config-dir', configDir, 'pull-bundles', '--project', 'big', '--wait'], { stdio: 'ignore' });
  const done = new Promise((r) => pull.on('close', r));
  await new Promise((r) => setTimeout(r, 4000));
  const c0 = treeCpu(pull.pid!);
  const n0 = treeCpu(sshdPid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 15000));
  const controller = treeCpu(pull.pid!) - c0;
  const node = treeCpu(sshdPid) - n0;
  const window = (performance.now() - t0) / 1000;
  await done;
  return { controller, node, window };
}

const repo = tempDir('gsync-bench-big-');
const t0 = performance.now();
if (process.env.BENCH_REPO) {
  execFileSync('git', ['clone', '-q', '--no-hardlinks', process.env.BENCH_REPO, repo]);
  execFileSync('git', ['checkout', '-q', '-B', 'main'], { cwd: repo });
} else {
  await makeHistory(repo, {
    commits: Number(process.env.BENCH_HISTORY_COMMITS ?? 20000),
    files: Number(process.env.BENCH_HISTORY_FILES ?? 3000),
    megabytes: Number(process.env.BENCH_HISTORY_MB ?? 500),
  });
}
git(repo, 'config', 'user.name', 'bench');
git(repo, 'config', 'user.email', 'bench@example.invalid');
const commits = git(repo, 'rev-list', '--count', 'main');
const packed = du(join(repo, '.git/objects'));
console.log(
  `\nbig repository: ${commits} commits, ${git(repo, 'ls-files').split('\n').length} files, ${(packed / MiB).toFixed(0)} MiB of objects (made in ${((performance.now() - t0) / 1000).toFixed(0)} s)`,
);

const world = await startSshNodes([{ name: 'c1' }], 'gscache');
try {
  const node = world.node('c1');
  const configDir = tempDir('gsync-bench-config-');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    { ssh_config: world.sshConfig, nodes: [{ name: 'c1', host: node.alias, agent, work_root: '~/cache-bench' }] },
    { big: { repo_local: repo } },
  );
  const specs = tempDir('gsync-bench-specs-');
  const tasks = join(node.home, 'cache-bench/big/tasks');

  const dispatchOne = (n: number) => {
    const spec = join(specs, `s${n}.md`);
    writeFileSync(spec, `# big task ${n}\nwrite out/task${n}.txt result ${n}\n`);
    const start = Date.now();
    const r = ctl(configDir, ['--json', 'dispatch', '--project', 'big', '--spec', spec]);
    const { task_id, bundle_bytes } = JSON.parse(r.stdout) as { task_id: string; bundle_bytes: number };
    const agentStart = (agentStartedAt(join(tasks, task_id, 'status.json')) - start) / 1000;
    return { ...r, bytes: bundle_bytes, agentStart, task: task_id };
  };

  const first = dispatchOne(1);
  const pull1 = ctl(configDir, ['pull-bundles', '--project', 'big', '--wait', '--interval', '0.5']);
  const before = git(repo, 'rev-parse', 'main');
  writeFileSync(join(repo, 'CHANGE.md'), 'one small change on main\n');
  git(repo, 'add', 'CHANGE.md');
  git(repo, 'commit', '-q', '-m', 'one small change');
  const again = dispatchOne(2);
  const pull2 = ctl(configDir, ['pull-bundles', '--project', 'big', '--wait', '--interval', '0.5']);
  if (pull1.code !== 0 || pull2.code !== 0) throw new Error('the big-repo tasks did not merge');

  // The floors: a bundle of just the change, and the thin pack a fetch would send for it.
  const thin = join(tempDir('gsync-bench-thin-'), 'change.bundle');
  git(repo, 'bundle', 'create', '-q', thin, 'main', `^${before}`);
  const fetchPack = execFileSync('git', ['pack-objects', '--revs', '--thin', '--stdout', '-q'], {
    cwd: repo,
    input: `main\n^${before}\n`,
    maxBuffer: 1 << 30,
  }).length;

  // The hand-written round trip to the same node: whole history each time, a full clone per task.
  const plainDir = 'plain-big';
  const ssh = (command: string) => execFileSync('ssh', ['-F', world.sshConfig, node.alias, command], { encoding: 'utf8' });
  ssh(`rm -rf ${plainDir} && mkdir -p ${plainDir}`);
  const p0 = performance.now();
  const full = join(tempDir('gsync-bench-full-'), 'base.bundle');
  git(repo, 'bundle', 'create', '-q', full, 'main');
  execFileSync('scp', ['-q', '-F', world.sshConfig, full, `${node.alias}:${plainDir}/`]);
  ssh(`cd ${plainDir} && git clone -q -b main base.bundle repo && cd repo && git checkout -q -b task/T2`);
  const plainAgentStart = (performance.now() - p0) / 1000;
  const plainTaskDisk = du(join(node.home, plainDir));

  const checkout = du(join(tasks, again.task, 'repo')) - statSync(join(tasks, again.task, 'repo', '.git')).size;
  const taskDisk = du(join(tasks, again.task));
  const cacheDisk = du(join(node.home, 'cache-bench/big/cache.git'));

  const startups = (argv: string[]) =>
    median(
      Array.from({ length: 9 }, () => {
        const s = performance.now();
        spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
        return (performance.now() - s) / 1000;
      }),
    );
  const bare = startups([process.execPath, '-e', '0']);
  const status = startups([process.execPath, CTL, '--config-dir', configDir, 'status', '--project', 'big']);

  const sshdPid = Number(
    execFileSync('pgrep', ['-o', '-f', `sshd -D -e -f ${join(world.dir, 'sshd_c1.conf')}`], { encoding: 'utf8' })
      .trim()
      .split('\n')[0],
  );
  const idle = await waitingCpu(configDir, sshdPid, specs);
  const idleShare = (idle.controller + idle.node) / idle.window;

  const rows: [string, string, string, string][] = [
    ['first contact: bytes of code sent', `${(first.bytes / MiB).toFixed(1)} MiB`, `${(statSync(full).size / MiB).toFixed(1)} MiB`, 'whole history (both)'],
    ['first contact: dispatch -> agent starts (s)', first.agentStart.toFixed(2), '-', '<= 5 s with a snapshot (stretch, not built)'],
    [
      're-dispatch: bytes of code sent',
      `${again.bytes} B`,
      `${statSync(full).size} B`,
      `<= ${statSync(thin).size} + 65536 B (thin bundle ${statSync(thin).size} B, fetch pack ${fetchPack} B)`,
    ],
    ['re-dispatch: dispatch -> agent starts (s)', again.agentStart.toFixed(2), plainAgentStart.toFixed(2), '<= 3 s'],
    [
      'node disk for the additional task (MiB)',
      (taskDisk / MiB).toFixed(1),
      (plainTaskDisk / MiB).toFixed(1),
      `<= 1.5 x checkout (${(checkout / MiB).toFixed(1)} MiB): ${(taskDisk / checkout).toFixed(2)} x`,
    ],
    ['node object cache, shared by all tasks (MiB)', (cacheDisk / MiB).toFixed(1), '-', ''],
    [
      'gsync-ctl peak RSS: dispatch / pull (MiB)',
      `${Math.max(first.selfMiB, again.selfMiB).toFixed(0)} / ${Math.max(pull1.selfMiB, pull2.selfMiB).toFixed(0)}`,
      '-',
      `<= 150 MiB (with the git it runs: ${Math.max(first.rssMiB, again.rssMiB).toFixed(0)} / ${Math.max(pull1.rssMiB, pull2.rssMiB).toFixed(0)})`,
    ],
    [
      'CPU while pull --wait waits (% of a core)',
      `${(idleShare * 100).toFixed(1)} %`,
      '-',
      `<= 5 % (controller ${idle.controller.toFixed(2)} s, node ${idle.node.toFixed(2)} s over ${idle.window.toFixed(0)} s)`,
    ],
    ['gsync-ctl status start-up (s)', status.toFixed(3), `${bare.toFixed(3)} (node -e 0)`, `<= 2 x node -e 0: ${(status / bare).toFixed(2)} x`],
  ];
  console.log(`${'figure'.padEnd(46)}${'gsync'.padEnd(14)}${'raw script'.padEnd(20)}target / ratio`);
  for (const r of rows) console.log(`${r[0].padEnd(46)}${r[1].padEnd(14)}${r[2].padEnd(20)}${r[3]}`);
  console.log(
    `re-dispatch bytes, gsync / raw script: ${(again.bytes / statSync(full).size).toExponential(2)}; agent start, gsync / raw script: ${(again.agentStart / plainAgentStart).toFixed(2)}`,
  );
} finally {
  await world.stop();
  cleanupTempDirs();
}
