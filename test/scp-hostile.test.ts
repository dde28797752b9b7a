import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Headers } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles } from '@gsync/controller';
import type { TaskResult } from '@gsync/core';
import { AGENTS, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * A node in the scp mode sends a tar of files and a list of paths: hostile data like any
 * other. Each case lets a real task finish on a local node, then rewrites its result.tar
 * (and result.json to match its size and sha256, so the download passes) before the pull.
 * A result that breaks a rule is rejected, main never moves, and nothing of it enters the
 * repository; a result with odd but lawful names merges exactly.
 */
afterAll(cleanupTempDirs);

type Entry = Partial<Headers> & { name: string; body?: string };

async function writeTar(file: string, entries: readonly Entry[]): Promise<void> {
  const tar = pack();
  const written = pipeline(tar as unknown as Readable, createWriteStream(file));
  for (const { body, ...header } of entries) {
    if (header.type && header.type !== 'file') tar.entry({ mode: 0o644, ...header });
    else tar.entry({ mode: 0o644, ...header }, body ?? '');
  }
  tar.finalize();
  await written;
}

interface Case {
  entries?: readonly Entry[];
  /** Raw bytes instead of a tar. */
  raw?: Buffer;
  changed: string[];
  deleted?: string[];
  /** Other changes to result.json. */
  patch?: (r: TaskResult) => TaskResult;
}

let repo: GitRepo;
let base: string;
let n = 0;

beforeAll(() => {
  repo = gitRepo({ 'README.md': 'hello\n', 'src/app.py': 'app\n' });
  base = repo.head('main');
});

async function waitFinal(statusFile: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if (/"state": "(done|empty|failed|timeout)"/.test(readFileSync(statusFile, 'utf8'))) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${statusFile} never ended`);
}

/** Runs one task on a fresh local node, rewrites its result, pulls: the pull's one task. */
async function pullTampered(c: Case) {
  const configDir = tempDir('gsync-config-');
  const node = `n${++n}`;
  writeConfig(
    configDir,
    { nodes: [{ name: node, transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
    { proj: { repo_local: repo.dir, sync_mode: 'scp' } },
  );
  const ctx = testContext(configDir);
  const specs = tempDir('gsync-specs-');
  const sent = await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', '# t\nwrite src/app.py changed\n'), node });
  const task = join(configDir, 'nodes', node, 'dispatch/proj/tasks', sent.task_id);
  await waitFinal(join(task, 'status.json'));
  const tarFile = join(task, 'result.tar');
  if (c.raw) writeFileSync(tarFile, c.raw);
  else await writeTar(tarFile, c.entries ?? []);
  const bytes = readFileSync(tarFile);
  const result = JSON.parse(readFileSync(join(task, 'result.json'), 'utf8')) as TaskResult;
  const files = {
    file: { name: 'result.tar', size: statSync(tarFile).size, sha256: createHash('sha256').update(bytes).digest('hex') },
    deleted: c.deleted ?? [],
  };
  const changed = { ...result, changed_paths: c.changed, files };
  writeFileSync(join(task, 'result.json'), JSON.stringify(c.patch ? c.patch(changed) : changed));
  const report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
  return { report, task: report.tasks[0]!, branch: sent.branch, configDir };
}

/** Nothing of a rejected result is anywhere in the repository. */
function untouched(branch: string) {
  expect(repo.head('main')).toBe(base);
  expect(repo.git('branch', '--list', `${branch}*`)).toBe('');
  expect(repo.git('for-each-ref', 'refs/gsync/incoming/')).toBe('');
}

describe('a hostile result in the scp mode', () => {
  const rejected: [string, Case, RegExp][] = [
    ['a path out of the tree', { entries: [{ name: '../escape', body: 'x' }], changed: ['../escape'] }, /unsafe path/],
    ['a path into .git', { entries: [{ name: '.git/config', body: 'x' }], changed: ['.git/config'] }, /unsafe path/],
    ['an absolute path in the tar only', { entries: [{ name: '/etc/x', body: 'x' }], changed: ['src/app.py'] }, /unsafe path/],
    [
      'a file result.json does not list',
      {
        entries: [
          { name: 'src/app.py', body: 'x' },
          { name: 'extra', body: 'x' },
        ],
        changed: ['src/app.py'],
      },
      /does not list/,
    ],
    ['a listed file the tar lacks', { entries: [{ name: 'src/app.py', body: 'x' }], changed: ['src/app.py', 'other'] }, /lacks "other"/],
    [
      'a deleted path that is also written',
      { entries: [{ name: 'src/app.py', body: 'x' }], changed: ['src/app.py'], deleted: ['src/app.py'] },
      /does not list/,
    ],
    [
      'a deleted path not among the changed ones',
      { entries: [{ name: 'src/app.py', body: 'x' }], changed: ['src/app.py'], deleted: ['README.md'] },
      /deleted paths/,
    ],
    [
      'a path given twice',
      {
        entries: [
          { name: 'src/app.py', body: 'x' },
          { name: 'src/app.py', body: 'y' },
        ],
        changed: ['src/app.py'],
      },
      /twice/,
    ],
    ['a device', { entries: [{ name: 'dev', type: 'character-device' }], changed: ['dev'] }, /type character-device/],
    ['a hard link', { entries: [{ name: 'src/app.py', type: 'link', linkname: 'README.md' }], changed: ['src/app.py'] }, /type link/],
    ['bytes that are no tar', { raw: Buffer.alloc(1536, 7), changed: ['src/app.py'] }, /cannot be read|lacks/],
    [
      'a link out of the repository',
      { entries: [{ name: 'out', type: 'symlink', linkname: '../../etc/passwd' }], changed: ['out'] },
      /symlink leading outside/,
    ],
    [
      'a finish time that is no time',
      { entries: [{ name: 'src/app.py', body: 'x' }], changed: ['src/app.py'], patch: (r) => ({ ...r, finished_at: 'soon' }) },
      /finished_at/,
    ],
    [
      'a name HFS+ reads as .git (an ignorable code point in it)',
      { entries: [{ name: '.git\u200c/hooks/post-checkout', body: 'x', mode: 0o755 }], changed: ['.git\u200c/hooks/post-checkout'] },
      /unsafe path/,
    ],
    ['a name NTFS reads as .git (its short name)', { entries: [{ name: 'x/GIT~1/config', body: 'x' }], changed: ['x/GIT~1/config'] }, /unsafe path/],
    [
      'a name NTFS reads as .git (an alternate stream)',
      { entries: [{ name: '.git::$INDEX_ALLOCATION/config', body: 'x' }], changed: ['.git::$INDEX_ALLOCATION/config'] },
      /unsafe path/,
    ],
    ['a name HFS+ reads as .gitmodules', { entries: [{ name: '.gitmodules\u200d', body: 'x' }], changed: ['.gitmodules\u200d'] }, /submodule settings/],
    [
      'a file written where a folder was, its files not listed as deleted',
      { entries: [{ name: 'src', body: 'x' }], changed: ['src'] },
      /change "src\/app.py", which result.json does not list/,
    ],
    [
      'a file written under a file, that file not listed as deleted',
      { entries: [{ name: 'README.md/x', body: 'x' }], changed: ['README.md/x'] },
      /change "README.md", which result.json does not list/,
    ],
    [
      'a bundle and files at once',
      { entries: [{ name: 'src/app.py', body: 'x' }], changed: ['src/app.py'], patch: (r) => ({ ...r, bundle: r.files!.file, head: base }) },
      /neither a bundle with its head nor a tar/,
    ],
  ];
  for (const [what, c, reason] of rejected) {
    it(`rejects ${what}, and nothing of it enters the repository`, async () => {
      const { report, task, branch } = await pullTampered(c);
      expect(task.outcome).toBe('rejected');
      expect(task.reason).toMatch(reason);
      expect(report.exit_code).toBe(3);
      untouched(branch);
    });
  }

  it('merges lawful names exactly: spaces, a leading quote, a line break, a backslash, non-ASCII, C1 and bidi', async () => {
    const names = ['dir with space/a b.txt', '"quoted.txt', 'line\nbreak.txt', 'back\\slash.txt', 'ünï/çødé.txt', 'c1\u009b31m\u202etxt.exe'];
    const { task, configDir } = await pullTampered({ entries: names.map((name) => ({ name, body: `${name}\n` })), changed: names });
    expect(task.outcome).toBe('merged');
    for (const name of names) expect(repo.git('cat-file', 'blob', `main:${name}`)).toBe(`${name}\n`);
    // The store keeps the names as they are, written as \u escapes: no C1 or bidi character in its files.
    const stored = ['gsync.db', 'gsync.db-wal'].map((f) => join(configDir, f)).filter(existsSync);
    for (const f of stored) for (const ch of ['\u009b', '\u202e']) expect(readFileSync(f).includes(Buffer.from(ch))).toBe(false);
    expect(readFileSync(join(configDir, 'gsync.db')).includes(Buffer.from('c1\\u009b31m\\u202etxt.exe'))).toBe(true);
    base = repo.head('main');
  });
});
