import { PassThrough } from 'node:stream';
import { Chalk } from 'chalk';
import stringWidth from 'string-width';
import { describe, expect, it } from 'vitest';
import { WaitingView } from '../src/live-view.js';
import { tarSize } from '../src/node-api/calls.js';
import type { TransferStart } from '../src/transfer.js';
import { type TransferState, barDue, drawDue, endNote, noteDue, rateOf, renderBar, sample } from '../src/transfer-line.js';
import { TransferView } from '../src/transfer-view.js';

/** What a transfer shows on stderr, and when: decided from byte counts and times alone. */

const MiB = 1024 * 1024;
const plain = new Chalk({ level: 0 });
const send = (total: number): TransferStart => ({ direction: 'send', node: 'n1', tasks: ['S01'], total });
const state = (total: number, over: Partial<TransferState> = {}): TransferState => ({
  start: send(total),
  startedMs: 0,
  bytes: 0,
  samples: [{ ms: 0, bytes: 0 }],
  bar: false,
  ...over,
});

describe('when a bar shows', () => {
  it('never for a transfer under 1 MiB, however slow', () => {
    expect(barDue(state(MiB - 1, { bytes: 10 }), 60_000)).toBe(false);
  });

  it('not in the first half second', () => {
    expect(barDue(state(200 * MiB, { bytes: MiB }), 499)).toBe(false);
    expect(barDue(state(200 * MiB, { bytes: MiB }), 500)).toBe(true);
  });

  it('not for one that, at its rate so far, is over within a second', () => {
    // 6 of 10 MiB in 0.5 s: 0.83 s in all.
    expect(barDue(state(10 * MiB, { bytes: 6 * MiB }), 500)).toBe(false);
    // 4 of 10 MiB in 0.5 s: 1.25 s in all.
    expect(barDue(state(10 * MiB, { bytes: 4 * MiB }), 500)).toBe(true);
    expect(barDue(state(10 * MiB, { bytes: 10 * MiB }), 900)).toBe(false);
  });

  it('for one stuck at no bytes, and once shown it stays', () => {
    expect(barDue(state(2 * MiB), 600)).toBe(true);
    expect(barDue(state(2 * MiB, { bytes: 2 * MiB, bar: true }), 601)).toBe(true);
  });

  it('is redrawn at most ten times a second', () => {
    expect(drawDue(1000, 1099)).toBe(false);
    expect(drawDue(1000, 1100)).toBe(true);
  });
});

describe('the rate', () => {
  it('is unknown over too short a time, then that of the last five seconds', () => {
    expect(rateOf([{ ms: 0, bytes: 0 }])).toBeUndefined();
    expect(
      rateOf([
        { ms: 0, bytes: 0 },
        { ms: 100, bytes: MiB },
      ]),
    ).toBeUndefined();
    let samples = [{ ms: 0, bytes: 0 }];
    // 10 MiB/s for 6 s, then 1 MiB/s for 5 s: the rate shown is the slow one.
    for (let ms = 100, bytes = 0; ms <= 11_000; ms += 100) {
      bytes += ms <= 6000 ? MiB : MiB / 10;
      samples = sample(samples, ms, bytes);
    }
    expect(samples.length).toBeLessThanOrEqual(52);
    expect(rateOf(samples)).toBeCloseTo(MiB, -3);
  });
});

