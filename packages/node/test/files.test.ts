import { chmodSync, createWriteStream, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { pack, type Headers } from 'tar-stream';
import { changedFiles, extractTree, readBaseFiles, writeBaseFiles } from '../src/files.js';

/** The node's half of the scp mode: extracting the base's files safely, and finding what the agent changed without git. */
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'gsync-files-'));
  dirs.push(d);
  return d;
};

type Entry = Partial<Headers> & { name: string; body?: string };

async function tarOf(entries: readonly Entry[]): Promise<string> {
  const file = join(temp(), 'tree.tar');
  const tar = pack();
  const written = pipeline(tar as unknown as Readable, createWriteStream(file));
  for (const { body, ...header } of entries) {
    if (header.type === 'symlink' || header.type === 'directory') tar.entry({ mode: 0o755, ...header });
    else tar.entry({ mode: 0o644, ...header }, body ?? '');
  }
  tar.finalize();
  await written;
  return file;
}

/** A base extracted and its snapshot written, as `gsync-node run` does before the agent. */
async function extracted(entries: readonly Entry[]) {
  const dir = temp();
  const repo = join(dir, 'repo');
  const base = await extractTree(await tarOf(entries), repo, 1 << 20);
  // Apart in time, so no file's mtime ties with the snapshot's (a tie is hashed, which is safe but would blur the tests).
  const pause = () => new Promise((r) => setTimeout(r, 20));
  await pause();
  await writeBaseFiles(join(dir, 'base-files.json'), base);
  await pause();
  return { repo, changes: async () => changedFiles(repo, await readBaseFiles(join(dir, 'base-files.json'))) };
}

describe('extracting the base', () => {
  it('writes files, modes and links where they belong', async () => {
    const { repo } = await extracted([
      { name: 'api/pack.py', body: 'api\n' },
      { name: 'schemas/pack.py', body: 'schemas\n' },
      { name: 'run.sh', body: '#!/bin/sh\n', mode: 0o755 },
      { name: 'latest', type: 'symlink', linkname: 'api/pack.py' },
    ]);
    expect(readFileSync(join(repo, 'api/pack.py'), 'utf8')).toBe('api\n');
    expect(readFileSync(join(repo, 'schemas/pack.py'), 'utf8')).toBe('schemas\n');
    expect(lstatSync(join(repo, 'run.sh')).mode & 0o111).toBe(0o111);
    expect(lstatSync(join(repo, 'latest')).isSymbolicLink()).toBe(true);
  });

  const hostile: [string, Entry[], RegExp][] = [
    ['a path out of the tree', [{ name: '../outside', body: 'x' }], /unsafe path/],
    ['an absolute path', [{ name: '/tmp/gsync-abs', body: 'x' }], /unsafe path/],
    ['a path into .git', [{ name: '.git/hooks/post-checkout', body: 'x' }], /unsafe path/],
    [
      'a path given twice',
      [
        { name: 'a', body: '1' },
        { name: 'a', body: '2' },
      ],
      /twice/,
    ],
    ['a device', [{ name: 'dev', type: 'character-device' }], /type character-device/],
    [
      'a hard link',
      [
        { name: 'a', body: '1' },
        { name: 'b', type: 'link', linkname: 'a' },
      ],
      /type link/,
    ],
  ];
  for (const [what, entries, message] of hostile) {
    it(`refuses ${what}`, async () => {
      const dir = temp();
      await expect(extractTree(await tarOf(entries), join(dir, 'repo'), 1 << 20)).rejects.toThrow(message);
      expect(existsSync(join(dir, 'outside'))).toBe(false);
    });
  }

  it('never writes through a link: a file under a path that is also a link fails, and nothing lands outside', async () => {
    const dir = temp();
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    const tar = await tarOf([
      { name: 'a', type: 'symlink', linkname: outside },
      { name: 'a/planted', body: 'x' },
    ]);
    await expect(extractTree(tar, join(dir, 'repo'), 1 << 20)).rejects.toThrow(/EEXIST/);
    expect(existsSync(join(outside, 'planted'))).toBe(false);
  });

  it('refuses more bytes of files than the limit', async () => {
    const dir = temp();
    await expect(extractTree(await tarOf([{ name: 'big', body: 'x'.repeat(100) }]), join(dir, 'repo'), 10)).rejects.toThrow(/more than 10 bytes/);
  });
});

