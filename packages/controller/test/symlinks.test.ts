import { describe, expect, it } from 'vitest';
import { linkEscapes } from '@gsync/controller';

const tree = (entries: Record<string, string>) => new Map(Object.entries(entries));

describe('where a symlink leads, through the other links of the tree', () => {
  it('lets a link stay inside the repository, however it gets there', () => {
    const links = tree({ 'docs/latest': '../releases/v2', 'a/b/c/up': '../../..', 'a/readme': 'b/c/up/README.md', 'x/self': '.' });
    for (const path of links.keys()) expect(linkEscapes(links, path)).toBe(false);
  });

  it('catches the chain each link of which looks harmless alone', () => {
    const links = tree({ 'a/b/c/up': '../../..', 'etc-link': 'a/b/c/up/../../../../etc' });
    expect(linkEscapes(links, 'a/b/c/up')).toBe(false);
    expect(linkEscapes(links, 'etc-link')).toBe(true);
  });

  it('catches a chain through a link that points out, into .git, absolute, or in a loop', () => {
    expect(linkEscapes(tree({ out: '..', via: 'out/x' }), 'via')).toBe(true);
    expect(linkEscapes(tree({ g: '.GIT', via: 'g/config' }), 'via')).toBe(true);
    expect(linkEscapes(tree({ abs: '/etc', via: 'abs/passwd' }), 'via')).toBe(true);
    expect(linkEscapes(tree({ a: 'b', b: 'a', via: 'a/x' }), 'via')).toBe(true);
    expect(linkEscapes(tree({ win: 'C:\\\\Windows' }), 'win')).toBe(true);
  });
});
