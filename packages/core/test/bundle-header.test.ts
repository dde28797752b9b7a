import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, gitRepo, tempDir } from '../../../test/helpers/git-repo.js';
import { parseBundleHeader } from '@gsync/core';

afterAll(cleanupTempDirs);

const OID_A = 'a'.repeat(40);
const OID_B = 'b'.repeat(40);

/** A repo with main (two commits), a side branch and a tag; `bundle()` runs `git bundle create`. */
function world() {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const first = repo.head();
  repo.write('a.txt', 'a\n');
  const second = repo.commitAll('second');
  repo.git('checkout', '-q', '-b', 'side');
  repo.write('b.txt', 'b\n');
  const side = repo.commitAll('side');
  repo.git('checkout', '-q', 'main');
  repo.git('tag', 'v1', first);
  const out = tempDir('gsync-bundles-');
  const bundle = (name: string, ...args: string[]) => {
    const file = join(out, name);
    repo.git('bundle', 'create', '-q', ...args.filter((a) => a.startsWith('--')), file, ...args.filter((a) => !a.startsWith('--')));
    return { file, data: readFileSync(file) };
  };
  return { repo, first, second, side, bundle };
}

const packMagic = (data: Buffer, offset: number) => data.subarray(offset, offset + 4).toString('latin1');

describe('parseBundleHeader on bundles made by git', () => {
  const w = world();

  it('reads a v2 bundle with one ref and finds where the pack starts', () => {
    const { data } = w.bundle('one.bundle', 'main');
    const header = parseBundleHeader(data);
    expect(header).toEqual({
      version: 2,
      capabilities: [],
      prerequisites: [],
      refs: [{ oid: w.second, ref: 'refs/heads/main' }],
      packOffset: expect.any(Number),
    });
    expect(packMagic(data, header.packOffset)).toBe('PACK');
  });

  it('reads every ref of a bundle with several, as `git bundle list-heads` does', () => {
    const { file, data } = w.bundle('many.bundle', 'main', 'side', 'v1');
    const header = parseBundleHeader(data);
    const listed = w.repo
      .git('bundle', 'list-heads', file)
      .trim()
      .split('\n')
      .map((line) => {
        const [oid, ref] = line.split(' ');
        return { oid, ref };
      });
    expect(header.refs).toEqual(listed);
    expect(header.refs).toEqual([
      { oid: w.second, ref: 'refs/heads/main' },
      { oid: w.side, ref: 'refs/heads/side' },
      { oid: w.repo.head('refs/tags/v1'), ref: 'refs/tags/v1' },
    ]);
    expect(header.prerequisites).toEqual([]);
    expect(packMagic(data, header.packOffset)).toBe('PACK');
  });

  it('reads the prerequisites of an incremental bundle', () => {
    const { data } = w.bundle('inc.bundle', `${w.first}..side`);
    expect(data.toString('latin1')).toContain(`-${w.first} `);
    const header = parseBundleHeader(data);
    expect(header.version).toBe(2);
    expect(header.prerequisites).toEqual([w.first]);
    expect(header.refs).toEqual([{ oid: w.side, ref: 'refs/heads/side' }]);
    expect(packMagic(data, header.packOffset)).toBe('PACK');
  });

  it('reads a v3 bundle and its capabilities', () => {
    const { data } = w.bundle('v3.bundle', '--version=3', 'main');
    const header = parseBundleHeader(data);
    expect(header.version).toBe(3);
    expect(header.capabilities).toEqual(['object-format=sha1']);
    expect(header.refs).toEqual([{ oid: w.second, ref: 'refs/heads/main' }]);
    expect(packMagic(data, header.packOffset)).toBe('PACK');
  });
});

describe('parseBundleHeader on bad input', () => {
  const bad: [string, Buffer, RegExp][] = [
    ['an empty file', Buffer.alloc(0), /no bundle header found/],
    ['a header that never ends', Buffer.from(`# v2 git bundle\n${OID_A} refs/heads/main\n`), /no bundle header found/],
    ['a header past 1 MiB', Buffer.from(`# v2 git bundle\n${`${OID_A} refs/heads/main\n`.repeat(30_000)}\nPACK`), /no bundle header found/],
    ['a pack without a header', Buffer.from('PACK\0\0\0\x02\n\nrest'), /bad signature/],
    ['an unknown version', Buffer.from(`# v4 git bundle\n${OID_A} refs/heads/main\n\nPACK`), /bad signature/],
    ['a signature with trailing space', Buffer.from(`# v2 git bundle \n${OID_A} refs/heads/main\n\nPACK`), /bad signature/],
    ['a capability in a v2 bundle', Buffer.from(`# v2 git bundle\n@object-format=sha1\n${OID_A} refs/heads/main\n\nPACK`), /capability line in a v2 bundle/],
    ['a short prerequisite', Buffer.from(`# v2 git bundle\n-abc123 subject\n${OID_A} refs/heads/main\n\nPACK`), /bad prerequisite/],
    ['an upper-case prerequisite', Buffer.from(`# v2 git bundle\n-${OID_A.toUpperCase()} s\n${OID_B} refs/heads/main\n\nPACK`), /bad prerequisite/],
    ['a short ref oid', Buffer.from('# v2 git bundle\nabc123 refs/heads/main\n\nPACK'), /bad ref line/],
    ['a ref line without a name', Buffer.from(`# v2 git bundle\n${OID_A}\n\nPACK`), /bad ref line/],
    ['a ref name with a space', Buffer.from(`# v2 git bundle\n${OID_A} refs/heads/a b\n\nPACK`), /bad ref line/],
    ['a CRLF header', Buffer.from(`# v2 git bundle\r\n${OID_A} refs/heads/main\r\n\r\nPACK`), /no bundle header found/],
  ];
  for (const [what, data, message] of bad) {
    it(`refuses ${what}`, () => {
      expect(() => parseBundleHeader(data)).toThrow(message);
    });
  }

  it('keeps prerequisites and refs apart in a hand-written header', () => {
    const header = parseBundleHeader(Buffer.from(`# v2 git bundle\n-${OID_A} base commit\n${OID_B} refs/heads/task/p-S01-n\n\nPACK`));
    expect(header.prerequisites).toEqual([OID_A]);
    expect(header.refs).toEqual([{ oid: OID_B, ref: 'refs/heads/task/p-S01-n' }]);
    expect(header.packOffset).toBe(`# v2 git bundle\n-${OID_A} base commit\n${OID_B} refs/heads/task/p-S01-n\n\n`.length);
  });
});
