import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quoteArgv, quoteWord } from '@gsync/core';

/** What a real POSIX sh makes of a command line: the bytes `printf %s <word>` writes. */
function shPrintf(quoted: string): string {
  return execFileSync('/bin/sh', ['-c', `printf %s ${quoted}`], { encoding: 'utf8' });
}

/** The argv /bin/sh splits a command line into (each word written NUL-terminated). */
function shArgv(commandLine: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `for a in ${commandLine}; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('quoteWord', () => {
  it('leaves plain words bare', () => {
    for (const word of ['gsync-node', 'run', '--task=S01', '/home/u/dispatch', 'a,b:c@d%e+f']) {
      expect(quoteWord(word)).toBe(word);
    }
  });

  it('quotes the empty word so it stays one argument', () => {
    expect(quoteWord('')).toBe("''");
    expect(shArgv(`a ${quoteWord('')} b`)).toEqual(['a', '', 'b']);
  });

  const tricky = [
    "it's",
    "'",
    "''",
    '$(touch /tmp/gsync-pwned)',
    '`id`',
    '${HOME}',
    '$HOME',
    'a; rm -rf /',
    'a && b || c',
    'a | b > c < d',
    'line one\nline two',
    '\n',
    'tab\there',
    '  spaces  ',
    '*',
    '~',
    '~/dispatch',
    '!event',
    '#comment',
    'back\\slash',
    '"double"',
    'ünïcödé 项目 🔥',
    '-n',
    '-e \\n',
  ];
  for (const word of tricky) {
    it(`${JSON.stringify(word)} reaches the program byte for byte`, () => {
      expect(shPrintf(quoteWord(word))).toBe(word);
    });
  }

  it('refuses a NUL byte, which no argv word can carry', () => {
    expect(() => quoteWord('a\0b')).toThrow(/NUL/);
  });

  it('for arbitrary strings, /bin/sh gives back exactly the string', () => {
    const pieces = fc.constantFrom(
      "'",
      '"',
      '\\',
      '$',
      '`',
      '$(',
      ')',
      '${',
      '}',
      ';',
      '&',
      '|',
      '\n',
      '\r',
      '\t',
      ' ',
      '*',
      '?',
      '~',
      '!',
      '#',
      '%',
      '-',
      '项',
      '🔥',
      '\u00e9',
    );
    const word = fc
      .oneof(
        fc.string({ unit: 'binary' }),
        fc.array(fc.oneof(pieces, fc.string({ maxLength: 3 })), { maxLength: 12 }).map((parts) => parts.join('')),
      )
      .map((s) => s.replaceAll('\0', ''));
    fc.assert(
      fc.property(word, (s) => {
        expect(shPrintf(quoteWord(s))).toBe(s);
      }),
      { numRuns: 200 },
    );
  });
});

describe('quoteArgv', () => {
  it('joins quoted words with spaces', () => {
    expect(quoteArgv(['gsync-node', 'run', "it's here"])).toBe("gsync-node run 'it'\\''s here'");
  });

  it('keeps every word one argument through the shell, whatever it holds', () => {
    const argv = ['node', '/opt/gsync node.mjs', '', 'a b', '$(id)', "it's", 'x\ny', '*'];
    expect(shArgv(quoteArgv(argv))).toEqual(argv);
  });
});
