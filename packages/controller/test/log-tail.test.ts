import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Chalk } from 'chalk';
import { afterAll, describe, expect, it } from 'vitest';
import { ProtocolError } from '@gsync/core';
import { openLocalTransport, type NodeConfig } from '@gsync/controller';
import { lastLines } from '../src/commands/logs.js';
import { WaitingView } from '../src/live-view.js';
import { tailAgentLog } from '../src/node-api/tail.js';
import { Waiting, type WaitingTask } from '../src/queue/waiting.js';
import { fitWidth, humanDuration, renderWaiting } from '../src/render.js';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';

afterAll(cleanupTempDirs);

/** A node whose "gsync-node" prints `answer` whatever it is asked: a node gone bad. */
async function nodeAnswering(answer: Buffer) {
  const dir = tempDir('gsync-fake-');
  writeFileSync(join(dir, 'answer'), answer);
  const bin = join(dir, 'fake-node');
  writeFileSync(bin, `#!/bin/sh\ncat '${join(dir, 'answer')}'\n`);
  chmodSync(bin, 0o755);
  const node = { name: 'n1', node_bin: bin, work_root: '~/dispatch', answer_timeout_seconds: 10 } as NodeConfig;
  const t = await openLocalTransport('n1', dir, process.env);
  const got: Buffer[] = [];
  const skipped: number[] = [];
  const tail = (maxBytes = 100) =>
    tailAgentLog(
      t,
      node,
      'proj',
      'S01',
      { from: 0, follow: false, maxBytes, seconds: 5 },
      { data: (b) => void got.push(b), skipped: (n) => void skipped.push(n) },
    );
  return { tail, got: () => Buffer.concat(got).toString('utf8'), skipped };
}

const frame = (value: unknown) => `${JSON.stringify(value)}\n`;
const END = frame({ end: { exists: true, offset: 5, size: 5, state: 'done', final: true } });

describe('reading a node answer to tail', () => {
  it('takes data, skips (told as one before the next data) and the end line', async () => {
    const end = frame({ end: { exists: true, offset: 12, size: 12, state: 'done', final: true } });
    const n = await nodeAnswering(Buffer.from(`${frame({ skip: 3 })}${frame({ skip: 4 })}${frame({ data: 5 })}hello${end}`));
    expect(await n.tail()).toMatchObject({ exists: true, state: 'done', final: true });
    expect(n.got()).toBe('hello');
    expect(n.skipped).toEqual([7]);
  });

  const hostile: [string, string, RegExp][] = [
    ['more log than asked for', `${frame({ data: 150 })}${'x'.repeat(150)}${END}`, /more than the 100 bytes of log/],
    ['a header line that never ends', 'x'.repeat(20_000), /header line too long/],
    ['a line that is no frame', `${frame({ data: 2 })}hi${frame({ rm: '-rf' })}${END}`, /outside the protocol/],
    ['bytes after the end', `${END}more`, /bytes after the end/],
    ['no end line', `${frame({ data: 5 })}hello`, /ended before its end line/],
    ['a data frame cut short', `${frame({ data: 50 })}hello`, /ended before its end line/],
    ['a state that is none', frame({ end: { exists: true, state: '\x1b]0;x\x07' } }), /outside the protocol/],
    ['a flood of skip lines', `${frame({ skip: 1048576 }).repeat(5000)}${END}`, /more than 4096 skip lines/],
    [
      'an end before what it sent',
      `${frame({ data: 5 })}hello${frame({ end: { exists: true, offset: 0, size: 5 } })}`,
      /ends at offset 0 of 5 bytes, after sending 5/,
    ],
    ['an end past the log', frame({ end: { exists: true, offset: 9, size: 5 } }), /ends at offset 9 of 5 bytes/],
  ];
  for (const [what, answer, error] of hostile) {
    it(`refuses ${what}`, async () => {
      const n = await nodeAnswering(Buffer.from(answer));
      const failure = await n.tail().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(ProtocolError);
      expect(String((failure as Error).message)).toMatch(error);
    });
  }
});

