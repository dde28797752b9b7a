import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** The user's checkout: main under a rebase is busy; linked and prunable worktrees work. */
afterAll(cleanupTempDirs);

function world(repoDir: string) {
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
    { proj: { repo_local: repoDir } },
  );
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-'), tasks: join(configDir, 'nodes/l1/dispatch/proj/tasks') };
}

async function finished(tasks: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(join(tasks, 'S01', 'status.json'), 'utf8')) as { state: string }).state === 'done') return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
}

const git = (repo: GitRepo, ...args: string[]) => execFileSync('git', args, { cwd: repo.dir, encoding: 'utf8', stdio: 'pipe' });

describe("the user's checkout", () => {
  it('does not move main while it is being rebased, and merges once the rebase is done with', async () => {
    const repo = gitRepo({ 'README.md': 'one\n' });
    git(repo, 'checkout', '-q', '-b', 'side');
    repo.write('README.md', 'side\n');
    repo.commitAll('side');
    git(repo, 'checkout', '-q', 'main');
    repo.write('README.md', 'main\n');
    repo.commitAll('main');
    // Rebasing main onto side stops at the conflict: HEAD detached, main named only in rebase-merge/.
    expect(() => git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'rebase', 'side')).toThrow();
    const before = repo.head('refs/heads/main');
    const w = world(repo.dir);
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 's.md', 'A\n\nwrite a.txt a\n') });
    await finished(w.tasks);
    const waiting = await pullBundles(w.ctx, { project: 'proj' });
    expect(waiting.tasks.map((t) => t.outcome)).toEqual(['waiting']);
    expect(waiting.tasks[0]!.reason).toMatch(/main is in the middle of a rebase in /);
    expect(waiting.exit_code).toBe(4);
    expect(repo.head('refs/heads/main')).toBe(before);
    git(repo, 'rebase', '--abort');
    const merged = await pullBundles(w.ctx, { project: 'proj' });
    expect(merged.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:a.txt')).toBe('a\n');
  });

  it('takes a linked worktree as repo_local', async () => {
    const repo = gitRepo({ 'README.md': 'one\n' });
    const linked = join(tempDir('gsync-wt-'), 'wt');
    git(repo, 'worktree', 'add', '-q', '-b', 'feature', linked);
    const w = world(linked);
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 's.md', 'A\n\nwrite a.txt a\n') });
    await finished(w.tasks);
    const report = await pullBundles(w.ctx, { project: 'proj' });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:a.txt')).toBe('a\n');
  });

  it('merges past a prunable worktree that had main checked out', async () => {
    const repo = gitRepo({ 'README.md': 'one\n' });
    git(repo, 'checkout', '-q', '-b', 'other');
    const gone = join(tempDir('gsync-wt-'), 'wt');
    git(repo, 'worktree', 'add', '-q', gone, 'main');
    rmSync(gone, { recursive: true, force: true });
    const w = world(repo.dir);
    await dispatch(w.ctx, { project: 'proj', spec: specFile(w.specs, 's.md', 'A\n\nwrite a.txt a\n') });
    await finished(w.tasks);
    const report = await pullBundles(w.ctx, { project: 'proj' });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:a.txt')).toBe('a\n');
  });
});
