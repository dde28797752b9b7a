import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { MAX_ARG_BYTES, UsageError, sha256, specTitle, usesSpecText } from '@gsync/core';

export const MAX_SPEC_BYTES = 1024 * 1024;

export interface Spec {
  path: string;
  data: Buffer;
  text: string;
  title: string;
  sha256: string;
}

/**
 * A spec's bytes, read only from a regular file of at most MAX_SPEC_BYTES: a FIFO, a device
 * (`/dev/zero`) or a huge file is refused at once, before anything is read. Opened without
 * blocking, so a FIFO with no writer cannot hang the command.
 */
async function readCapped(path: string): Promise<Buffer> {
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`spec ${path}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code})`}`, { cause: error });
  }
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new UsageError(`spec ${path}: not a regular file; give the spec as a text file`);
    if (info.size > MAX_SPEC_BYTES) throw new UsageError(`spec ${path}: ${info.size} bytes; a spec may be at most ${MAX_SPEC_BYTES} bytes`);
    const buffer = Buffer.alloc(MAX_SPEC_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      // A file that grew while read: the cap holds whatever stat said.
      if (length > MAX_SPEC_BYTES) throw new UsageError(`spec ${path}: more than ${MAX_SPEC_BYTES} bytes; a spec may be at most that`);
    }
    return buffer.subarray(0, length);
  } finally {
    await file.close();
  }
}

/** Reads a spec and checks what the node will need of it: UTF-8 text, no NUL, a title, a sane size. */
export async function readSpec(path: string, agentArgv: readonly string[]): Promise<Spec> {
  const data = await readCapped(path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new UsageError(`spec ${path}: not UTF-8 text`);
  }
  if (text.includes('\0')) throw new UsageError(`spec ${path}: contains a NUL byte; a spec must be text`);
  const title = specTitle(text);
  if (title === '') throw new UsageError(`spec ${path}: is empty; its first line becomes the commit title`);
  if (usesSpecText(agentArgv) && data.length > MAX_ARG_BYTES) {
    throw new UsageError(`spec ${path}: ${data.length} bytes is too long to pass as one argument ({spec})`, {
      hint: 'use {spec_file} in the agent command instead of {spec}',
    });
  }
  return { path, data, text, title, sha256: sha256(data) };
}

const FILES_LINE = /^\s*(?:[-*]\s*)?(?:\*\*)?(?:files?|paths?)(?:\*\*)?\s*:\s*(.*)$/i;
const FILES_HEADING = /^\s*#{1,6}\s*(?:files?|paths?)\s*$/i;
const LIST_ITEM = /^\s*[-*+]\s+(.+)$/;

function cleanPath(word: string): string | undefined {
  const p = word
    .trim()
    .replace(/^[`'"]+|[`'",;]+$/g, '')
    .replace(/^\.\//, '');
  if (p === '' || p.startsWith('/') || p.split('/').includes('..') || /\s/.test(p)) return undefined;
  return p;
}

/**
 * The files a spec says its task will touch, when it says so: a line
 * `Files: a.py, api/b.py` or a `## Files` heading followed by a list.
 * Used only to warn about two running tasks given the same files.
 */
export function specFiles(text: string): string[] {
  const found = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const inline = FILES_LINE.exec(line);
    if (inline) {
      for (const word of inline[1]!.split(/[,\s]+/)) {
        const p = cleanPath(word);
        if (p) found.add(p);
      }
      if (inline[1]!.trim() !== '') continue;
    }
    if (!inline && !FILES_HEADING.test(line)) continue;
    let items = 0;
    for (let j = i + 1; j < lines.length; j++) {
      const item = LIST_ITEM.exec(lines[j]!);
      if (!item) {
        if (lines[j]!.trim() === '' && items === 0) continue;
        break;
      }
      items++;
      const p = cleanPath(item[1]!.split(/\s+[-—:(]/)[0]!);
      if (p) found.add(p);
    }
  }
  return [...found];
}
