// pnpm bench: gsync against the plain alternative (git bundle + scp + ssh + git fetch/merge by
// hand) doing the same job over the same real sshd nodes on 127.0.0.1, side by side in one run.
// Prints wall times, ratios, bytes moved and the controller's peak memory. Needs root (it starts
// sshd nodes like the end-to-end tests). Sizes: BENCH_TASKS (default 6), BENCH_FILES (default 2000).
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from '../test/helpers/git-repo.js';
import { startSshNodes, type SshWorld } from '../test/helpers/sshd.js';
import { writeConfig } from '../test/helpers/world.js';

const TASKS = Number(process.env.BENCH_TASKS ?? 6);
const execFileAsync = promisify(execFile);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

function makeRepo(files: number): GitRepo {
  const repo = gitRepo({ 'README.md': 'bench\n' });
  if (files === 0) return repo;
  for (let i = 0; i < files; i++) repo.write(`src/m${i % 50}/file${i}.txt`, `${`line ${i} `.repeat(60)}\n`);
  repo.commitAll('bulk');
  return repo;
}

/** Runs gsync-ctl, returning seconds and peak RSS in MiB (when GNU time is there). */
function ctl(configDir: string, args: string[]): { seconds: number; rssMiB: number | undefined; code: number | null } {
  const argv = [process.execPath, CTL, '--config-dir', configDir, ...args];
  const t0 = performance.now();
  const r = TIME ? spawnSync(TIME, ['-f', 'RSS_KB=%M', ...argv], { encoding: 'utf8' }) : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  const seconds = (performance.now() - t0) / 1000;
  const rss = /RSS_KB=(\d+)/.exec(r.stderr ?? '');
  if (r.status !== 0 && r.status !== 3) throw new Error(`gsync-ctl ${args.join(' ')} failed: ${r.stderr}`);
  return { seconds, rssMiB: rss ? Number(rss[1]) / 1024 : undefined, code: r.status };
}

/** Both sides must have done the whole job, or the comparison means nothing. */
function assertAllMerged(dir: string, side: string, tasks: number): void {
  const files = execFileSync('git', ['ls-tree', '--name-only', 'main', 'out/'], { cwd: dir, encoding: 'utf8' }).split('\n').filter(Boolean);
  if (files.length !== tasks) throw new Error(`${side}: main has ${files.length} task outputs, expected ${tasks}`);
}

function specFor(i: number): string {
  return `# bench task ${i}\nwrite out/task${i}.txt result of task ${i}\n`;
}

/** gsync: one dispatch per task (or, with `batch`, one dispatch of all specs), then one `pull-bundles --wait`. */
async function benchGsync(world: SshWorld, repo: GitRepo, project: string, tasks = TASKS, batch = false) {
  const configDir = tempDir('gsync-bench-config-');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    { ssh_config: world.sshConfig, nodes: world.nodes.map((n) => ({ name: n.name, host: n.alias, agent, work_root: '~/gsync-bench' })) },
    { [project]: { repo_local: repo.dir } },
  );
  const specs = tempDir('gsync-bench-specs-');
  let dispatch = 0;
  let dispatchRss = 0;
  const paths = Array.from({ length: tasks }, (_, k) => {
    const spec = join(specs, `s${k + 1}.md`);
    writeFileSync(spec, specFor(k + 1));
    return spec;
  });
  for (const group of batch ? [paths] : paths.map((p) => [p])) {
    const r = ctl(configDir, ['dispatch', '--project', project, ...group.flatMap((p) => ['--spec', p])]);
    dispatch += r.seconds;
    dispatchRss = Math.max(dispatchRss, r.rssMiB ?? 0);
  }
  const pull = ctl(configDir, ['pull-bundles', '--project', project, '--wait', '--interval', '0.2']);
  if (pull.code !== 0) throw new Error('gsync bench: pull did not merge everything');
  assertAllMerged(repo.dir, 'gsync', tasks);
  return { dispatch, pull: pull.seconds, dispatchRss, pullRss: pull.rssMiB ?? 0 };
}

