/**
 * POSIX sh quoting for the one place a command line must be a string: an SSH
 * exec request, which the node's login shell parses. Every word is single-quoted,
 * so nothing in it ($, `, ;, newlines, quotes) is ever interpreted.
 */
const RESERVED = new Set([
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'case',
  'esac',
  'for',
  'while',
  'until',
  'do',
  'done',
  'in',
  'function',
  'select',
  'time',
  'coproc',
]);

export function quoteWord(word: string): string {
  if (word.includes('\0')) throw new Error('an argument may not contain a NUL byte');
  // Bare only when the shell cannot read it as anything else: not `NAME=...` (an
  // assignment in first place) and not a reserved word (`if`, `done`, ...).
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(word) && !RESERVED.has(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quoteWord).join(' ');
}
