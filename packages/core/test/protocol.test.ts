import { describe, expect, it } from 'vitest';
import type * as z from 'zod/mini';
import { TaskManifest, TaskReport, TaskResult, TaskStatus, describeZodError, gitDotfile, isFinal, resultFile, safeTreePath } from '@gsync/core';

const SHA1 = '0123456789abcdef0123456789abcdef01234567';
const SHA1_B = 'fedcba9876543210fedcba9876543210fedcba98';
const SHA256 = 'ab'.repeat(32);

function manifest(): Record<string, unknown> {
  return {
    protocol: 1,
    project: 'gem-platform',
    task_id: 'S01',
    node: 'gpu-1',
    branch: 'task/gem-platform-S01-gpu-1',
    base: { ref: 'refs/heads/main', commit: SHA1 },
    bundle: { name: 'base.bundle', size: 1234, sha256: SHA256 },
    spec: { name: 'spec.md', sha256: SHA256, title: 'Fix the login bug' },
    agent: { argv: ['claude', '-p', '{spec}'], timeout_seconds: 3600, kill_grace_seconds: 10 },
    created_at: '2025-01-02T03:04:05.000Z',
  };
}

function result(): Record<string, unknown> {
  return {
    protocol: 1,
    project: 'gem-platform',
    task_id: 'S01',
    node: 'gpu-1',
    branch: 'task/gem-platform-S01-gpu-1',
    base: SHA1,
    head: SHA1_B,
    commits: 2,
    changed_paths: ['src/a.ts', 'dir with space/b.md'],
    bundle: { name: 'result.bundle', size: 999, sha256: SHA256 },
    wip: false,
    agent_exit_code: 0,
    finished_at: '2025-01-02T04:00:00.000Z',
  };
}

function status(): Record<string, unknown> {
  return {
    protocol: 1,
    state: 'running',
    updated_at: '2025-01-02T03:05:00.000Z',
    started_at: '2025-01-02T03:04:06.000Z',
    pid: 4242,
    agent_pid: 4243,
    history: [
      { state: 'received', at: '2025-01-02T03:04:06.000Z' },
      { state: 'running', at: '2025-01-02T03:05:00.000Z' },
    ],
  };
}

/** Sets `value` at a dotted path of a fresh object (undefined deletes the field). */
function withField(base: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = path.split('.');
  const last = keys.pop()!;
  let target = copy as Record<string, unknown>;
  for (const k of keys) target = target[k] as Record<string, unknown>;
  if (value === undefined) delete target[last];
  else target[last] = value;
  return copy;
}

/** The dotted path of the first problem zod reports, or 'ok'. */
function firstProblem(schema: z.ZodMiniType, value: unknown): string {
  const r = schema.safeParse(value);
  return r.success ? 'ok' : describeZodError(r.error).path;
}

