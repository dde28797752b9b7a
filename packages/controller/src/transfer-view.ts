import type { ChalkInstance } from 'chalk';
import type { TransferStart, TransferTicker } from './transfer.js';
import { type TransferState, barDue, drawDue, endNote, noteDue, renderBar, sample } from './transfer-line.js';

export interface TransferViewOptions {
  out: NodeJS.WritableStream;
  /** A terminal: a bar per transfer, redrawn in place. Otherwise now and then a plain line. */
  tty: boolean;
  columns: () => number;
  /** Milliseconds, for rates and the redraw limit. */
  now: () => number;
  c: ChalkInstance;
  /** Another view that holds the bottom of the terminal (pull --wait's tasks): it draws the bars under its own lines. */
  host?: () => { refresh(): void } | undefined;
}

/** Back to the start of the line `n` lines up, then clear to the end of the screen. */
const up = (n: number) => `\x1b[${n}F\x1b[J`;

/**
 * Transfers under way, as the CLI shows them on stderr: on a terminal a bar per transfer
 * worth one, under everything else and redrawn in place at most every DRAW_EVERY_MS;
 * elsewhere a few plain lines a log file keeps readably. Other lines go above it through `say`.
 */
export class TransferView {
  private readonly live = new Set<TransferState>();
  /** Lines of bars on the screen now, right above the cursor (when no host draws them). */
  private drawn = 0;
  private lastTick = Number.NEGATIVE_INFINITY;
  /** A host was last asked to draw bars: it must be asked again once they are gone. */
  private hosted = false;
  /** Ticks while transfers go on, so a stalled one still gets its bar and its lines. */
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: TransferViewOptions) {}

  start(start: TransferStart): TransferTicker {
    const now = this.o.now();
    const t: TransferState = { start, startedMs: now, bytes: 0, samples: [{ ms: now, bytes: 0 }], bar: false };
    this.live.add(t);
    this.timer ??= setInterval(() => this.tick(this.o.now()), 1000).unref();
    this.tick(now);
    return {
      add: (bytes) => {
        t.bytes += bytes;
        const ms = this.o.now();
        if (drawDue(this.lastTick, ms)) this.tick(ms);
      },
      end: (ok) => this.end(t, ok),
    };
  }

  /** The bars as they are now, for a host to draw. */
  lines(width: number): string[] {
    return [...this.live].filter((t) => t.bar).map((t) => renderBar(this.o.c, t, width));
  }

  /** A line from elsewhere: written above the bars, which are drawn again below it. */
  say(line: string): void {
    this.o.out.write(`${this.erase()}${line}\n`);
    this.draw();
  }

  private tick(now: number): void {
    this.lastTick = now;
    for (const t of this.live) {
      t.samples = sample(t.samples, now, t.bytes);
      if (this.o.tty) t.bar = barDue(t, now);
      else this.note(t, noteDue(t, now), now);
    }
    this.draw();
  }

  private end(t: TransferState, ok: boolean): void {
    if (!this.live.delete(t)) return;
    if (this.live.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    if (!this.o.tty) this.note(t, endNote(t, this.o.now(), ok), this.o.now());
    else if (t.bar) this.draw();
  }

  private note(t: TransferState, line: string | undefined, now: number): void {
    if (line === undefined) return;
    t.notedMs = now;
    this.o.out.write(`${line}\n`);
  }

  private draw(): void {
    if (!this.o.tty) return;
    const host = this.o.host?.();
    if (host) {
      const bars = [...this.live].some((t) => t.bar);
      if (bars || this.hosted) host.refresh();
      this.hosted = bars;
      return;
    }
    const lines = this.lines(Math.max(this.o.columns() - 1, 20));
    // One write, so the terminal never shows the bars half drawn.
    const text = this.erase() + lines.map((l) => `${l}\n`).join('');
    if (text) this.o.out.write(text);
    this.drawn = lines.length;
  }

  private erase(): string {
    const text = this.drawn > 0 ? up(this.drawn) : '';
    this.drawn = 0;
    return text;
  }
}
