import type { ChalkInstance } from 'chalk';
import type { WaitingTask } from './queue/waiting.js';
import { renderWaiting } from './render.js';

export interface WaitingViewOptions {
  out: NodeJS.WritableStream;
  /** A terminal: the tasks are drawn in place and redrawn each second. Otherwise a plain line per task every `everyMs`. */
  tty: boolean;
  /** The terminal's width now (it may be resized while pull waits). */
  columns: () => number;
  now: () => Date;
  everyMs: number;
  c: ChalkInstance;
  /** Lines drawn under the tasks on a terminal, cut to the width given (transfers under way). */
  below?: (width: number) => string[];
}

/** Tasks drawn on a terminal at most: the view must fit on the screen to be redrawn in place. */
const MAX_ROWS = 10;
/** Back to the start of the line `n` lines up, then clear to the end of the screen. */
const up = (n: number) => `\x1b[${n}F\x1b[J`;

/**
 * What `pull --wait` shows while agents run: on a terminal, one line per task under
 * everything else, redrawn in place; elsewhere, now and then a plain line per task,
 * which a log file keeps readably. Other lines go above it through `say`.
 */
export class WaitingView {
  private tasks: readonly WaitingTask[] = [];
  /** Lines of the view on the screen now, right above the cursor. */
  private drawn = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: WaitingViewOptions) {
    this.timer = setInterval(() => (o.tty ? this.draw() : this.note()), o.tty ? 1000 : o.everyMs);
    this.timer.unref();
  }

  update(tasks: readonly WaitingTask[]): void {
    this.tasks = tasks;
    if (this.o.tty) this.draw();
  }

  /** A line from elsewhere (an event): written above the view, which is drawn again below it. */
  say(line: string): void {
    this.o.out.write(`${this.erase()}${line}\n`);
    if (this.o.tty) this.draw();
  }

  /** Draws the view again now (what `below` gives has changed). */
  refresh(): void {
    if (this.o.tty) this.draw();
  }

  close(): void {
    clearInterval(this.timer);
    const erase = this.erase();
    if (erase) this.o.out.write(erase);
  }

  private erase(): string {
    const text = this.drawn > 0 ? up(this.drawn) : '';
    this.drawn = 0;
    return text;
  }

  private draw(): void {
    const width = Math.max(this.o.columns() - 1, 20);
    const now = this.o.now();
    const lines = this.tasks.slice(0, MAX_ROWS).map((t) => renderWaiting(this.o.c, t, now, width));
    if (this.tasks.length > MAX_ROWS) lines.push(this.o.c.dim(`… and ${this.tasks.length - MAX_ROWS} more`));
    lines.push(...(this.o.below?.(width) ?? []));
    // One write, so the terminal never shows the view half drawn.
    const text = this.erase() + lines.map((l) => `${l}\n`).join('');
    if (text) this.o.out.write(text);
    this.drawn = lines.length;
  }

  private note(): void {
    const now = this.o.now();
    for (const t of this.tasks) this.o.out.write(`${renderWaiting(this.o.c, t, now)}\n`);
  }
}
