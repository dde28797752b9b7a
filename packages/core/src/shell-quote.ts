/**
 * POSIX sh quoting for the one place a command line must be a string: an SSH
 * exec request, which the node's login shell parses. Every word is single-quoted,
 * so nothing in it ($, `, ;, newlines, quotes) is ever interpreted.
 */
export function quoteWord(word: string): string {
  if (word.includes('\0')) throw new Error('an argument may not contain a NUL byte');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quoteWord).join(' ');
}
