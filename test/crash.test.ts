import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, writeConfig } from './helpers/world.js';

/**
 * Crashes at every step: gsync-ctl and gsync-node are SIGKILLed at named points
 * (GSYNC_FAILPOINT), the agent is killed from outside; running the same command
 * again converges: nothing dispatched twice, merged twice, lost, or left behind.
 */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

function world(project: object = {}) {
  const repo = gitRepo({ 'a.txt': 'a\n', 'b.txt': 'b\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent: EDIT },
        { name: 'l2', transport: 'local', agent: EDIT },
      ],
    },
    { proj: { repo_local: repo.dir, ...project } },
  );
  const specs = tempDir('gsync-specs-');
  const ctl = (args: string[], failpoint?: string) => {
    const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, ...args], {
      encoding: 'utf8',
      env: { ...process.env, SSH_AUTH_SOCK: '', ...(failpoint ? { GSYNC_FAILPOINT: failpoint } : {}) },
    });
    return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  const rows = () => {
    const store = new Store(join(configDir, 'gsync.db'));
    try {
      return { tasks: store.listTasks('proj'), events: store.events('proj') };
    } finally {
      store.close();
    }
  };
  const taskDirs = () =>
    ['l1', 'l2'].flatMap((n) => {
      const dir = join(configDir, 'nodes', n, 'dispatch/proj/tasks');
      return existsSync(dir)
        ? readdirSync(dir)
            .filter((d) => !d.startsWith('.'))
            .map((d) => `${n}/${d}`)
        : [];
    });
  const finished = async (ids: string[]) => {
    for (let i = 0; i < 200; i++) {
      const states = ids.map((id) => {
        const file = ['l1', 'l2'].map((n) => join(configDir, 'nodes', n, 'dispatch/proj/tasks', id, 'status.json')).find(existsSync);
        return file ? (JSON.parse(readFileSync(file, 'utf8')) as { state: string }).state : 'none';
      });
      if (states.every((s) => ['done', 'failed', 'empty', 'timeout'].includes(s))) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`tasks ${ids.join(', ')} did not finish`);
  };
  return { repo, configDir, specs, ctl, rows, taskDirs, finished };
}

/** Merges into main counted on its first-parent line: each task exactly once. */
const merges = (repo: GitRepo) => repo.git('rev-list', '--first-parent', '--merges', 'main').split('\n').filter(Boolean).length;

function noLeftovers(repo: GitRepo): void {
  const gitDir = join(repo.dir, '.git');
  expect(readdirSync(join(gitDir, 'objects/pack')).filter((f) => f.startsWith('tmp_'))).toEqual([]);
  const quarantine = join(gitDir, 'gsync/quarantine');
  expect(existsSync(quarantine) ? readdirSync(quarantine) : []).toEqual([]);
  const incoming = join(gitDir, 'gsync/incoming');
  expect(existsSync(incoming) ? readdirSync(incoming) : []).toEqual([]);
  expect(repo.git('fsck', '--no-dangling', '--no-progress')).toBe('');
}

describe('gsync-ctl killed during dispatch', () => {
  for (const point of ['dispatch:after-reserve', 'dispatch:after-send']) {
    it(`at ${point}: dispatching again sends the task once`, async () => {
      const w = world();
      const spec = specFile(w.specs, 's.md', '# edit a\nwrite a.txt A\n');
      const killed = w.ctl(['dispatch', '--project', 'proj', '--spec', spec, '--node', 'l1'], point);
      expect(killed.signal).toBe('SIGKILL');
      const again = w.ctl(['dispatch', '--project', 'proj', '--spec', spec, '--node', 'l1']);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('dispatched S01 to l1');
      const pull = w.ctl(['pull-bundles', '--project', 'proj', '--wait', '--interval', '0.1']);
      expect(pull.code).toBe(0);
      const { tasks, events } = w.rows();
      expect(tasks.map((t) => [t.task_id, t.state])).toEqual([['S01', 'merged']]);
      expect(w.taskDirs()).toEqual(['l1/S01']);
      expect(merges(w.repo)).toBe(1);
      expect(events.some((e) => e.kind === (point === 'dispatch:after-send' ? 'dispatch_recovered' : 'dispatch_abandoned'))).toBe(true);
    });
  }
});