/** The same job with plain commands: what a careful user would script without gsync. */
async function benchPlain(world: SshWorld, work: string, tasks = TASKS, parallel = false) {
  const ssh = (alias: string, command: string) => execFileSync('ssh', ['-F', world.sshConfig, alias, command], { encoding: 'buffer', maxBuffer: 1 << 30 });
  const clone = join(work, 'clone');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: clone, encoding: 'utf8' });
  git('config', 'user.name', 'bench');
  git('config', 'user.email', 'bench@example.invalid');
  const nodes = world.nodes;
  const t0 = performance.now();
  let baseBytes = 0;
  const run = (file: string, args: string[], cwd?: string) => execFileAsync(file, args, { cwd, maxBuffer: 1 << 30 });
  const sendOne = async (i: number) => {
    const node = nodes[(i - 1) % nodes.length]!;
    const bundle = join(work, `base${i}.bundle`);
    await run('git', ['bundle', 'create', '-q', bundle, 'main'], clone);
    baseBytes += statSync(bundle).size;
    const spec = join(work, `s${i}.md`);
    writeFileSync(spec, specFor(i));
    const dir = `plain/T${i}`;
    await run('ssh', ['-F', world.sshConfig, node.alias, `rm -rf ${dir} && mkdir -p ${dir}`]);
    await run('scp', ['-q', '-F', world.sshConfig, bundle, spec, `${node.alias}:${dir}/`]);
    const job = `cd ${dir} && git clone -q -b main base${i}.bundle repo && cd repo && git checkout -q -b task/T${i} && node ${join(world.agents, 'edit.mjs')} ../s${i}.md >/dev/null && git add -A && git -c user.name=a -c user.email=a@b commit -qm T${i} && git bundle create -q ../result.bundle.tmp task/T${i} ^main && mv ../result.bundle.tmp ../result.bundle`;
    await run('ssh', ['-F', world.sshConfig, node.alias, `nohup sh -c '${job}' >${dir}/job.log 2>&1 &`]);
  };
  const order = Array.from({ length: tasks }, (_, k) => k + 1);
  // In parallel: one worker per node, each sending its own tasks one after another.
  if (parallel)
    await Promise.all(
      nodes.map(async (_, n) => {
        for (const i of order.filter((i) => (i - 1) % nodes.length === n)) await sendOne(i);
      }),
    );
  else for (const i of order) await sendOne(i);
  const dispatch = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  for (let i = 1; i <= tasks; i++) {
    const node = nodes[(i - 1) % nodes.length]!;
    const dir = `plain/T${i}`;
    while (ssh(node.alias, `test -f ${dir}/result.bundle && echo yes || echo no`).toString().trim() !== 'yes') {
      if (performance.now() - t1 > 120_000)
        throw new Error(`plain job T${i} on ${node.name} did not finish: ${ssh(node.alias, `cat ${dir}/job.log`).toString()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const local = join(work, `result${i}.bundle`);
    writeFileSync(local, ssh(node.alias, `cat ${dir}/result.bundle`));
    git('fetch', '-q', local, `task/T${i}:task/T${i}`);
    git('merge', '-q', '--no-ff', '--no-edit', `task/T${i}`);
  }
  const pull = (performance.now() - t1) / 1000;
  assertAllMerged(clone, 'plain', tasks);
  return { dispatch, pull, baseBytes };
}

const kib = (bytes: number) => (bytes < 10240 ? `${bytes.toFixed(0)} B` : `${(bytes / 1024).toFixed(0)} KiB`);

function row(cells: (string | number)[]): string {
  return cells.map((c, i) => String(c).padEnd(i === 0 ? 34 : 12)).join('');
}

const world = await startSshNodes([{ name: 'b1' }, { name: 'b2' }], 'gsbench');
try {
  for (const files of [0, FILES]) {
    const label = files === 0 ? 'tiny repo (1 file)' : `repo of ${files} files`;
    const repo = makeRepo(files);
    // Both sides start from the same commit: the plain side works on a clone taken before gsync merges.
    const plainWork = tempDir('gsync-bench-plain-');
    execFileSync('git', ['clone', '-q', repo.dir, join(plainWork, 'clone')]);
    const g = await benchGsync(world, repo, files === 0 ? 'tiny' : 'large');
    const p = await benchPlain(world, plainWork);
    console.log(`\n${label}, ${TASKS} tasks on ${world.nodes.length} sshd nodes (base bundle ${kib(p.baseBytes / TASKS)} each)`);
    console.log(row(['', 'gsync', 'plain', 'gsync/plain']));
    console.log(row(['dispatch all tasks (s)', g.dispatch.toFixed(2), p.dispatch.toFixed(2), (g.dispatch / p.dispatch).toFixed(2)]));
    console.log(row(['collect + verify + merge all (s)', g.pull.toFixed(2), p.pull.toFixed(2), (g.pull / p.pull).toFixed(2)]));
    console.log(
      row(['total (s)', (g.dispatch + g.pull).toFixed(2), (p.dispatch + p.pull).toFixed(2), ((g.dispatch + g.pull) / (p.dispatch + p.pull)).toFixed(2)]),
    );
    if (TIME) console.log(row(['gsync-ctl peak RSS (MiB)', `${g.dispatchRss.toFixed(0)} / ${g.pullRss.toFixed(0)}`, '', '(dispatch / pull)']));
  }
  // One task's round trip on a small repo, and 4 tasks on 2 nodes sent in one dispatch against the script run per node in parallel.
  for (const [label, tasks, batch] of [
    ['small repo (200 files), one task round trip', 1, false],
    ['small repo (200 files), 4 tasks on 2 nodes: one dispatch + pull --wait vs script 2 per node in parallel', 4, true],
  ] as const) {
    const repo = makeRepo(200);
    const plainWork = tempDir('gsync-bench-plain-');
    execFileSync('git', ['clone', '-q', repo.dir, join(plainWork, 'clone')]);
    const g = await benchGsync(world, repo, batch ? 'batch' : 'single', tasks, batch);
    const p = await benchPlain(world, plainWork, tasks, batch);
    const total = (x: { dispatch: number; pull: number }) => x.dispatch + x.pull;
    console.log(`\n${label}`);
    console.log(row(['', 'gsync', 'plain', 'gsync/plain']));
    console.log(row(['round trip (s)', total(g).toFixed(2), total(p).toFixed(2), (total(g) / total(p)).toFixed(2)]));
  }
} finally {
  await world.stop();
  cleanupTempDirs();
}
