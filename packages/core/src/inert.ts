/**
 * Text from a node or an agent, made harmless to show: on one line, with no control
 * character (terminal escapes, carriage returns, bidi overrides) left raw, and cut to a
 * length. What it looked like stays readable: each such character shows as `\xNN` or `\u{NNNN}`.
 */

// C0, DEL, C1, and the invisible formatting characters that can reorder or hide text.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

function visible(ch: string): string {
  const code = ch.codePointAt(0)!;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** One line, no control character, at most `max` characters (then `…` and how much more there was). */
export function inert(text: string, max = 300): string {
  const cut = text.length > max * 4 ? text.slice(0, max * 4) : text;
  const flat = cut.replace(UNSAFE, visible);
  return flat.length > max || text.length > cut.length ? `${flat.slice(0, max)}… (${text.length} characters in all)` : flat;
}

// The same, less the line feed and the tab: what a log keeps of its layout.
const UNSAFE_IN_LOG = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

/**
 * An agent's log as a terminal may show it: lines and tabs kept, every other control
 * character escaped as `inert` does (so no escape sequence, title change or carriage
 * return acts). Not cut: the caller bounds what it reads.
 */
export function inertLog(text: string): string {
  return text.replace(UNSAFE_IN_LOG, visible);
}

// What JSON.stringify leaves raw that a terminal may still act on (C1, DEL) or that reorders text.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

/**
 * JSON that is safe to print (one line, unless indented): JSON.stringify escapes C0 controls,
 * and the rest `inert` escapes become `\uNNNN` too, so a reader gets the very same text back.
 */
export function inertJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE_IN_JSON, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `inert`, and nothing in it that Markdown would read as structure: on one line, inside a
 * list item, only emphasis, code, links, HTML, tables and strike-through could be made,
 * so only their characters are escaped.
 */
export function inertMarkdown(text: string, max = 300): string {
  return inert(text, max).replace(/[\\`*_[\]<>|~]/g, (ch) => `\\${ch}`);
}

/** A code span for a value from outside (a path, a ref): it cannot end early or span lines. */
export function inertCode(text: string, max = 300): string {
  return `\`${inert(text, max).replaceAll('`', "'")}\``;
}
