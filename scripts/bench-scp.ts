// pnpm bench, the scp mode: gsync in sync_mode "scp" against the plain file-copy script it
// replaces (copy main's files to the node, run the agent there, copy the folder back over a
// fresh checkout of the base, commit what changed, merge it), by tar over ssh and by scp -r,
// over the same real sshd nodes, side by side in one run.
// Sizes: BENCH_TASKS (default 6), BENCH_FILES (default 2000).
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from '../test/helpers/git-repo.js';
import { startSshNodes, type SshWorld } from '../test/helpers/sshd.js';
import { writeConfig } from '../test/helpers/world.js';

const TASKS = Number(process.env.BENCH_TASKS ?? 6);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const run = promisify(execFile);
const sh = (script: string, cwd: string) => run('sh', ['-c', script], { cwd, maxBuffer: 1 << 30 });

function makeRepo(files: number): GitRepo {
  const repo = gitRepo({ 'README.md': 'bench\n' });
  for (let i = 0; i < files; i++) repo.write(`src/m${i % 50}/file${i}.txt`, `${`line ${i} `.repeat(60)}\n`);
  repo.commitAll('bulk');
  return repo;
}

// Each task writes a new file, edits one and deletes one: the copy back must carry all three.
const specFor = (i: number) =>
  `# bench task ${i}\nwrite out/task${i}.txt result of task ${i}\nappend src/m${i}/file${i}.txt more\ndelete src/m${i}/file${i + 50}.txt\n`;

function checkMerged(repo: GitRepo, tasks: number, side: string): void {
  const outs = repo.git('ls-tree', '--name-only', 'main', 'out/').split('\n').filter(Boolean);
  if (outs.length !== tasks) throw new Error(`${side}: main has ${outs.length} task outputs, expected ${tasks}`);
  for (let i = 1; i <= tasks; i++) {
    if (!repo.git('show', `main:src/m${i}/file${i}.txt`).endsWith('more\n')) throw new Error(`${side}: the edit of task ${i} is missing`);
    if (repo.git('ls-tree', 'main', `src/m${i}/file${i + 50}.txt`) !== '') throw new Error(`${side}: the deletion of task ${i} is missing`);
  }
}

async function benchGsync(world: SshWorld, repo: GitRepo) {
  const configDir = tempDir('gsync-bench-config-');
  const agent = ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];
  writeConfig(
    configDir,
    { ssh_config: world.sshConfig, nodes: ['s1', 's2'].map((n) => ({ name: n, host: world.node(n).alias, agent, work_root: '~/gsync-bench' })) },
    { bench: { repo_local: repo.dir, sync_mode: 'scp' } },
  );
  const specs = tempDir('gsync-bench-specs-');
  const ctl = (args: string[]) => {
    const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`gsync-ctl ${args.join(' ')}: ${r.stderr}`);
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
  checkMerged(repo, TASKS, 'gsync');
  return { dispatch: (t1 - t0) / 1000, pull: (t2 - t1) / 1000 };
}

/**
 * The same job by hand: main's files to the node (tar over ssh, or scp -r of an export),
 * the agent run there, the whole folder copied back over an emptied checkout of the base,
 * `git add -A`, a commit, and a merge.
 */
async function benchPlain(world: SshWorld, repo: GitRepo, how: 'tar' | 'scp') {
  const nodes = ['s1', 's2'].map((n) => world.node(n));
  const ssh = (alias: string, command: string) => run('ssh', ['-F', world.sshConfig, alias, command], { maxBuffer: 1 << 30 });
  const scp = (...args: string[]) => run('scp', ['-F', world.sshConfig, '-rq', ...args], { maxBuffer: 1 << 30 });
  const work = tempDir('gsync-bench-plain-');
  const base = repo.head('main');
  const dir = (i: number) => `plain-${how}/T${i}`;
  const t0 = performance.now();
  for (let i = 1; i <= TASKS; i++) {
    const node = nodes[(i - 1) % nodes.length]!;
    await ssh(node.alias, `rm -rf ${dir(i)} && mkdir -p ${dir(i)}`);
    if (how === 'tar') {
      await sh(`git archive ${base} | ssh -F ${world.sshConfig} ${node.alias} "tar -x -C ${dir(i)}"`, repo.dir);
    } else {
      await sh(`mkdir -p ${work}/out${i} && git archive ${base} | tar -x -C ${work}/out${i}`, repo.dir);
      await scp(`${work}/out${i}`, `${node.alias}:${dir(i)}/files`);
    }
    const files = how === 'tar' ? dir(i) : `${dir(i)}/files`;
    const job = `cd ${files} && printf '${specFor(i).replaceAll('\n', '\\n')}' > ../spec-${i}.md && node ${join(world.agents, 'edit.mjs')} ../spec-${i}.md >/dev/null && touch ~/${dir(i)}.done`;
    await ssh(node.alias, `nohup sh -c "${job}" >/dev/null 2>&1 &`);
  }
  const t1 = performance.now();
  for (let i = 1; i <= TASKS; i++) {
    const node = nodes[(i - 1) % nodes.length]!;
    for (;;) {
      const { stdout } = await ssh(node.alias, `test -f ${dir(i)}.done && echo yes || echo no`);
      if (stdout.trim() === 'yes') break;
      if (performance.now() - t1 > 120_000) throw new Error(`plain T${i} did not finish`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const wt = join(work, `wt${i}`);
    await sh(`git worktree add -q -b plain-${how}/T${i} ${wt} ${base} && cd ${wt} && find . -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +`, repo.dir);
    if (how === 'tar') await sh(`ssh -F ${world.sshConfig} ${node.alias} "tar -c -C ${dir(i)} ." | tar -x --no-same-owner -C ${wt}`, repo.dir);
    else await sh(`scp -F ${world.sshConfig} -rq ${node.alias}:${dir(i)}/files ${work}/back${i} && cp -a ${work}/back${i}/. ${wt}/`, repo.dir);
    await sh(`git add -A && git -c user.name=a -c user.email=a@b commit -qm T${i}`, wt);
    await sh(`git merge -q --no-ff --no-edit plain-${how}/T${i}`, repo.dir);
  }
  const t2 = performance.now();
  checkMerged(repo, TASKS, `plain ${how}`);
  return { dispatch: (t1 - t0) / 1000, pull: (t2 - t1) / 1000 };
}

const row = (cells: (string | number)[]) => cells.map((c, i) => String(c).padEnd(i === 0 ? 26 : 13)).join('');

const world = await startSshNodes([{ name: 's1' }, { name: 's2' }], 'gsbenchs');
try {
  const g = await benchGsync(world, makeRepo(FILES));
  const t = await benchPlain(world, makeRepo(FILES), 'tar');
  const s = await benchPlain(world, makeRepo(FILES), 'scp');
  const total = (x: { dispatch: number; pull: number }) => x.dispatch + x.pull;
  console.log(`\nThe scp mode (files, no git on the node), repo of ${FILES} files, ${TASKS} tasks on 2 sshd nodes`);
  console.log(row(['', 'gsync', 'plain tar', 'plain scp -r', 'gsync/tar', 'gsync/scp']));
  for (const [name, pick] of [
    ['dispatch all tasks (s)', (x: typeof g) => x.dispatch],
    ['collect + merge all (s)', (x: typeof g) => x.pull],
    ['total (s)', total],
  ] as const) {
    console.log(row([name, pick(g).toFixed(2), pick(t).toFixed(2), pick(s).toFixed(2), (pick(g) / pick(t)).toFixed(2), (pick(g) / pick(s)).toFixed(2)]));
  }
} finally {
  await world.stop();
  cleanupTempDirs();
}
