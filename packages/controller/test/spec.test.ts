import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';
import { MAX_ARG_BYTES } from '@gsync/core';
import { UsageError } from '@gsync/core';
import { MAX_SPEC_BYTES, readSpec } from '@gsync/controller';

afterAll(cleanupTempDirs);

const dir = tempDir('gsync-specs-');
const WITH_TEXT = ['agent', '-p', '{spec}'];
const WITH_FILE = ['agent', '--file', '{spec_file}'];

function specFile(name: string, data: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

/** The UsageError readSpec fails with (the test fails if it reads the spec, or fails otherwise). */
async function refusal(path: string, argv: readonly string[] = WITH_TEXT): Promise<UsageError> {
  const error = await readSpec(path, argv).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UsageError);
  return error as UsageError;
}

/** A spec of exactly `bytes` bytes of ASCII text with a title. */
const sized = (bytes: number) => `# Big\n${'x'.repeat(bytes - 7)}\n`;

describe('readSpec', () => {
  it('reads a spec: its bytes, text, title and the sha256 sha256sum gives', async () => {
    const text = '# Fix the login bug\r\n\r\nThe form posts `$(user)` to /login; see "auth.ts".\n项目 🔥\n';
    const path = specFile('good.md', text);
    const spec = await readSpec(path, WITH_TEXT);
    expect(spec.path).toBe(path);
    expect(spec.text).toBe(text);
    expect(spec.data.equals(Buffer.from(text))).toBe(true);
    expect(spec.title).toBe('Fix the login bug');
    expect(spec.sha256).toBe(execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]);
  });

  it('refuses a missing file', async () => {
    const path = join(dir, 'missing.md');
    expect((await refusal(path)).message).toBe(`spec ${path}: file not found`);
  });

  it('refuses a directory', async () => {
    const path = join(dir, 'a-dir');
    mkdirSync(path);
    expect((await refusal(path)).message).toBe(`spec ${path}: not a regular file; give the spec as a text file`);
  });

  const empties: [string, string][] = [
    ['an empty file', ''],
    ['only blank lines', '\n\n  \r\n\t\n'],
    ['only heading marks', '#\n## \n'],
  ];
  for (const [what, text] of empties) {
    it(`refuses ${what}: its first line would be the commit title`, async () => {
      const path = specFile(`empty-${empties.findIndex((e) => e[0] === what)}.md`, text);
      expect((await refusal(path)).message).toBe(`spec ${path}: is empty; its first line becomes the commit title`);
    });
  }

  it('refuses a NUL byte', async () => {
    const path = specFile('nul.md', Buffer.from('# Title\nbinary\0stuff\n'));
    expect((await refusal(path)).message).toBe(`spec ${path}: contains a NUL byte; a spec must be text`);
  });

  it('refuses bytes that are not UTF-8', async () => {
    for (const [name, bytes] of [
      ['latin1.md', Buffer.from('# Caf\xe9\n', 'latin1')],
      ['png.md', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe])],
      ['cut.md', Buffer.from('# 项目', 'utf8').subarray(0, 4)],
    ] as const) {
      const path = specFile(name, bytes);
      expect((await refusal(path)).message).toBe(`spec ${path}: not UTF-8 text`);
    }
  });

  it(`takes a spec of exactly ${MAX_SPEC_BYTES} bytes when the agent reads it from a file`, async () => {
    const spec = await readSpec(specFile('max.md', sized(MAX_SPEC_BYTES)), WITH_FILE);
    expect(spec.data.length).toBe(MAX_SPEC_BYTES);
    expect(spec.title).toBe('Big');
  });

  it('refuses a spec one byte over the limit, and a huge one', async () => {
    const over = specFile('over.md', sized(MAX_SPEC_BYTES + 1));
    expect((await refusal(over, WITH_FILE)).message).toBe(`spec ${over}: ${MAX_SPEC_BYTES + 1} bytes; a spec may be at most ${MAX_SPEC_BYTES} bytes`);
    const huge = specFile('huge.md', sized(20 * 1024 * 1024));
    expect((await refusal(huge, WITH_FILE)).message).toMatch(/: 20971520 bytes; a spec may be at most/);
  });

  it(`passes a spec of ${MAX_ARG_BYTES} bytes as one argument, but not one byte more`, async () => {
    expect((await readSpec(specFile('arg-max.md', sized(MAX_ARG_BYTES)), WITH_TEXT)).data.length).toBe(MAX_ARG_BYTES);
    const path = specFile('arg-over.md', sized(MAX_ARG_BYTES + 1));
    const error = await refusal(path, WITH_TEXT);
    expect(error.message).toBe(`spec ${path}: ${MAX_ARG_BYTES + 1} bytes is too long to pass as one argument ({spec})`);
    expect(error.hint).toMatch(/\{spec_file\}/);
  });

  it('lets a spec too long for one argument through when the agent takes {spec_file}', async () => {
    const spec = await readSpec(specFile('arg-over-file.md', sized(MAX_ARG_BYTES + 1)), WITH_FILE);
    expect(spec.data.length).toBe(MAX_ARG_BYTES + 1);
  });

  it('counts bytes, not characters, against the argument limit', async () => {
    const chars = Math.ceil(MAX_ARG_BYTES / 3) + 1; // 3 bytes each in UTF-8: under the limit in characters, over in bytes
    const path = specFile('wide.md', `# Wide\n${'项'.repeat(chars)}`);
    expect((await refusal(path, WITH_TEXT)).message).toMatch(/is too long to pass as one argument/);
  });
});