describe('logs', () => {
  it('cuts to the last lines, a last line without its newline included', () => {
    expect(lastLines('a\nb\nc\n', 2)).toBe('b\nc\n');
    expect(lastLines('a\nb\nc', 1)).toBe('c');
    expect(lastLines('a\nb\n', 5)).toBe('a\nb\n');
    expect(lastLines('a\nb\n', 0)).toBe('');
  });
});

describe('what pull --wait shows', () => {
  const c = new Chalk({ level: 0 });
  const now = new Date('2025-01-02T03:06:15Z');
  const task: WaitingTask = { task_id: 'S01', node: 'n1', state: 'running', since: '2025-01-02T03:04:05Z', line: 'step \x1b]0;pwned\x07 two' };

  it('says where each task runs, for how long, and its last line escaped', () => {
    expect(renderWaiting(c, task, now)).toBe('waiting for S01 on n1 (running 2m10s): step \\x1b]0;pwned\\x07 two');
    expect(renderWaiting(c, { ...task, line: '', since: null, state: null }, now)).toBe('waiting for S01 on n1 (dispatched)');
    expect(humanDuration(3_725_000)).toBe('1h02m');
  });

  it('cuts a line to the terminal width, a wide character counting two', () => {
    expect(renderWaiting(c, task, now, 30)).toBe('waiting for S01 on n1 (runnin…');
    expect(fitWidth('日本語のログ', 7)).toBe('日本語…');
    expect(fitWidth('short', 7)).toBe('short');
  });

  it('keeps one line per task waited for, and drops a task once it has ended', () => {
    let shown: readonly WaitingTask[] = [];
    const w = new Waiting((t) => {
      shown = t.map((x) => ({ ...x }));
    });
    const row = (id: string) => ({ task_id: id, node: 'n1', node_state: 'queued', dispatched_at: '2025-01-02T03:00:00Z' });
    w.set([row('S01'), row('S02')]);
    w.tails([
      { task_id: 'S01', state: 'running', started_at: '2025-01-02T03:01:00Z', line: 'hi' },
      { task_id: 'S09', state: 'running', line: 'not ours' },
    ]);
    expect(shown.map((t) => [t.task_id, t.state, t.since, t.line])).toEqual([
      ['S01', 'running', '2025-01-02T03:01:00Z', 'hi'],
      ['S02', 'queued', '2025-01-02T03:00:00Z', ''],
    ]);
    // The next round keeps what the node said, and forgets what is no longer waited for.
    w.set([row('S01')]);
    expect(shown.map((t) => t.line)).toEqual(['hi']);
    w.tails([{ task_id: 'S01', state: 'done', line: 'bye' }]);
    expect(shown).toEqual([]);
  });

  const stream = () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => {
      text += b.toString('utf8');
    });
    return { out, text: () => text };
  };

  it('elsewhere than a terminal, writes a plain line per task now and then', async () => {
    const s = stream();
    const view = new WaitingView({ out: s.out, tty: false, columns: () => 80, now: () => now, everyMs: 50, c });
    view.update([task]);
    expect(s.text()).toBe('');
    await new Promise((r) => setTimeout(r, 130));
    view.close();
    const lines = s.text().split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(new Set(lines)).toEqual(new Set(['waiting for S01 on n1 (running 2m10s): step \\x1b]0;pwned\\x07 two']));
    expect(s.text()).not.toContain('\x1b');
  });

  it('on a terminal, redraws the lines in place and puts other lines above them', () => {
    const s = stream();
    const view = new WaitingView({ out: s.out, tty: true, columns: () => 40, now: () => now, everyMs: 50, c });
    view.update([task, { ...task, task_id: 'S02' }]);
    view.say('· an event');
    view.close();
    expect(s.text()).toBe(
      [
        'waiting for S01 on n1 (running 2m10s):…\n',
        'waiting for S02 on n1 (running 2m10s):…\n',
        '\x1b[2F\x1b[J· an event\n',
        'waiting for S01 on n1 (running 2m10s):…\n',
        'waiting for S02 on n1 (running 2m10s):…\n',
        '\x1b[2F\x1b[J',
      ].join(''),
    );
  });
});
