import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fastForwardCheckout, type CheckoutUpdate } from '@gsync/core';
import { dispatch, pullBundles } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * A user keeps saving files while gsync moves their checked-out main over a merge that
 * rewrites every one of those files. `fixtures/user/editor.mjs` saves as editors do (append,
 * rewrite in place, temp file renamed over) and journals each save once it is done. After
 * each update, the last save journaled for every file must still be there: in the file, or
 * in the old file the update kept aside and named. With `git merge --ff-only` such saves
 * were overwritten without a word.
 */
afterAll(cleanupTempDirs);

const EDITOR = join(ROOT, 'fixtures/user/editor.mjs');
const FILES = 2000;

/** A repository whose main has FILES files, and a commit `to` on top of it that changes each of them. */
function world(): { repo: GitRepo; from: string; to: string; paths: string[] } {
  const paths = Array.from({ length: FILES }, (_, i) => `src/part${i % 20}/file${i}.txt`);
  const repo = gitRepo(Object.fromEntries(paths.map((p, i) => [p, `line one of ${i}\nline two\n`])));
  const from = repo.head('main');
  for (const [i, p] of paths.entries()) if (i % 10 !== 0) repo.write(p, `line one of ${i}, changed by the task\nline two\n`);
  // Some files are removed and some added too, so every kind of change races an editor.
  repo.git('rm', '-q', ...paths.filter((_, i) => i % 10 === 0).slice(0, 50));
  repo.write('src/new/added.txt', 'added by the task\n');
  const to = repo.commitAll('the task');
  repo.git('reset', '-q', '--hard', from);
  repo.git('update-ref', 'refs/heads/task', to);
  return { repo, from, to, paths };
}

/** The last save journaled per file, and the files that lost it. */
function lostSaves(dir: string, journal: string, update: CheckoutUpdate | undefined): { saves: number; saved: Set<string>; lost: string[] } {
  const last = new Map<string, string>();
  const lines = existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').filter(Boolean) : [];
  for (const line of lines) {
    const [file, mark] = line.split('\t');
    last.set(file!, mark!);
  }
  const aside = update?.kind === 'updated' ? update.aside : [];
  const lost = [...last].filter(([file, mark]) => {
    const here = existsSync(join(dir, file)) && readFileSync(join(dir, file), 'utf8').includes(mark);
    return !here && !aside.some((a) => a.path === file && readFileSync(a.saved, 'utf8').includes(mark));
  });
  return { saves: lines.length, saved: new Set(last.keys()), lost: lost.map(([file]) => file) };
}

/** Runs the editor from `delayMs` after the update starts until it ends; returns what the update said and what was lost. */
async function race(delayMs: number, seed: number) {
  const w = world();
  const scratch = tempDir('gsync-race-');
  const [list, journal, stop] = ['files.txt', 'journal.txt', 'stop'].map((n) => join(scratch, n)) as [string, string, string];
  writeFileSync(list, `${w.paths.join('\n')}\n`);
  const editor = spawn(process.execPath, [EDITOR, w.repo.dir, list, journal, stop, String(delayMs), String(seed)], { stdio: 'inherit' });
  const exited = new Promise((done) => editor.on('exit', done));
  let update: CheckoutUpdate | undefined;
  try {
    update = await fastForwardCheckout(w.repo.dir, 'refs/heads/main', w.from, w.to, join(scratch, 'aside'), 'gsync: merge');
  } finally {
    // A few saves after the update as well: those land on the new files.
    await new Promise((r) => setTimeout(r, 50));
    appendFileSync(stop, '');
    await exited;
  }
  return { ...w, update, ...lostSaves(w.repo.dir, journal, update) };
}

