/**
 * Conflict markers as git writes them (`<<<<<<< ours`, `=======`, `>>>>>>> theirs`).
 * `=======` alone is also a markdown underline, so only the opening and closing
 * markers count as evidence of an unresolved conflict.
 */
const OPEN = /^<{7}(?: |$)/;
const CLOSE = /^>{7}(?: |$)/;

export function hasConflictMarkers(text: string): boolean {
  return text.split('\n').some((line) => OPEN.test(line) || CLOSE.test(line));
}

/** Each conflicted region of a file with `context` lines around it, numbered from 1. */
export function conflictHunks(text: string, context = 3): { startLine: number; text: string }[] {
  const lines = text.split('\n');
  const hunks: { startLine: number; text: string }[] = [];
  let i = 0;
  while (i < lines.length) {
    if (!OPEN.test(lines[i]!)) {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < lines.length && !CLOSE.test(lines[end]!)) end++;
    const from = Math.max(0, i - context);
    const to = Math.min(lines.length, end + 1 + context);
    hunks.push({ startLine: from + 1, text: lines.slice(from, to).join('\n') });
    i = end + 1;
  }
  return hunks;
}