describe('the bar', () => {
  const t = state(200 * MiB, {
    bytes: 50 * MiB,
    samples: [
      { ms: 0, bytes: 0 },
      { ms: 5000, bytes: 50 * MiB },
    ],
    bar: true,
  });

  it('says what goes where, the bytes, the rate and the time left', () => {
    expect(renderBar(plain, t, 100)).toBe('sending S01 to n1 [=======>                      ] 50 MiB of 200 MiB, 10 MiB/s, 15s left');
    const receive = { ...t, start: { ...t.start, direction: 'receive' as const, tasks: ['S01', 'S02', 'S03', 'S04', 'S05'] } };
    expect(renderBar(plain, receive, 140)).toMatch(/^receiving S01, S02, S03 and 2 more from n1 \[=+>/);
  });

  it('fits the width it is given, the bar going first', () => {
    for (const width of [100, 70, 50, 30]) expect(stringWidth(renderBar(plain, t, width))).toBeLessThanOrEqual(width);
    expect(renderBar(plain, t, 62)).toBe('sending S01 to n1 50 MiB of 200 MiB, 10 MiB/s, 15s left');
    expect(renderBar(plain, t, 30)).toBe('sending S01 to n1 50 MiB of 2…');
  });

  it('is coloured only when its stream gets colour', () => {
    expect(renderBar(plain, t, 100)).not.toContain('\x1b');
    const coloured = renderBar(new Chalk({ level: 1 }), t, 100);
    expect(coloured).toContain('\x1b[36m=======>\x1b[39m');
    expect(stringWidth(coloured)).toBe(stringWidth(renderBar(plain, t, 100)));
  });
});

describe('plain lines, without a terminal', () => {
  it('a big transfer: a line as it starts, every ten seconds, and as it ends', () => {
    const t = state(200 * MiB);
    expect(noteDue(t, 0)).toBe('sending S01 to n1: 200 MiB');
    t.notedMs = 0;
    t.bytes = 80 * MiB;
    t.samples = [
      { ms: 0, bytes: 0 },
      { ms: 8000, bytes: 80 * MiB },
    ];
    expect(noteDue(t, 9999)).toBeUndefined();
    expect(noteDue(t, 10_000)).toBe('sending S01 to n1: 80 MiB of 200 MiB, 10 MiB/s, 12s left');
    t.bytes = 200 * MiB;
    expect(endNote(t, 20_000, true)).toBe('sent S01 to n1: 200 MiB in 20s, 10 MiB/s');
    expect(endNote(t, 2500, true)).toBe('sent S01 to n1: 200 MiB in 2.5s, 80 MiB/s');
    t.bytes = 90 * MiB;
    expect(endNote(t, 20_000, false)).toBe('sending S01 to n1 stopped after 90 MiB of 200 MiB');
  });

  it('a small one: nothing, unless it drags on past ten seconds', () => {
    const t = state(3 * MiB);
    expect(noteDue(t, 0)).toBeUndefined();
    expect(noteDue(t, 9999)).toBeUndefined();
    expect(endNote(t, 9999, true)).toBeUndefined();
    expect(noteDue(t, 10_000)).toMatch(/^sending S01 to n1: 0 B of 3.0 MiB/);
  });
});

describe('the view', () => {
  const stream = () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => {
      text += b.toString('utf8');
    });
    return { out, text: () => text };
  };

  it('on a terminal: a bar redrawn at most every 100 ms however many chunks come, erased at the end', () => {
    const s = stream();
    let now = 0;
    const view = new TransferView({ out: s.out, tty: true, columns: () => 100, now: () => now, c: plain });
    const ticker = view.start(send(400 * MiB));
    // 100 chunks a millisecond for 3 s: 1 KiB each.
    for (now = 1; now <= 3000; now++) for (let i = 0; i < 100; i++) ticker.add(1024);
    const draws = s
      .text()
      .split('\n')
      .filter((l) => l.includes('sending S01 to n1 ['));
    expect(draws.length).toBeGreaterThan(20);
    expect(draws.length).toBeLessThanOrEqual(26);
    expect(draws.at(-1)).toContain('293 MiB of');
    view.say('· an event');
    ticker.end(true);
    expect(s.text().endsWith('\x1b[1F\x1b[J')).toBe(true);
    expect(s.text()).toContain('\x1b[1F\x1b[J· an event\nsending S01');
  });

  it('on a terminal: nothing for a transfer that is soon over', () => {
    const s = stream();
    let now = 0;
    const view = new TransferView({ out: s.out, tty: true, columns: () => 100, now: () => now, c: plain });
    const ticker = view.start(send(50 * MiB));
    for (now = 1; now <= 400; now++) ticker.add(128 * 1024);
    ticker.end(true);
    expect(s.text()).toBe('');
  });

  it('elsewhere: a line as a big one starts and one as it ends, none per chunk', () => {
    const s = stream();
    let now = 0;
    const view = new TransferView({ out: s.out, tty: false, columns: () => 100, now: () => now, c: plain });
    const ticker = view.start(send(20 * MiB));
    for (now = 1; now <= 2000; now++) ticker.add(10 * 1024);
    ticker.end(true);
    expect(s.text()).toBe('sending S01 to n1: 20 MiB\nsent S01 to n1: 20 MiB in 2.0s, 9.8 MiB/s\n');
  });

  it("under pull --wait's tasks, the tasks' view draws the bars below them", () => {
    const s = stream();
    let now = 0;
    let transfers: TransferView | undefined;
    const waiting = new WaitingView({
      out: s.out,
      tty: true,
      columns: () => 100,
      now: () => new Date(0),
      everyMs: 1000,
      c: plain,
      below: (width) => transfers?.lines(width) ?? [],
    });
    transfers = new TransferView({ out: s.out, tty: true, columns: () => 100, now: () => now, c: plain, host: () => waiting });
    waiting.update([{ task_id: 'S02', node: 'n2', state: 'running', since: null, line: '' }]);
    const ticker = transfers.start({ direction: 'receive', node: 'n1', tasks: ['S01'], total: 10 * MiB });
    for (now = 100; now <= 700; now += 100) ticker.add(MiB / 2);
    ticker.end(true);
    waiting.close();
    const text = s.text();
    expect(text).toContain('waiting for S02 on n2 (running)\nreceiving S01 from n1 [');
    // Its last drawing has the task alone: the bar is gone with its transfer.
    expect(text.slice(text.lastIndexOf('\x1b[2F\x1b[J'))).toBe('\x1b[2F\x1b[Jwaiting for S02 on n2 (running)\n\x1b[1F\x1b[J');
  });
});

describe('the task tar', () => {
  it('is as big as its transfer says: a header and padded data per file, two zero blocks at the end', () => {
    expect(tarSize([])).toBe(1024);
    expect(
      tarSize([
        { name: 'task.json', data: Buffer.alloc(10) },
        { name: 'base.bundle', path: '/x', size: 100_001 },
      ]),
    ).toBe(1024 + 512 + 512 + 512 + 196 * 512);
  });
});
