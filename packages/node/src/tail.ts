import { existsSync } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { isFinal, processAlive, type TaskStatus } from '@gsync/core';
import { taskDir, taskPaths } from './paths.js';
import { readStatus } from './status.js';

/**
 * `gsync-node tail`: the agent's log from an offset, as frames on stdout. A line
 * `{"data":N}` is followed by N bytes of the log; `{"skip":N}` says N bytes were left
 * out (more than the call may send lay ahead: the newest are sent); the last line is
 * `{"end":{...}}` with the offset reached and the task's state. Following, it sends what
 * the log gains until the task's state is final, its run is gone, the time is up, the
 * call has sent its bytes, or the controller hangs up.
 */

export interface TailOptions {
  workRoot: string;
  project: string;
  taskId: string;
  from: number;
  follow: boolean;
  /** The most this call sends of the log. */
  maxBytes: number;
  /** The longest a follow lasts. */
  seconds: number;
  out: Writable;
  /** Resolves when the controller hangs up. */
  cancelled: Promise<void>;
  pollMs?: number;
}

export interface TailEnd {
  exists: boolean;
  offset?: number;
  size?: number;
  state?: TaskStatus['state'] | null;
  final?: boolean;
  /** The run ended without a final state (killed): the next report finishes the task. */
  stopped?: boolean;
  error?: string;
}

/** Bytes read and sent at a time. */
const PIECE = 64 * 1024;
/** A hostile error text from status.json stays short in the answer. */
const ERROR_KEEP = 2000;

async function write(out: Writable, data: string | Buffer): Promise<void> {
  if (!out.write(data)) await once(out, 'drain');
}

/** Not final, not waiting for a slot, and neither the runner nor the agent alive: nobody will end it but a report. */
function stopped(status: TaskStatus | null): boolean {
  if (!status || isFinal(status.state) || status.state === 'queued' || status.state === 'received') return false;
  return !processAlive(status.pid) && !processAlive(status.agent_pid);
}

export async function tailLog(options: TailOptions): Promise<TailEnd> {
  const paths = taskPaths(taskDir(options.workRoot, options.project, options.taskId));
  if (!existsSync(paths.dir)) return { exists: false };
  const deadline = Date.now() + options.seconds * 1000;
  let hungUp = false;
  void options.cancelled.then(() => {
    hungUp = true;
  });
  let offset = Math.max(0, options.from);
  let sent = 0;
  // Not there before the agent starts: looked for again on each read.
  let log: FileHandle | undefined;
  try {
    for (;;) {
      // The state first: once it is final, the log was whole before this read.
      const status = await readStatus(paths.status).catch(() => null);
      log ??= await open(paths.agentLog, 'r').catch(() => undefined);
      const size = log ? (await log.stat()).size : 0;
      // A log that shrank (its agent truncated it) is read again from where it ends now.
      offset = Math.min(offset, size);
      const left = options.maxBytes - sent;
      if (size - offset > left) {
        await write(options.out, `${JSON.stringify({ skip: size - offset - left })}\n`);
        offset = size - left;
      }
      const buffer = Buffer.alloc(PIECE);
      while (log && offset < size) {
        const { bytesRead } = await log.read(buffer, 0, Math.min(PIECE, size - offset), offset);
        if (bytesRead === 0) break;
        await write(options.out, `${JSON.stringify({ data: bytesRead })}\n`);
        await write(options.out, buffer.subarray(0, bytesRead));
        offset += bytesRead;
        sent += bytesRead;
      }
      const final = status ? isFinal(status.state) : false;
      const done = !options.follow || final || stopped(status) || hungUp || sent >= options.maxBytes || Date.now() >= deadline;
      if (done) {
        return {
          exists: true,
          offset,
          size,
          state: status?.state ?? null,
          final,
          ...(stopped(status) ? { stopped: true } : {}),
          ...(status?.error ? { error: status.error.slice(0, ERROR_KEEP) } : {}),
        };
      }
      await Promise.race([new Promise((r) => setTimeout(r, Math.min(options.pollMs ?? 250, Math.max(deadline - Date.now(), 0)))), options.cancelled]);
    }
  } finally {
    await log?.close();
  }
}

/** How much of the log's end is read for its last line. */
const LAST_LINE_WINDOW = 4096;
/** The most of a last line sent: a status line, not a page. */
const LAST_LINE_KEEP = 400;

/**
 * The last line the agent wrote that has text, from the log's last few KB: a carriage
 * return ends a line too (progress bars redraw with it). Cut to a few hundred characters.
 */
export async function lastLogLine(path: string): Promise<{ size: number; line: string }> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile() || info.size === 0) return { size: 0, line: '' };
  const file = await open(path, 'r');
  try {
    const length = Math.min(info.size, LAST_LINE_WINDOW);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, info.size - length);
    const lines = buffer
      .subarray(0, bytesRead)
      .toString('utf8')
      .split(/[\r\n]+/);
    const line = lines.reverse().find((l) => l.trim() !== '') ?? '';
    return { size: info.size, line: line.trim().slice(0, LAST_LINE_KEEP) };
  } finally {
    await file.close();
  }
}
