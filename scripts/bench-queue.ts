// pnpm bench (second part): the merge queue with 10 / 50 / 200 finished tasks waiting.
// For each size: gsync-ctl pull-bundles (collect + verify + forecast + merge, one run), and
// gsync-ctl conflicts (the forecast alone), against the plain alternative on the same result
// bundles: git fetch + git merge --no-ff per task (git merge --abort on a conflict), and
// git merge-tree over every pair of task branches. Nodes are `local` (same protocol and
// gsync-node file, no sshd) so the figures are the queue's, not the network's.
// Sizes: BENCH_QUEUE (default "10,50,200").
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { dispatch } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from '../test/helpers/git-repo.js';
import { testContext, writeConfig } from '../test/helpers/world.js';

const SIZES = (process.env.BENCH_QUEUE ?? '10,50,200').split(',').map(Number);
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
/** Plain pairwise merge-tree is quadratic; past this many tasks it is estimated from a sample. */
const PLAIN_PAIRS_MAX = 1300;

function ctl(configDir: string, args: string[]): { seconds: number; rssMiB: number | undefined; code: number | null; stdout: string } {
  const argv = [process.execPath, CTL, '--config-dir', configDir, ...args];
  const t0 = performance.now();
  const r = TIME
    ? spawnSync(TIME, ['-f', 'RSS_KB=%M', ...argv], { encoding: 'utf8', maxBuffer: 1 << 28 })
    : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0 && r.status !== 3) throw new Error(`gsync-ctl ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const rss = /RSS_KB=(\d+)/.exec(r.stderr ?? '');
  return { seconds, rssMiB: rss ? Number(rss[1]) / 1024 : undefined, code: r.status, stdout: r.stdout };
}

/**
 * Task i writes its own file; every 5th also rewrites line 2 of one of three shared
 * files, so the queue holds some overlapping pairs and some real conflicts, as a busy
 * project would.
 */
function specFor(i: number): string {
  const lines = [`# queue task ${i}`, `write out/t${i}.txt result ${i}`];
  if (i % 5 === 0) lines.push(`set shared/s${(i / 5) % 3}.txt 2 edited by task ${i}`);
  return `${lines.join('\n')}\n`;
}