describe('what the agent changed', () => {
  it('finds new, changed, re-moded, retyped and deleted files, and nothing else', async () => {
    const { repo, changes } = await extracted([
      { name: 'same.txt', body: 'same\n' },
      { name: 'edit.txt', body: 'old\n' },
      { name: 'gone.txt', body: 'gone\n' },
      { name: 'run.sh', body: 'x\n' },
      { name: 'link', type: 'symlink', linkname: 'same.txt' },
      { name: 'dir/file', body: 'f\n' },
    ]);
    writeFileSync(join(repo, 'edit.txt'), 'new\n');
    rmSync(join(repo, 'gone.txt'));
    chmodSync(join(repo, 'run.sh'), 0o755);
    rmSync(join(repo, 'link'));
    writeFileSync(join(repo, 'link'), 'now a file\n');
    rmSync(join(repo, 'dir'), { recursive: true });
    writeFileSync(join(repo, 'dir'), 'now a file too\n');
    writeFileSync(join(repo, 'added.txt'), 'added\n');
    expect(await changes()).toEqual({
      written: [
        { path: 'added.txt', mode: '100644' },
        { path: 'dir', mode: '100644' },
        { path: 'edit.txt', mode: '100644' },
        { path: 'link', mode: '100644' },
        { path: 'run.sh', mode: '100755' },
      ],
      deleted: ['dir/file', 'gone.txt'],
    });
  });

  it('judges a file by size and mtime only while its mtime is older than the snapshot, as git does; otherwise by content', async () => {
    const dir = temp();
    const repo = join(dir, 'repo');
    const base = await extractTree(await tarOf([{ name: 'a.txt', body: 'aaaa\n' }]), repo, 1 << 20);
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(repo, 'a.txt'), old, old);
    base.stats['a.txt'] = { size: 5, mtime_ns: lstatSync(join(repo, 'a.txt'), { bigint: true }).mtimeNs.toString() };
    await writeBaseFiles(join(dir, 'base-files.json'), base);
    const changes = async () => changedFiles(repo, await readBaseFiles(join(dir, 'base-files.json')));
    // A same-size edit with the old mtime put back: size and mtime say "unchanged", and are believed.
    writeFileSync(join(repo, 'a.txt'), 'bbbb\n');
    utimesSync(join(repo, 'a.txt'), old, old);
    expect((await changes()).written).toEqual([]);
    // The same edit with an mtime at or after the snapshot is hashed, and found.
    const later = new Date(Date.now() + 5000);
    utimesSync(join(repo, 'a.txt'), later, later);
    expect((await changes()).written).toEqual([{ path: 'a.txt', mode: '100644' }]);
  });

  it('leaves out what .gitignore keeps out of git: new ignored files and folders, nested rules, and negations', async () => {
    const { repo, changes } = await extracted([
      { name: '.gitignore', body: '*.log\nbuild/\n!keep.log\n' },
      { name: 'build/tracked.txt', body: 'tracked\n' },
      { name: 'sub/.gitignore', body: 'local-only\n!*.log\n' },
    ]);
    const write = (p: string, t = 'x\n') => {
      mkdirSync(join(repo, p, '..'), { recursive: true });
      writeFileSync(join(repo, p), t);
    };
    write('debug.log');
    write('keep.log');
    write('build/out.o');
    write('build/tracked.txt', 'changed\n');
    write('sub/local-only');
    write('sub/sub.log');
    write('node_modules/.git/HEAD');
    write('.git/config');
    write('src/main.py');
    expect((await changes()).written.map((w) => w.path)).toEqual(['build/tracked.txt', 'keep.log', 'src/main.py', 'sub/sub.log']);
  });
});