// The scp mode makes the result's commit on the controller: a pull killed after it must make the very same one again.
describe.each(['bundle', 'scp'])('gsync-ctl killed during pull-bundles (sync_mode %s)', (sync_mode) => {
  const points = ['pull:after-download', 'pull:after-adopt', 'pull:after-incoming', 'pull:after-branch', 'pull:after-advance', 'pull:after-verify'];
  for (const point of points) {
    it(`at ${point}: pulling again merges each task exactly once and leaves nothing behind`, async () => {
      const w = world({
        sync_mode,
        ...(point === 'pull:after-verify'
          ? { verify_command: ['node', join(ROOT, 'fixtures/verify/no-broken.mjs')], verify_readonly_paths: [join(ROOT, 'fixtures')] }
          : {}),
      });
      for (const [i, file] of [
        [1, 'a.txt'],
        [2, 'b.txt'],
      ] as const) {
        expect(w.ctl(['dispatch', '--project', 'proj', '--spec', specFile(w.specs, `${i}.md`, `# edit ${file}\nwrite ${file} changed ${i}\n`)]).code).toBe(0);
      }
      await w.finished(['S01', 'S02']);
      expect(w.ctl(['pull-bundles', '--project', 'proj'], point).signal).toBe('SIGKILL');
      const again = w.ctl(['pull-bundles', '--project', 'proj']);
      expect(again.code).toBe(0);
      const { tasks, events } = w.rows();
      expect(tasks.map((t) => t.state)).toEqual(['merged', 'merged']);
      expect(merges(w.repo)).toBe(2);
      expect(w.repo.git('show', 'main:a.txt')).toBe('changed 1\n');
      expect(w.repo.git('show', 'main:b.txt')).toBe('changed 2\n');
      expect(events.filter((e) => e.kind === 'merged').map((e) => e.task_id)).toEqual(['S01', 'S02']);
      expect(w.repo.git('status', '--porcelain')).toBe('');
      noLeftovers(w.repo);
      expect(w.ctl(['pull-bundles', '--project', 'proj']).stdout).toContain('nothing new');
    });
  }
});

describe.each(['bundle', 'scp'])('gsync-node killed on the node (sync_mode %s)', (sync_mode) => {
  const cases: [string, 'merged' | 'failed', RegExp | undefined][] = [
    ['node:after-prepare', 'failed', /stopped before the agent ran/],
    ['node:after-agent', 'failed', /stopped while the agent ran/],
    // The scp mode makes no commit on the node: its result is the tar (after-bundle) and result.json.
    ...(sync_mode === 'bundle' ? [['node:after-commit', 'merged', undefined] as [string, 'merged', undefined]] : []),
    ['node:after-bundle', 'merged', undefined],
    ['node:after-result', 'merged', undefined],
  ];
  for (const [point, outcome, reason] of cases) {
    it(`at ${point}: the next pull finishes the task on the node and it ends ${outcome}`, async () => {
      const w = world({ sync_mode });
      const spec = specFile(w.specs, 's.md', '# edit a\nwrite a.txt A\n');
      // The failpoint reaches gsync-node through the environment dispatch starts it with.
      expect(w.ctl(['dispatch', '--project', 'proj', '--spec', spec, '--node', 'l2'], point).code).toBe(0);
      const pull = w.ctl(['pull-bundles', '--project', 'proj', '--wait', '--interval', '0.2', '--timeout', '60', '--json']);
      const report = JSON.parse(pull.stdout) as { tasks: { task_id: string; outcome: string; reason?: string; wip_branch?: string }[] };
      expect(report.tasks.map((t) => t.outcome)).toEqual([outcome]);
      if (reason) expect(report.tasks[0]!.reason).toMatch(reason);
      if (outcome === 'merged') expect(w.repo.git('show', 'main:a.txt')).toBe('A\n');
      if (point === 'node:after-agent') expect(w.repo.git('show', `${report.tasks[0]!.wip_branch}:a.txt`)).toBe('A\n');
      expect(merges(w.repo)).toBe(outcome === 'merged' ? 1 : 0);
      noLeftovers(w.repo);
    });
  }

  it('an agent killed from outside: reported failed, its work so far returned on a -wip branch', async () => {
    const w = world({ sync_mode });
    const spec = specFile(w.specs, 's.md', '# long job\nwrite a.txt halfway\nsleep 30\n');
    expect(w.ctl(['dispatch', '--project', 'proj', '--spec', spec, '--node', 'l1']).code).toBe(0);
    const status = join(w.configDir, 'nodes/l1/dispatch/proj/tasks/S01/status.json');
    let agentPid: number | undefined;
    for (let i = 0; i < 100 && !agentPid; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (existsSync(status)) agentPid = (JSON.parse(readFileSync(status, 'utf8')) as { agent_pid?: number }).agent_pid;
    }
    await new Promise((r) => setTimeout(r, 500));
    process.kill(agentPid!, 'SIGKILL');
    const pull = w.ctl(['pull-bundles', '--project', 'proj', '--wait', '--interval', '0.2', '--timeout', '60', '--json']);
    const report = JSON.parse(pull.stdout) as { tasks: { outcome: string; reason?: string; wip_branch?: string }[] };
    expect(report.tasks[0]).toMatchObject({ outcome: 'failed', reason: 'the agent was killed by SIGKILL', wip_branch: 'task/proj-S01-l1-wip' });
    expect(w.repo.git('show', 'task/proj-S01-l1-wip:a.txt')).toBe('halfway\n');
    expect(merges(w.repo)).toBe(0);
  });
});