describe('TaskManifest', () => {
  it('accepts a valid manifest as it is', () => {
    expect(TaskManifest.parse(manifest())).toEqual(manifest());
  });

  it('fills in the kill grace period when it is left out', () => {
    const parsed = TaskManifest.parse(withField(manifest(), 'agent.kill_grace_seconds', undefined));
    expect(parsed.agent.kill_grace_seconds).toBe(5);
  });

  it('drops fields it does not know rather than carrying them along', () => {
    const parsed = TaskManifest.parse({ ...manifest(), extra: 'x', agent: { ...(manifest().agent as object), shell: true } });
    expect(parsed).not.toHaveProperty('extra');
    expect(parsed.agent).not.toHaveProperty('shell');
  });

  const bad: [string, string, unknown, string][] = [
    ['another protocol version', 'protocol', 2, 'protocol'],
    ['the protocol as a string', 'protocol', '1', 'protocol'],
    ['a path-like project', 'project', '../../x', 'project'],
    ['a task id with a substitution', 'task_id', '$(id)', 'task_id'],
    ['a node name with a space', 'node', 'gpu 1', 'node'],
    ['an empty branch', 'branch', '', 'branch'],
    ['a short base ref', 'base.ref', 'main', 'base.ref'],
    ['a tag as base ref', 'base.ref', 'refs/tags/v1', 'base.ref'],
    ['an abbreviated base commit', 'base.commit', SHA1.slice(0, 12), 'base.commit'],
    ['an upper-case base commit', 'base.commit', SHA1.toUpperCase(), 'base.commit'],
    ['a negative bundle size', 'bundle.size', -1, 'bundle.size'],
    ['a fractional bundle size', 'bundle.size', 1.5, 'bundle.size'],
    ['a bundle size as a string', 'bundle.size', '1234', 'bundle.size'],
    ['a short sha256', 'bundle.sha256', 'ab'.repeat(20), 'bundle.sha256'],
    ['another spec file name', 'spec.name', '../spec.md', 'spec.name'],
    ['an empty agent argv', 'agent.argv', [], 'agent.argv'],
    ['an agent command as a string', 'agent.argv', 'claude -p {spec}', 'agent.argv'],
    ['a number in the argv', 'agent.argv', ['claude', 1], 'agent.argv.1'],
    ['a zero timeout', 'agent.timeout_seconds', 0, 'agent.timeout_seconds'],
    ['a negative kill grace', 'agent.kill_grace_seconds', -1, 'agent.kill_grace_seconds'],
    ['a missing created_at', 'created_at', undefined, 'created_at'],
    ['a missing base', 'base', undefined, 'base'],
    ['a missing spec title', 'spec.title', undefined, 'spec.title'],
  ];
  for (const [what, path, value, reported] of bad) {
    it(`refuses ${what}, naming ${reported}`, () => {
      expect(firstProblem(TaskManifest, withField(manifest(), path, value))).toBe(reported);
    });
  }

  it('refuses things that are not objects', () => {
    for (const value of [null, 'task', 42, []]) expect(TaskManifest.safeParse(value).success).toBe(false);
  });
});

describe('TaskResult', () => {
  it('accepts a valid result as it is', () => {
    expect(TaskResult.parse(result())).toEqual(result());
  });

  it('accepts a failed agent with no exit code (killed by a signal) and kept work in progress', () => {
    const parsed = TaskResult.parse({ ...result(), agent_exit_code: null, wip: true });
    expect([parsed.agent_exit_code, parsed.wip]).toEqual([null, true]);
  });

  const bad: [string, string, unknown, string?][] = [
    ['an abbreviated head', 'head', SHA1_B.slice(0, 7)],
    ['a ref name as base', 'base', 'refs/heads/main'],
    ['negative commits', 'commits', -1],
    ['fractional commits', 'commits', 0.5],
    ['changed paths as a string', 'changed_paths', 'a.ts'],
    ['a number among the paths', 'changed_paths', ['a.ts', 7], 'changed_paths.1'],
    ['wip as a string', 'wip', 'false'],
    ['a missing wip flag', 'wip', undefined],
    ['a missing exit code (it must be null, not absent)', 'agent_exit_code', undefined],
    ['a fractional exit code', 'agent_exit_code', 1.5],
    ['a bad node name', 'node', '-n1'],
    ['a deleted list that is not a list', 'files.deleted', 'a.txt'],
  ];
  for (const [what, path, value, reported = path] of bad) {
    it(`refuses ${what}, naming ${reported}`, () => {
      const files = { file: { name: 'result.tar', size: 1, sha256: 'b'.repeat(64) }, deleted: [] };
      expect(firstProblem(TaskResult, withField(path.startsWith('files.') ? { ...result(), files } : result(), path, value))).toBe(reported);
    });
  }

  it('says which file a result travels in: the bundle with its head, or the tar of files; never both, never neither', () => {
    const tar = { name: 'result.tar', size: 9, sha256: 'c'.repeat(64) };
    const git = TaskResult.parse(result());
    const { bundle: _b, head: _h, ...bare } = git;
    expect(resultFile(git)).toEqual(git.bundle);
    expect(resultFile({ ...bare, files: { file: tar, deleted: [] } })).toEqual(tar);
    expect(resultFile(bare)).toBeUndefined();
    expect(resultFile({ ...bare, bundle: git.bundle })).toBeUndefined();
    expect(resultFile({ ...git, files: { file: tar, deleted: [] } })).toBeUndefined();
  });

  it('tells a safe tree path from one that leaves the tree or enters .git', () => {
    for (const ok of ['a', 'api/pack.py', 'a b/c', '.github/x', '..a', 'a\\b']) expect(safeTreePath(ok)).toBe(true);
    for (const bad of ['', '/etc/passwd', '../x', 'a/../b', 'a//b', './a', 'a/', '.git/config', 'x/.GIT/hooks', 'a\0b']) expect(safeTreePath(bad)).toBe(false);
    // Names a file system reads as .git: HFS+ ignores some code points, NTFS trailing dots, spaces and streams, and has short names.
    for (const bad of ['.git\u200c/hooks/x', 'x/.G\u200dIT\ufeff/config', '.git./x', '.git ./x', '.git::$INDEX_ALLOCATION/x', 'GIT~1/config', 'a\\.git/x'])
      expect(safeTreePath(bad), JSON.stringify(bad)).toBe(false);
  });
});

