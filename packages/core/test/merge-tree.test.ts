import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, gitRepo, type GitRepo } from '../../../test/helpers/git-repo.js';
import { gitOps } from '@gsync/core';

const { mergeTree, parseMergeTree } = gitOps;

afterAll(cleanupTempDirs);

/** Real `git merge-tree --write-tree -z --name-only` output, as mergeTree() asks for it. */
function rawMergeTree(repo: GitRepo, ours: string, theirs: string): { stdout: string; clean: boolean } {
  const r = spawnSync('git', ['merge-tree', '--write-tree', '-z', '--name-only', ours, theirs], { cwd: repo.dir, encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`git merge-tree exited ${r.status}: ${r.stderr}`);
  return { stdout: r.stdout, clean: r.status === 0 };
}

/** A repo whose main and `side` branches each moved on from one base commit of `base`. */
function diverged(base: Record<string, string>, ours: (r: GitRepo) => void, theirs: (r: GitRepo) => void) {
  const repo = gitRepo(base);
  repo.git('checkout', '-q', '-b', 'side');
  theirs(repo);
  const side = repo.commitAll('theirs');
  repo.git('checkout', '-q', 'main');
  ours(repo);
  const main = repo.commitAll('ours');
  return { repo, main, side };
}

const objectType = (repo: GitRepo, oid: string) => repo.git('cat-file', '-t', oid).trim();

describe('parseMergeTree on real git merge-tree output', () => {
  it('a clean merge: the tree holds both sides and nothing conflicts', () => {
    const { repo, main, side } = diverged(
      { 'a.txt': 'a\n', 'b.txt': 'b\n' },
      (r) => r.write('a.txt', 'a from main\n'),
      (r) => r.write('b.txt', 'b from side\n'),
    );
    const raw = rawMergeTree(repo, main, side);
    expect(raw.clean).toBe(true);
    const result = parseMergeTree(raw.stdout, raw.clean);
    expect(result.clean).toBe(true);
    expect(result.conflicts).toEqual([]);
    expect(result.messages).toEqual([]);
    expect(result.tree).toMatch(/^[0-9a-f]{40}$/);
    expect(objectType(repo, result.tree)).toBe('tree');
    expect(repo.git('show', `${result.tree}:a.txt`)).toBe('a from main\n');
    expect(repo.git('show', `${result.tree}:b.txt`)).toBe('b from side\n');
  });

  it('the same lines changed on both sides: that one path conflicts, the cleanly merged one does not', () => {
    const { repo, main, side } = diverged(
      { 'f.txt': 'one\ntwo\nthree\n', 'other.txt': 'x\n' },
      (r) => r.write('f.txt', 'one\nMAIN\nthree\n'),
      (r) => {
        r.write('f.txt', 'one\nSIDE\nthree\n');
        r.write('other.txt', 'y\n');
      },
    );
    const raw = rawMergeTree(repo, main, side);
    expect(raw.clean).toBe(false);
    const result = parseMergeTree(raw.stdout, raw.clean);
    expect(result.clean).toBe(false);
    expect(result.conflicts).toEqual(['f.txt']);
    expect(result.messages).toContain('CONFLICT (content): Merge conflict in f.txt');
    expect(result.messages).toContain('Auto-merging f.txt');
    expect(objectType(repo, result.tree)).toBe('tree');
    expect(repo.git('show', `${result.tree}:other.txt`)).toBe('y\n');
  });

  it('add/add: both sides create the same path with different content', () => {
    const { repo, main, side } = diverged(
      { 'README.md': 'hi\n' },
      (r) => r.write('new.txt', 'main version\n'),
      (r) => r.write('new.txt', 'side version\n'),
    );
    const raw = rawMergeTree(repo, main, side);
    const result = parseMergeTree(raw.stdout, raw.clean);
    expect(result.clean).toBe(false);
    expect(result.conflicts).toEqual(['new.txt']);
    expect(result.messages).toContain('CONFLICT (add/add): Merge conflict in new.txt');
  });

  it('modify/delete: one side edits what the other deletes', () => {
    const { repo, main, side } = diverged(
      { 'gone.txt': 'keep me\n' },
      (r) => r.git('rm', '-q', 'gone.txt'),
      (r) => r.write('gone.txt', 'edited\n'),
    );
    const raw = rawMergeTree(repo, main, side);
    const result = parseMergeTree(raw.stdout, raw.clean);
    expect(result.conflicts).toEqual(['gone.txt']);
    expect(result.messages.some((m) => m.startsWith('CONFLICT (modify/delete): gone.txt deleted in'))).toBe(true);
  });

  it('several conflicts with awkward path names (digits, spaces, a newline, unicode), each listed once', () => {
    const names = ['42', 'dir/with space.txt', 'line\nbreak.txt', 'ünï项目.txt'];
    const { repo, main, side } = diverged(
      Object.fromEntries(names.map((n) => [n, 'base\n'])),
      (r) => {
        for (const n of names) r.write(n, 'main\n');
      },
      (r) => {
        for (const n of names) r.write(n, 'side\n');
      },
    );
    const raw = rawMergeTree(repo, main, side);
    const result = parseMergeTree(raw.stdout, raw.clean);
    expect([...result.conflicts].sort()).toEqual([...names].sort());
    expect(result.messages.filter((m) => m.startsWith('CONFLICT (content)'))).toHaveLength(names.length);
    expect(result.messages.every((m) => !/^\d+$/.test(m))).toBe(true);
  });

  it('mergeTree() runs git and agrees with the parser', async () => {
    const { repo, main, side } = diverged(
      { 'f.txt': '1\n' },
      (r) => r.write('f.txt', '2\n'),
      (r) => r.write('f.txt', '3\n'),
    );
    const result = await mergeTree(repo.dir, main, side);
    expect(result).toEqual(parseMergeTree(rawMergeTree(repo, main, side).stdout, false));
    expect(result.conflicts).toEqual(['f.txt']);
  });
});

describe('parseMergeTree on hand-written output', () => {
  const tree = 'c'.repeat(40);

  it('a clean result is only the tree', () => {
    expect(parseMergeTree(`${tree}\0`, true)).toEqual({ clean: true, tree, conflicts: [], messages: [] });
  });

  it('skips message paths by their count, so a path never reads as a message', () => {
    const stdout = `${tree}\0a\0b\0\0` + `2\0a\0b\0CONFLICT (rename/rename)\0renamed both ways\n\0` + `1\0a\0Auto-merging\0Auto-merging a\n\0`;
    expect(parseMergeTree(stdout, false)).toEqual({
      clean: false,
      tree,
      conflicts: ['a', 'b'],
      messages: ['renamed both ways', 'Auto-merging a'],
    });
  });

  it('lists a path once even if it appears twice', () => {
    expect(parseMergeTree(`${tree}\0a\0a\0\0`, false).conflicts).toEqual(['a']);
  });
});
