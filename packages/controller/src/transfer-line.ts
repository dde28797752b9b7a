import type { ChalkInstance } from 'chalk';
import stringWidth from 'string-width';
import { humanBytes } from '@gsync/core/units';
import { fitWidth, humanDuration } from './render.js';
import type { TransferStart } from './transfer.js';

/** What a transfer shows, and when: pure functions of byte counts and times (ms). */

const MiB = 1024 * 1024;
/** Redrawn at most this often: a chunk costs an addition and a look at the clock, not a write. */
const DRAW_EVERY_MS = 100;
/** Smaller transfers never get a bar: they are over before it could say anything. */
const BAR_MIN_BYTES = MiB;
/** A bar appears only after this long, and only for a transfer that, at its rate so far, takes a second or more. */
const BAR_AFTER_MS = 500;
const BAR_WORTH_MS = 1000;
/** Without a terminal: a line as a transfer this big starts, and as it ends. */
const NOTE_MIN_BYTES = 8 * MiB;
/** Without a terminal: a line this often while a transfer goes on (any size), and one as it ends. */
const NOTE_EVERY_MS = 10_000;
/** The rate is that of the last few seconds: a link that slows down shows it soon. */
const RATE_WINDOW_MS = 5000;

export interface Sample {
  ms: number;
  bytes: number;
}

/** One transfer as the view keeps it. */
export interface TransferState {
  start: TransferStart;
  startedMs: number;
  bytes: number;
  /** Bytes counted at each redraw over the last RATE_WINDOW_MS, oldest first. */
  samples: Sample[];
  /** Shown as a bar; once shown, it stays until the transfer ends. */
  bar: boolean;
  /** When the last plain line about it was written; undefined before the first. */
  notedMs?: number | undefined;
}

export function drawDue(lastMs: number, nowMs: number): boolean {
  return nowMs - lastMs >= DRAW_EVERY_MS;
}

/** The samples with one taken now, those older than the window dropped (the newest old one is kept as the window's start). */
export function sample(samples: readonly Sample[], nowMs: number, bytes: number): Sample[] {
  const kept = [...samples, { ms: nowMs, bytes }];
  while (kept.length > 2 && nowMs - kept[1]!.ms >= RATE_WINDOW_MS) kept.shift();
  return kept;
}

/** Bytes a second over the samples, or undefined while they span too little time to say. */
export function rateOf(samples: readonly Sample[]): number | undefined {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.ms - first.ms < 200) return undefined;
  return ((last.bytes - first.bytes) * 1000) / (last.ms - first.ms);
}

/** Whether the transfer gets a bar now. */
export function barDue(t: TransferState, nowMs: number): boolean {
  if (t.bar) return true;
  const elapsed = nowMs - t.startedMs;
  if (t.start.total < BAR_MIN_BYTES || elapsed < BAR_AFTER_MS || t.bytes >= t.start.total) return false;
  // Bytes so far against the time they took: stuck at 0 counts as long.
  return t.bytes === 0 || (elapsed * t.start.total) / t.bytes >= BAR_WORTH_MS;
}

const tasksOf = (t: TransferState) => {
  const ids = t.start.tasks;
  return ids.length > 3 ? `${ids.slice(0, 3).join(', ')} and ${ids.length - 3} more` : ids.join(', ');
};

/** `sending S01 to n1`, `receiving S01, S02 from n1`. */
function head(t: TransferState, verb: 'ing' | 'ed'): string {
  const send = t.start.direction === 'send';
  const word = verb === 'ing' ? (send ? 'sending' : 'receiving') : send ? 'sent' : 'received';
  return `${word} ${tasksOf(t)} ${send ? 'to' : 'from'} ${t.start.node}`;
}

/** `45.2 MiB of 200 MiB, 8.7 MiB/s, 18s left` (the rate and time once they are known). */
function figures(t: TransferState): string {
  const total = t.start.total;
  const rate = rateOf(t.samples);
  const parts = [`${humanBytes(Math.min(t.bytes, total))} of ${humanBytes(total)}`];
  if (rate !== undefined) parts.push(`${humanBytes(Math.round(rate))}/s`);
  // Rounded up: "0s left" while bytes are still to come says the wrong thing.
  if (rate) parts.push(`${humanDuration(Math.ceil((total - Math.min(t.bytes, total)) / rate) * 1000)} left`);
  return parts.join(', ');
}

/** The bar's line, at most `width` cells: the bar itself goes first when the line is too narrow for it. */
export function renderBar(c: ChalkInstance, t: TransferState, width: number): string {
  const text = head(t, 'ing');
  const numbers = figures(t);
  const room = width - stringWidth(text) - stringWidth(numbers) - 4;
  if (room < 10) return fitWidth(`${text} ${numbers}`, width);
  const cells = Math.min(room, 30);
  const done = Math.min(Math.floor((cells * t.bytes) / Math.max(t.start.total, 1)), cells);
  const bar = done === cells ? '='.repeat(cells) : `${'='.repeat(done)}>${' '.repeat(cells - done - 1)}`;
  return `${text} [${c.cyan(bar.slice(0, done + 1))}${bar.slice(done + 1)}] ${numbers}`;
}

/**
 * The plain line due now for a transfer still going (none, mostly): as a big one starts,
 * then every NOTE_EVERY_MS for one that goes on.
 */
export function noteDue(t: TransferState, nowMs: number): string | undefined {
  if (t.notedMs === undefined) {
    if (t.start.total >= NOTE_MIN_BYTES) return `${head(t, 'ing')}: ${humanBytes(t.start.total)}`;
    if (nowMs - t.startedMs < NOTE_EVERY_MS) return undefined;
  } else if (nowMs - t.notedMs < NOTE_EVERY_MS) return undefined;
  return `${head(t, 'ing')}: ${figures(t)}`;
}

/** The plain line as a transfer ends: only for one that had a line before, with its size, time and rate. */
export function endNote(t: TransferState, nowMs: number, ok: boolean): string | undefined {
  if (t.notedMs === undefined) return undefined;
  if (!ok) return `${head(t, 'ing')} stopped after ${humanBytes(Math.min(t.bytes, t.start.total))} of ${humanBytes(t.start.total)}`;
  const ms = Math.max(nowMs - t.startedMs, 1);
  // Tenths of a second for a short one: "0s" would say nothing.
  const took = ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : humanDuration(ms);
  return `${head(t, 'ed')}: ${humanBytes(t.bytes)} in ${took}, ${humanBytes(Math.round((t.bytes * 1000) / ms))}/s`;
}
