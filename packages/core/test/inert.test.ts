import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inert, inertCode, inertJson, inertLog, inertMarkdown } from '@gsync/core';

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/;

describe('inert text', () => {
  it('never keeps a control character, stays on one line and within its cap', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), fc.integer({ min: 1, max: 500 }), (text, max) => {
        const shown = inert(text, max);
        expect(shown).not.toMatch(CONTROL);
        expect(shown.length).toBeLessThanOrEqual(max + 40);
      }),
    );
  });

  it('shows what it escaped', () => {
    expect(inert('a\u001b[2Jb\nc')).toBe('a\\x1b[2Jb\\x0ac');
    expect(inert('\u202eevil')).toBe('\\u{202e}evil');
    // The deprecated format characters HFS+ ignores in names are invisible too.
    expect(inert('.git\u206a')).toBe('.git\\u{206a}');
    expect(inert('x'.repeat(10), 4)).toBe('xxxx… (10 characters in all)');
  });

  it('leaves nothing Markdown reads as structure, and a code span cannot end early', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 500 }), (text) => {
        const md = inertMarkdown(text);
        expect(md).not.toMatch(CONTROL);
        expect(md.replace(/\\[\\`*_[\]<>|~]/g, '')).not.toMatch(/[\\`*_[\]<>|~]/);
        const code = inertCode(text);
        expect(code.slice(1, -1)).not.toContain('`');
        expect(code).not.toMatch(CONTROL);
      }),
    );
  });

  it('keeps the lines and tabs of a log, and escapes every other control character', () => {
    expect(inertLog('a\tb\n\x1b]0;title\x07c\r\n\u009b2J\0')).toBe('a\tb\n\\x1b]0;title\\x07c\\x0d\n\\x9b2J\\x00');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (text) => {
        expect(inertLog(text).replace(/[\n\t]/g, '')).not.toMatch(CONTROL);
      }),
    );
  });

  it('prints JSON with no control character raw, read back as the very same text', () => {
    expect(inertJson({ log: '\u009b31m\u202e' })).toBe('{"log":"\\u009b31m\\u202e"}');
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 2000 }), (text) => {
        const line = inertJson({ log: text });
        expect(line).not.toMatch(CONTROL);
        expect(JSON.parse(line)).toEqual({ log: text });
      }),
    );
  });
});
