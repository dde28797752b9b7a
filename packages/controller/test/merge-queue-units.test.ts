import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { conflictHunks, hasConflictMarkers } from '@gsync/core';
import { overlappingPairs } from '@gsync/controller';
import { resolutionSpec, type ConflictPicture } from '@gsync/controller';
import { specFiles } from '@gsync/controller';
import { outputTail, testGateEnv } from '@gsync/controller';
import type { TaskRow } from '@gsync/controller';

describe('overlappingPairs', () => {
  it("pairs tasks that share a path or where one uses the other's file as a directory", () => {
    const tasks = [
      { paths: ['a.txt', 'src/x.ts'] },
      { paths: ['b.txt'] },
      { paths: ['src/x.ts'] },
      { paths: ['lib'] },
      { paths: ['lib/deep/y.ts'] },
      { paths: ['a.txt'] },
    ];
    expect(overlappingPairs(tasks)).toEqual([
      [0, 2],
      [0, 5],
      [3, 4],
    ]);
  });

  it('is never missing a pair that shares a path, and never pairs disjoint tasks (property)', () => {
    const path = fc.constantFrom('a', 'b', 'c/d', 'c/e', 'f/g/h');
    fc.assert(
      fc.property(fc.array(fc.uniqueArray(path, { maxLength: 3 }), { maxLength: 8 }), (lists) => {
        const pairs = new Set(overlappingPairs(lists.map((paths) => ({ paths }))).map(([i, j]) => `${i},${j}`));
        for (let i = 0; i < lists.length; i++) {
          for (let j = i + 1; j < lists.length; j++) {
            const related = lists[i]!.some((p) => lists[j]!.some((q) => p === q || p.startsWith(`${q}/`) || q.startsWith(`${p}/`)));
            expect(pairs.has(`${i},${j}`)).toBe(related);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('specFiles', () => {
  it('reads a "Files:" line and a "## Files" list, and ignores what is not a safe relative path', () => {
    expect(specFiles('# t\nFiles: api/pack.py, `schemas/pack.py` ./c.txt\n')).toEqual(['api/pack.py', 'schemas/pack.py', 'c.txt']);
    expect(specFiles('# t\n\n## Files\n\n- `a.py` - the parser\n* b/c.py\n\nprose\n- not/this.py\n')).toEqual(['a.py', 'b/c.py']);
    expect(specFiles('Files: /etc/passwd, ../up.txt, ok.txt\n')).toEqual(['ok.txt']);
    expect(specFiles('# nothing here\nwrite a.txt x\n')).toEqual([]);
  });
});

describe('conflict markers', () => {
  const text = 'a\nb\n<<<<<<< ours\nmine\n=======\ntheirs\n>>>>>>> theirs\nc\nd\ne\nf\n';
  it('finds hunks with context and knows a markdown underline is not a marker', () => {
    expect(conflictHunks(text, 1)).toEqual([{ startLine: 2, text: 'b\n<<<<<<< ours\nmine\n=======\ntheirs\n>>>>>>> theirs\nc' }]);
    expect(hasConflictMarkers(text)).toBe(true);
    expect(hasConflictMarkers('Title\n=======\n\ntext\n')).toBe(false);
  });
});

describe('testGateEnv', () => {
  it("hands the test command the user's environment without git redirections, agents or credentials", () => {
    const env = testGateEnv(
      {
        PATH: '/bin',
        HOME: '/h',
        LANG: 'C',
        GIT_DIR: '/x',
        SSH_AUTH_SOCK: '/s',
        AWS_SECRET_ACCESS_KEY: 'k',
        GITHUB_TOKEN: 't',
        MY_API_KEY: 'k',
        DB_PASSWORD: 'p',
        NODE_OPTIONS: '--x',
      },
      'c'.repeat(40),
    );
    expect(env).toEqual({ PATH: '/bin', HOME: '/h', LANG: 'C', NODE_OPTIONS: '--x', GSYNC_VERIFY_COMMIT: 'c'.repeat(40) });
  });
});

describe('outputTail', () => {
  it('keeps the last 30 lines and at most 4000 characters', () => {
    const out = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n');
    expect(outputTail(`${out}\n\n`).split('\n')).toEqual(Array.from({ length: 30 }, (_, i) => `line ${i + 70}`));
    expect(outputTail('x'.repeat(10000)).length).toBe(4001);
  });
});

describe('resolutionSpec', () => {
  const row = (id: string, spec: string, extra: Partial<TaskRow> = {}) =>
    ({
      task_id: id,
      node: 'n1',
      branch: `task/p-${id}-n1`,
      spec_title: spec.split('\n')[0],
      spec_text: spec,
      merge_commit: 'c'.repeat(40),
      ...extra,
    }) as TaskRow;
  it('holds both intents, the paths, the hunks, and a fence no spec can close', () => {
    const sneaky = '# B\nset f.txt 2 B\n````\n# not a heading of the resolution spec\n';
    const picture: ConflictPicture = {
      task: row('S02', sneaky),
      mainBranch: 'main',
      main: 'a'.repeat(40),
      paths: ['f.txt'],
      messages: ['CONFLICT (content): Merge conflict in f.txt'],
      others: [row('S01', '# A\nset f.txt 2 A\n')],
      hunks: [{ path: 'f.txt', hunks: [{ startLine: 1, text: '<<<<<<< x\nA\n=======\nB\n>>>>>>> y' }] }],
    };
    const spec = resolutionSpec(picture);
    expect(spec.split('\n')[0]).toBe('# Resolve the merge conflict of S02 with main');
    expect(spec).toContain('`````markdown\n# B\nset f.txt 2 B\n````\n# not a heading of the resolution spec\n`````');
    expect(spec).toContain('### S01 (merged as cccccccccccc)');
    expect(spec).toContain('- `f.txt`');
    expect(spec).toContain('> CONFLICT (content): Merge conflict in f.txt');
    expect(spec).toContain('<<<<<<< x\nA\n=======\nB\n>>>>>>> y');
  });
});
