import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inert, inertCode, inertMarkdown } from '@gsync/core';

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

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
});