describe('saving files while gsync updates the checkout', () => {
  it('the checker sees a save that was overwritten (it can fail)', () => {
    const dir = tempDir('gsync-race-');
    const journal = join(dir, 'journal.txt');
    writeFileSync(join(dir, 'a.txt'), 'x\nedit-1-0\n');
    writeFileSync(journal, 'a.txt\tedit-1-0\n');
    expect(lostSaves(dir, journal, undefined).lost).toEqual([]);
    writeFileSync(join(dir, 'a.txt'), 'the merged version\n');
    expect(lostSaves(dir, journal, undefined).lost).toEqual(['a.txt']);
  });

  it('never loses a save, whenever the editor starts; files nobody touched are exactly the merged ones', async () => {
    let racing = 0;
    let updated = 0;
    for (const [round, delayMs] of [0, 20, 50, 100, 150, 250, 400].entries()) {
      const r = await race(delayMs, round + 1);
      expect(r.lost, `round ${round} (editor after ${delayMs} ms): saves lost in ${r.lost.join(', ')}`).toEqual([]);
      if (r.update?.kind === 'refused') {
        // The editor was first: nothing moved, every save is where it was made.
        expect(r.repo.head('main')).toBe(r.from);
        continue;
      }
      updated++;
      expect(r.repo.head('main')).toBe(r.to);
      // Only files the editor saved differ from the merge (they hold the user's saves); the rest are exactly the merged ones.
      const changed = r.repo.git('diff', 'HEAD', '--name-only', '-z').split('\0').filter(Boolean);
      expect(changed.filter((f) => !r.saved.has(f))).toEqual([]);
      if (r.update?.kind === 'updated') racing += r.update.kept.length + r.update.aside.length;
    }
    expect(updated).toBeGreaterThan(0);
    expect(racing).toBeGreaterThan(0);
  }, 180_000);

  it('through pull: saves made while main moves are kept, and the run says where', async () => {
    const paths = Array.from({ length: FILES }, (_, i) => `src/part${i % 20}/file${i}.txt`);
    const repo = gitRepo(Object.fromEntries(paths.map((p, i) => [p, `line one of ${i}\nline two\n`])));
    const configDir = tempDir('gsync-config-');
    writeConfig(
      configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
      { proj: { repo_local: repo.dir } },
    );
    const ctx = testContext(configDir);
    const spec = ['# touch every file', ...paths.map((p) => `append ${p} changed by the task`)].join('\n');
    await dispatch(ctx, { project: 'proj', spec: specFile(tempDir('gsync-specs-'), 'all.md', spec) });

    const scratch = tempDir('gsync-race-');
    const [list, journal, stop] = ['files.txt', 'journal.txt', 'stop'].map((n) => join(scratch, n)) as [string, string, string];
    writeFileSync(list, `${paths.join('\n')}\n`);
    // The editor starts the moment the checkout's update begins (its staging folder appears), after the check that it is clean.
    const when = `when:${join(repo.dir, '.git', `gsync-checkout-${process.pid}`)}`;
    const editor = spawn(process.execPath, [EDITOR, repo.dir, list, journal, stop, when, '7'], { stdio: 'inherit' });
    const exited = new Promise((done) => editor.on('exit', done));
    let report: Awaited<ReturnType<typeof pullBundles>>;
    try {
      report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 120 });
    } finally {
      appendFileSync(stop, '');
      await exited;
    }
    const task = report.tasks[0]!;
    expect(task.outcome).toBe('merged');
    expect(repo.head('main')).toBe(task.merge_commit);
    const edits = task.edits_during_merge!;
    const { lost, saves } = lostSaves(repo.dir, journal, { kind: 'updated', kept: edits.kept, aside: edits.aside, byGit: false });
    expect(saves).toBeGreaterThan(0);
    expect(lost).toEqual([]);
    expect(edits.kept.length + edits.aside.length).toBeGreaterThan(0);
    const text = readFileSync(report.report_path!, 'utf8');
    expect(text).toContain('saved in the checkout while this merge updated it, and kept');
    expect(text).toContain(`\`${edits.kept[0] ?? edits.aside[0]!.path}\``);
  }, 180_000);
});
