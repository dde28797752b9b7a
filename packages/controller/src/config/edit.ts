import { applyEdits, createScanner, findNodeAtLocation, parseTree, type Edit, type JSONPath, type Node } from 'jsonc-parser';

/**
 * Adding or replacing one entry of a config file as a person would: every comment and line
 * of the file stays as it was, the entry is indented like its neighbours and written on one
 * line or several as the entry before it is, and a list that ends in a comma still does.
 * (jsonc-parser's `modify` with formatting reflows the line of the entry before the new one and
 * moves that line's comment onto the new entry; so the edits are made here and applied by it.)
 */

/** jsonc-parser's SyntaxKind values (a const enum, which verbatimModuleSyntax cannot import). */
const TOKEN = { comma: 5, lineComment: 12, blockComment: 13, lineBreak: 14, space: 15 } as const;

interface Style {
  unit: string;
  eol: string;
}

function styleOf(text: string): Style {
  return { eol: text.includes('\r\n') ? '\r\n' : '\n', unit: /^([ \t]+)\S/m.exec(text)?.[1] ?? '  ' };
}

/** The whitespace that starts the line `offset` is on. */
function indentAt(text: string, offset: number): string {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(start))![0];
}

function oneLine(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(oneLine).join(', ')}]`;
  const fields = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`);
  return fields.length === 0 ? '{}' : `{ ${fields.join(', ')} }`;
}

function render(value: unknown, inline: boolean, indent: string, style: Style): string {
  return inline
    ? oneLine(value)
    : JSON.stringify(value, null, style.unit)
        .split('\n')
        .join(style.eol + indent);
}

function containerAt(text: string, path: JSONPath, type: Node['type']): Node {
  const root = parseTree(text, [], { allowTrailingComma: true });
  const node = root && findNodeAtLocation(root, path);
  // The loader has read the file by now, so this is a bug rather than bad config.
  if (!node || node.type !== type) throw new Error(`no ${type} at ${JSON.stringify(path)}`);
  return node;
}

/** Where the line of a container's last entry ends, and whether a comma follows that entry. */
function afterEntry(text: string, end: number): { comma: number | undefined; lineBreak: number | undefined } {
  const scanner = createScanner(text, false);
  scanner.setPosition(end);
  let comma: number | undefined;
  for (;;) {
    const kind: number = scanner.scan();
    if (kind === TOKEN.space || kind === TOKEN.lineComment) continue;
    if (kind === TOKEN.blockComment && !scanner.getTokenValue().includes('\n')) continue;
    if (kind === TOKEN.comma && comma === undefined) {
      comma = scanner.getTokenOffset();
      continue;
    }
    return { comma, lineBreak: kind === TOKEN.lineBreak ? scanner.getTokenOffset() : undefined };
  }
}

/** Edits that add `entry` (the text of a value, or of `"key": value`) after a container's last entry. */
function appendAfter(text: string, last: Node, entry: (inline: boolean, indent: string) => string, style: Style): Edit[] {
  const end = last.offset + last.length;
  const inline = !text.slice(last.offset, end).includes('\n');
  const { comma, lineBreak } = afterEntry(text, end);
  if (lineBreak === undefined) {
    // The container closes on the entry's own line: `[a, b]` stays one line.
    return comma === undefined
      ? [{ offset: end, length: 0, content: `, ${entry(true, '')}` }]
      : [{ offset: comma + 1, length: 0, content: ` ${entry(true, '')},` }];
  }
  const indent = indentAt(text, last.offset);
  const line = `${style.eol}${indent}${entry(inline, indent)}`;
  // A comment on the last entry's line stays on that line, so the new entry goes after it.
  if (comma !== undefined) return [{ offset: lineBreak, length: 0, content: `${line},` }];
  return [
    { offset: end, length: 0, content: ',' },
    { offset: lineBreak, length: 0, content: line },
  ];
}

/** Edits that put `entry` in an empty container: `[]`, `[...]`, or one holding only comments. */
function fillEmpty(text: string, container: Node, entry: (inline: boolean, indent: string) => string, style: Style): Edit[] {
  const open = container.offset;
  const close = open + container.length - 1;
  const indent = indentAt(text, open);
  const inner = text.slice(open + 1, close);
  const lineStart = text.lastIndexOf('\n', close - 1) + 1;
  if (inner.includes('\n') && text.slice(lineStart, close).trim() === '') {
    // After the comments (the examples `init` writes), on a line of its own.
    const at = indentAt(text, close) + style.unit;
    return [{ offset: lineStart, length: 0, content: `${at}${entry(false, at)}${style.eol}` }];
  }
  const at = indent + style.unit;
  const body = `${style.eol}${at}${entry(false, at)}${style.eol}${indent}`;
  // The seed's elided `[...]` reads as empty; the entry takes its place.
  if (['', '...'].includes(inner.trim())) return [{ offset: open + 1, length: inner.length, content: body }];
  return [{ offset: close, length: 0, content: body }];
}

/** `text` with `value` added at the end of the array at `path`. */
export function appendToArray(text: string, path: JSONPath, value: unknown): string {
  const style = styleOf(text);
  const array = containerAt(text, path, 'array');
  const entry = (inline: boolean, indent: string) => render(value, inline, indent, style);
  const last = array.children?.at(-1);
  return applyEdits(text, last ? appendAfter(text, last, entry, style) : fillEmpty(text, array, entry, style));
}

/** `text` with `"key": value` added at the end of the object at `path`. */
export function appendToObject(text: string, path: JSONPath, key: string, value: unknown): string {
  const style = styleOf(text);
  const object = containerAt(text, path, 'object');
  const entry = (inline: boolean, indent: string) => `${JSON.stringify(key)}: ${render(value, inline, indent, style)}`;
  const last = object.children?.at(-1);
  return applyEdits(text, last ? appendAfter(text, last, entry, style) : fillEmpty(text, object, entry, style));
}

/** `text` with the value at `path` replaced, written on one line or several as the old one was. */
export function replaceValue(text: string, path: JSONPath, value: unknown): string {
  const style = styleOf(text);
  const root = parseTree(text, [], { allowTrailingComma: true });
  const node = root && findNodeAtLocation(root, path);
  if (!node) throw new Error(`no value at ${JSON.stringify(path)}`);
  const inline = !text.slice(node.offset, node.offset + node.length).includes('\n');
  return applyEdits(text, [{ offset: node.offset, length: node.length, content: render(value, inline, indentAt(text, node.offset), style) }]);
}
