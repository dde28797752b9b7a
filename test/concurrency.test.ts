import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, writeConfig } from './helpers/world.js';

/** Two gsync-ctl processes on one project at the same time: one waits or fails clearly; nothing merges twice; the store stays sound. */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const EDIT = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];

function world() {
  const repo = gitRepo(Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, `${i}\n`])));
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      nodes: [
        { name: 'l1', transport: 'local', agent: EDIT },
        { name: 'l2', transport: 'local', agent: EDIT },
      ],
    },
    { proj: { repo_local: repo.dir } },
  );
  const ctl = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CTL, '--config-dir', configDir, ...args], { env: { ...process.env, SSH_AUTH_SOCK: '' } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const db = () => new Store(join(configDir, 'gsync.db'));
  return { repo, configDir, specs: tempDir('gsync-specs-'), ctl, db };
}

const merges = (repo: GitRepo) => repo.git('rev-list', '--first-parent', '--merges', 'main').split('\n').filter(Boolean).length;

async function finished(configDir: string, ids: string[]): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const done = ids.every((id) => {
      const file = ['l1', 'l2'].map((n) => join(configDir, 'nodes', n, 'dispatch/proj/tasks', id, 'status.json')).find(existsSync);
      return file !== undefined && readFileSync(file, 'utf8').includes('"state": "done"');
    });
    if (done) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('tasks did not finish');
}

describe('two controllers at once', () => {
  it('two pulls on the same project: each task merges exactly once, the store stays sound', async () => {
    const w = world();
    for (let i = 0; i < 6; i++)
      expect((await w.ctl(['dispatch', '--project', 'proj', '--spec', specFile(w.specs, `${i}.md`, `# edit f${i}\nwrite f${i}.txt changed\n`)])).code).toBe(0);
    await finished(w.configDir, ['S01', 'S02', 'S03', 'S04', 'S05', 'S06']);
    const [a, b] = await Promise.all([w.ctl(['pull-bundles', '--project', 'proj', '--json']), w.ctl(['pull-bundles', '--project', 'proj', '--json'])]);
    // One did the work; the other waited for the lock and found nothing new (or, had it waited too long, said so with exit 6).
    for (const r of [a, b]) expect([0, 6]).toContain(r.code);
    const merged = [a, b].flatMap((r) =>
      r.code === 0 ? (JSON.parse(r.stdout) as { tasks: { outcome: string }[] }).tasks.filter((t) => t.outcome === 'merged') : [],
    );
    expect(merged).toHaveLength(6);
    expect(merges(w.repo)).toBe(6);
    const db = w.db();
    expect(db.db.pragma('integrity_check', { simple: true })).toBe('ok');
    const events = db.db.prepare("SELECT task_id FROM events WHERE kind = 'merged' ORDER BY task_id").all() as { task_id: string }[];
    const states = db.db.prepare('SELECT DISTINCT state FROM tasks').all() as { state: string }[];
    db.close();
    expect(events.map((e) => e.task_id)).toEqual(['S01', 'S02', 'S03', 'S04', 'S05', 'S06']);
    expect(states).toEqual([{ state: 'merged' }]);
  });

  it('dispatches racing each other and a pull: distinct task ids, every task merged once', async () => {
    const w = world();
    const dispatches = Array.from({ length: 6 }, (_, i) =>
      w.ctl(['dispatch', '--project', 'proj', '--spec', specFile(w.specs, `${i}.md`, `# edit f${i}\nwrite f${i}.txt raced\n`)]),
    );
    const pulls = [w.ctl(['pull-bundles', '--project', 'proj', '--wait', '--interval', '0.2', '--timeout', '60'])];
    const results = await Promise.all([...dispatches, ...pulls]);
    for (const r of results.slice(0, 6))
      expect(
        `${r.code} ${r.stderr
          .split('\n')
          .filter((l) => l.startsWith('gsync-ctl:'))
          .join(' ')}`,
      ).toBe('0 ');
    const ids = results.slice(0, 6).map((r) => /dispatched (S\d+)/.exec(r.stdout)?.[1]);
    expect(new Set(ids).size).toBe(6);
    // Whatever the racing pull did not see, one more pull finishes.
    const last = await w.ctl(['pull-bundles', '--project', 'proj', '--wait', '--interval', '0.2', '--timeout', '60']);
    expect(last.code, `${last.stdout}\n${last.stderr}`).toBe(0);
    expect(merges(w.repo)).toBe(6);
    for (let i = 0; i < 6; i++) expect(w.repo.git('show', `main:f${i}.txt`)).toBe('raced\n');
    const db = w.db();
    expect(db.db.pragma('integrity_check', { simple: true })).toBe('ok');
    const count = (db.db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE state = 'merged'").get() as { n: number }).n;
    db.close();
    expect(count).toBe(6);
  });
});