describe('TaskStatus', () => {
  it('accepts a valid status', () => {
    expect(TaskStatus.parse(status())).toEqual(status());
  });

  it('accepts a final status with a null agent exit code and an error', () => {
    expect(TaskStatus.safeParse({ ...status(), state: 'timeout', agent_exit_code: null, error: 'killed after 3600s' }).success).toBe(true);
  });

  it('refuses a state it does not know, in the status and in its history', () => {
    expect(firstProblem(TaskStatus, { ...status(), state: 'exploded' })).toBe('state');
    expect(firstProblem(TaskStatus, { ...status(), history: [{ state: 'paused', at: 'now' }] })).toBe('history.0.state');
  });

  it('refuses a missing history', () => {
    expect(firstProblem(TaskStatus, withField(status(), 'history', undefined))).toBe('history');
  });
});

describe('TaskReport', () => {
  it('accepts a report of a task dir that does not exist', () => {
    expect(TaskReport.safeParse({ task_id: 'S09', exists: false, status: null, result: null }).success).toBe(true);
  });

  it('checks the status and result it carries', () => {
    expect(firstProblem(TaskReport, { task_id: 'S01', exists: true, status: status(), result: { ...result(), head: 'x' } })).toBe('result.head');
  });
});

describe('isFinal', () => {
  it('is true only for states a task never leaves', () => {
    const states = ['received', 'preparing', 'running', 'committing', 'bundling', 'done', 'empty', 'failed', 'timeout'] as const;
    expect(states.filter(isFinal)).toEqual(['done', 'empty', 'failed', 'timeout']);
  });
});

describe('describeZodError', () => {
  it('gives the first issue with its path and message', () => {
    const r = TaskManifest.safeParse(withField(manifest(), 'base.commit', 'nope'));
    expect(r.success).toBe(false);
    expect(describeZodError(r.error!)).toEqual({ path: 'base.commit', message: 'is not a commit id' });
  });

  it('uses the name message for a bad name', () => {
    const r = TaskResult.safeParse(withField(result(), 'project', 'a/b'));
    expect(describeZodError(r.error!)).toEqual({ path: 'project', message: 'is not a valid name' });
  });
});

describe('gitDotfile', () => {
  it('reads a name as git fsck does: .git and .gitmodules in every disguise, nothing else', () => {
    for (const name of ['.git', '.GIT', '.git\u200e', '\u202a.git', '.git. . ', '.git:stream', 'git~1', 'GIT~1.', 'x\\.git'])
      expect(gitDotfile(name), JSON.stringify(name)).toBe('.git');
    for (const name of ['.gitmodules', '.GitModules\u206a', '.gitmodules ', 'GITMOD~1', 'gi7eba~12'])
      expect(gitDotfile(name), JSON.stringify(name)).toBe('.gitmodules');
    for (const name of ['.github', 'git', '.gitignore', 'x.git', '.git-x', 'git~0', 'git~1x', '.gitmodulesx', 'gitmod~0', '..git'])
      expect(gitDotfile(name), JSON.stringify(name)).toBeUndefined();
  });
});
