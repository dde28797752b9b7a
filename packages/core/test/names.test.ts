import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { UsageError } from '@gsync/core';
import { checkName, incomingRef, isValidName, nameProblem, nextTaskId, taskBranch } from '@gsync/core';

function gitAcceptsRef(ref: string): boolean {
  return spawnSync('git', ['check-ref-format', ref]).status === 0;
}

/** Names become path components on two machines and one component of a git ref. */
describe('name validation', () => {
  const accepted = ['S01', 'a', '7', 'gpu-1', 'my_project', 'v1.2.3', 'A-b_c.d', 'x'.repeat(64), 'lockfile', 'a.locks'];
  for (const value of accepted) {
    it(`accepts ${JSON.stringify(value)}`, () => {
      expect(nameProblem(value)).toBeUndefined();
      expect(isValidName(value)).toBe(true);
      expect(checkName('project', value)).toBe(value);
    });
  }

  const rejected: [string, string, RegExp][] = [
    ['empty', '', /is empty/],
    ['a path climbing out', '../../x', /may hold only/],
    ['dot-dot alone', '..', /may hold only/],
    ['a single dot', '.', /may hold only/],
    ['dot-dot inside', 'a..b', /may not contain "\.\."/],
    ['a slash', 'a/b', /may hold only/],
    ['a backslash', 'a\\b', /may hold only/],
    ['a leading dash (would read as a flag)', '-leading', /may hold only/],
    ['a trailing dash', 'trailing-', /may hold only/],
    ['a leading dot', '.hidden', /may hold only/],
    ['a trailing dot', 'name.', /may hold only/],
    ['a space', 'two words', /may hold only/],
    ['a leading space', ' S01', /may hold only/],
    ['a newline', 'S01\nrm', /may hold only/],
    ['a trailing newline', 'S01\n', /may hold only/],
    ['a tab', 'a\tb', /may hold only/],
    ['a shell substitution', '$(id)', /may hold only/],
    ['backticks', '`id`', /may hold only/],
    ['a semicolon', 'a;b', /may hold only/],
    ['a glob', 'a*', /may hold only/],
    ['a ref-ish tilde', 'a~1', /may hold only/],
    ['a ref-ish caret', 'a^', /may hold only/],
    ['a ref-ish at-brace', 'a@{1}', /may hold only/],
    ['a colon', 'a:b', /may hold only/],
    ['non-ASCII letters', 'café', /may hold only/],
    ['CJK', '项目', /may hold only/],
    ['an emoji', 'gpu🔥', /may hold only/],
    ['a NUL byte', 'a\0b', /may hold only/],
    ['a .lock ending (git refuses such refs)', 'branch.lock', /may not end in "\.lock"/],
    ['65 characters', 'x'.repeat(65), /is 65 characters long \(64 at most\)/],
    ['very long', 'y'.repeat(10_000), /is 10000 characters long/],
  ];
  for (const [what, value, problem] of rejected) {
    it(`rejects ${what}`, () => {
      expect(nameProblem(value)).toMatch(problem);
      expect(isValidName(value)).toBe(false);
    });
  }

  it('checkName throws a UsageError naming the kind, the value and the problem, with a hint', () => {
    let error: unknown;
    try {
      checkName('task id', '../../x');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    const usage = error as UsageError;
    expect(usage.message).toBe('task id "../../x" may hold only letters, digits, ".", "_" and "-", and must start and end with a letter or digit');
    expect(usage.hint).toMatch(/choose a task id like/);
  });

  it('checkName quotes control characters so the message stays one line', () => {
    expect(() => checkName('node', 'a\nb')).toThrow('node "a\\nb" may hold only');
  });

  it('every accepted name makes a branch and an incoming ref that real git accepts', () => {
    for (const value of accepted) {
      expect(gitAcceptsRef(`refs/heads/${taskBranch(value, value, value)}`), value).toBe(true);
      expect(gitAcceptsRef(incomingRef(value, value, value)), value).toBe(true);
    }
    // ...and the names refused for git's sake are ones git itself would refuse.
    for (const value of ['a..b', 'branch.lock', 'a~1', 'a:b', 'two words']) {
      expect(gitAcceptsRef(incomingRef(value, 'S01', 'n')), value).toBe(false);
    }
  });
});

describe('taskBranch', () => {
  it('joins project, task id and node under the default prefix', () => {
    expect(taskBranch('proj', 'S01', 'gpu-1')).toBe('task/proj-S01-gpu-1');
  });

  it('uses a configured prefix', () => {
    expect(taskBranch('proj', 'S12', 'n2', 'agents/')).toBe('agents/proj-S12-n2');
  });

  it('keeps different tasks on different branches', () => {
    const branches = new Set([taskBranch('p', 'S01', 'n1'), taskBranch('p', 'S02', 'n1'), taskBranch('p', 'S01', 'n2'), taskBranch('q', 'S01', 'n1')]);
    expect(branches.size).toBe(4);
  });
});

describe('incomingRef', () => {
  it('puts the result in a quarantine namespace outside refs/heads', () => {
    const ref = incomingRef('proj', 'S07', 'gpu-1');
    expect(ref).toBe('refs/gsync/incoming/proj/S07-gpu-1');
    expect(ref.startsWith('refs/heads/')).toBe(false);
  });

  it('separates projects by path component', () => {
    expect(incomingRef('a', 'S01', 'n')).not.toBe(incomingRef('b', 'S01', 'n'));
  });
});

describe('nextTaskId', () => {
  const cases: [string[], string][] = [
    [[], 'S01'],
    [['S01'], 'S02'],
    [['S01', 'S02', 'S03'], 'S04'],
    [['S09'], 'S10'],
    [['S99'], 'S100'],
    [['S100', 'S07'], 'S101'],
    [['S03', 'S01'], 'S04'],
    [['S05', 'fix-login', 'S5x', 's09', 'SS10', 'S'], 'S06'],
    [['fix-login', 'hotfix'], 'S01'],
    [['S001'], 'S02'],
  ];
  for (const [existing, next] of cases) {
    it(`after ${JSON.stringify(existing)} picks ${next}`, () => {
      expect(nextTaskId(existing)).toBe(next);
    });
  }

  it('always picks a valid, unused name', () => {
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) ids.push(nextTaskId(ids));
    expect(new Set(ids).size).toBe(120);
    expect(ids.every(isValidName)).toBe(true);
    expect(ids.at(-1)).toBe('S120');
  });
});