async function waitForNodes(nodeHomes: string[], project: string, ids: string[]): Promise<void> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const pending = ids.filter((id) => {
      const file = nodeHomes.map((h) => join(h, 'dispatch', project, 'tasks', id, 'status.json')).find(existsSync);
      if (!file) return true;
      const state = (JSON.parse(readFileSync(file, 'utf8')) as { state: string }).state;
      return !['done', 'empty', 'failed', 'timeout'].includes(state);
    });
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`tasks still running: ${pending.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function benchSize(n: number) {
  const repo = gitRepo({ 'README.md': 'queue\n', 'shared/s0.txt': 'a\nb\nc\n', 'shared/s1.txt': 'a\nb\nc\n', 'shared/s2.txt': 'a\nb\nc\n' });
  const plainClone = join(tempDir('gsync-bench-plain-'), 'clone');
  execFileSync('git', ['clone', '-q', repo.dir, plainClone]);
  const configDir = tempDir('gsync-bench-config-');
  const agent = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'q1', transport: 'local', agent },
        { name: 'q2', transport: 'local', agent },
      ],
    },
    { queue: { repo_local: repo.dir } },
  );
  const ctx = testContext(configDir, { onEvent: () => {} });
  const specs = tempDir('gsync-bench-specs-');
  const ids: string[] = [];
  for (let i = 1; i <= n; i++) {
    const spec = join(specs, `s${i}.md`);
    writeFileSync(spec, specFor(i));
    ids.push((await dispatch(ctx, { project: 'queue', spec })).task_id);
  }
  await waitForNodes(
    ['q1', 'q2'].map((name) => join(configDir, 'nodes', name)),
    'queue',
    ids,
  );

  const pull = ctl(configDir, ['pull-bundles', '--project', 'queue', '--json']);
  const report = JSON.parse(pull.stdout) as {
    tasks: { outcome: string }[];
    forecast?: { pairs: unknown[]; with_main: unknown[]; pairs_checked: number; pairs_total: number };
    timings: { collect_seconds: number; forecast_seconds: number; merge_seconds: number };
  };
  const outcomes = new Map<string, number>();
  for (const t of report.tasks) outcomes.set(t.outcome, (outcomes.get(t.outcome) ?? 0) + 1);
  if (report.tasks.length !== n) throw new Error(`gsync pull reported ${report.tasks.length} tasks, expected ${n}`);

  // Plain: the same result bundles, fetched and merged one by one into a clone at the same base.
  const git = (...args: string[]) => spawnSync('git', args, { cwd: plainClone, encoding: 'utf8' });
  git('config', 'user.name', 'bench');
  git('config', 'user.email', 'bench@example.invalid');
  const branches = ids.map((id) => {
    const node = ['q1', 'q2'].find((name) => existsSync(join(configDir, 'nodes', name, 'dispatch', 'queue', 'tasks', id, 'result.bundle')))!;
    return { id, bundle: join(configDir, 'nodes', node, 'dispatch', 'queue', 'tasks', id, 'result.bundle'), ref: `task/queue-${id}-${node}` };
  });
  const p0 = performance.now();
  for (const b of branches) {
    const r = git('fetch', '-q', b.bundle, `refs/heads/${b.ref}:refs/heads/${b.ref}`);
    if (r.status !== 0) throw new Error(`plain fetch of ${b.id} failed: ${r.stderr}`);
  }
  const p1 = performance.now();
  let plainConflicts = 0;
  for (const b of branches) {
    if (git('merge', '-q', '--no-ff', '--no-edit', b.ref).status !== 0) {
      plainConflicts++;
      git('merge', '--abort');
    }
  }
  const p2 = performance.now();
  // Plain forecast: merge-tree over every pair (quadratic); sampled past PLAIN_PAIRS_MAX pairs.
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([i, j]);
  const sample = pairs.length > PLAIN_PAIRS_MAX ? pairs.filter((_, k) => k % Math.ceil(pairs.length / PLAIN_PAIRS_MAX) === 0) : pairs;
  const p3 = performance.now();
  for (const [i, j] of sample) git('merge-tree', '--write-tree', '--name-only', branches[i]!.ref, branches[j]!.ref);
  const plainForecast = ((performance.now() - p3) / 1000) * (pairs.length / sample.length);
  return {
    n,
    pull: pull.seconds,
    rss: pull.rssMiB,
    timings: report.timings,
    forecast: report.forecast,
    outcomes: [...outcomes].map(([k, v]) => `${v} ${k}`).join(', '),
    plainCollect: (p1 - p0) / 1000,
    plainMerge: (p2 - p1) / 1000,
    plainForecast,
    plainSampled: sample.length < pairs.length,
    plainConflicts,
  };
}

const row = (cells: (string | number)[]) => cells.map((c, i) => String(c).padEnd(i === 0 ? 40 : 26)).join('');
const results = [];
try {
  for (const n of SIZES) results.push(await benchSize(n));
} finally {
  cleanupTempDirs();
}
console.log(`\nmerge queue: N finished tasks on 2 local nodes, one pull-bundles run (every 5th task edits line 2 of one of 3 shared files)`);
console.log(row(['', ...results.map((r) => `N = ${r.n}`)]));
console.log(row(['outcomes', ...results.map((r) => r.outcomes)]));
console.log(row(['gsync pull-bundles, whole run (s)', ...results.map((r) => r.pull.toFixed(2))]));
console.log(row(['  per task (ms)', ...results.map((r) => ((r.pull / r.n) * 1000).toFixed(0))]));
console.log(row(['  collect + verify (s)', ...results.map((r) => r.timings.collect_seconds.toFixed(2))]));
console.log(row(['  forecast (s)', ...results.map((r) => r.timings.forecast_seconds.toFixed(2))]));
console.log(row(['  pairs test-merged / all pairs', ...results.map((r) => `${r.forecast?.pairs_checked ?? 0} / ${r.forecast?.pairs_total ?? 0}`)]));
console.log(row(['  merge (s)', ...results.map((r) => r.timings.merge_seconds.toFixed(2))]));
console.log(row(['  merge per task (ms)', ...results.map((r) => ((r.timings.merge_seconds / r.n) * 1000).toFixed(0))]));
if (TIME) console.log(row(['  peak RSS (MiB)', ...results.map((r) => (r.rss ?? 0).toFixed(0))]));
console.log(row(['plain fetch of all bundles (s)', ...results.map((r) => r.plainCollect.toFixed(2))]));
console.log(row(['plain merge --no-ff of all (s)', ...results.map((r) => r.plainMerge.toFixed(2))]));
console.log(row(['plain merge-tree of every pair (s)', ...results.map((r) => `${r.plainForecast.toFixed(2)}${r.plainSampled ? ' (est.)' : ''}`)]));
console.log(
  row([
    'gsync/plain, collect + merge',
    ...results.map((r) => ((r.timings.collect_seconds + r.timings.merge_seconds) / (r.plainCollect + r.plainMerge)).toFixed(2)),
  ]),
);
console.log(row(['gsync/plain, forecast', ...results.map((r) => (r.timings.forecast_seconds / r.plainForecast).toFixed(3))]));
const first = results[0];
const last = results.at(-1);
if (first && last && last !== first) {
  const growth = last.timings.merge_seconds / last.n / (first.timings.merge_seconds / first.n);
  console.log(`merge time per task at N = ${last.n} is ${growth.toFixed(2)}x that at N = ${first.n} (1.00 = linear growth of the total)`);
}
