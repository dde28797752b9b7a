import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FILES, PROTOCOL_VERSION, type NodeState } from '@gsync/core';
import { main, tasksRoot } from '@gsync/node';
import { AGENTS, cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';

afterAll(cleanupTempDirs);

/** gsync-node in this process, its stdout kept as bytes (a log is bytes, not text). */
async function node(argv: string[], stdin: Readable = Readable.from([])): Promise<{ code: number; out: Buffer; err: string }> {
  const [out, err] = [new PassThrough(), new PassThrough()];
  const parts: Buffer[] = [];
  const errs: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  err.on('data', (c: Buffer) => errs.push(c));
  const code = await main({ argv, env: process.env, stdin, stdout: out, stderr: err, self: join(AGENTS, 'noop.mjs') });
  return { code, out: Buffer.concat(parts), err: Buffer.concat(errs).toString('utf8') };
}

interface Frames {
  data: Buffer;
  skipped: number;
  end: Record<string, unknown>;
}

/** Reads tail's frames: `{"data":N}` and N bytes, `{"skip":N}`, then `{"end":...}` last. */
function frames(out: Buffer): Frames {
  const data: Buffer[] = [];
  let skipped = 0;
  let rest = out;
  for (;;) {
    const nl = rest.indexOf(0x0a);
    const frame = JSON.parse(rest.subarray(0, nl).toString('utf8')) as { data?: number; skip?: number; end?: Record<string, unknown> };
    rest = rest.subarray(nl + 1);
    if (frame.data) {
      data.push(rest.subarray(0, frame.data));
      rest = rest.subarray(frame.data);
    } else if (frame.skip) skipped += frame.skip;
    else {
      expect(rest.length).toBe(0);
      return { data: Buffer.concat(data), skipped, end: frame.end! };
    }
  }
}

/** A task dir as a run leaves it: status.json in `state` (its runner `pid`) and agent.log holding `log`. */
function taskDir(state: NodeState, log: string | Buffer, pid = process.pid) {
  const workRoot = tempDir('gsync-work-');
  const dir = join(tasksRoot(workRoot, 'proj'), 'S01');
  mkdirSync(dir, { recursive: true });
  const setState = (s: NodeState, extra: object = {}) =>
    writeFileSync(
      join(dir, FILES.status),
      JSON.stringify({
        protocol: PROTOCOL_VERSION,
        state: s,
        updated_at: new Date().toISOString(),
        started_at: '2025-01-02T03:04:05.000Z',
        pid,
        history: [],
        ...extra,
      }),
    );
  setState(state);
  writeFileSync(join(dir, FILES.agentLog), log);
  const argv = (...more: string[]) => ['tail', '--work-root', workRoot, '--project', 'proj', '--task', 'S01', ...more];
  return { workRoot, dir, setState, argv, log: join(dir, FILES.agentLog) };
}

describe('gsync-node tail', () => {
  it('sends the log of a finished task whole, with its final state', async () => {
    const log = Buffer.from('one\n\x1b]0;title\x07two\n\0three');
    const t = taskDir('done', log);
    const r = await node(t.argv());
    expect(r.code, r.err).toBe(0);
    const f = frames(r.out);
    expect(f.data.equals(log)).toBe(true);
    expect(f.end).toEqual({ exists: true, offset: log.length, size: log.length, state: 'done', final: true });
    // From an offset: only what lies after it.
    expect(frames((await node(t.argv('--from', '4'))).out).data.toString()).toBe(log.subarray(4).toString());
  });

  it('sends at most --max-bytes, the newest, and says how much it left out', async () => {
    const t = taskDir('done', 'x'.repeat(90) + '0123456789');
    const f = frames((await node(t.argv('--max-bytes', '10'))).out);
    expect(f).toMatchObject({ skipped: 90, end: { offset: 100 } });
    expect(f.data.toString()).toBe('0123456789');
  });

  it('says a task it does not have is not there', async () => {
    const r = await node(['tail', '--work-root', tempDir('gsync-work-'), '--project', 'proj', '--task', 'S09', '--follow']);
    expect(r.code).toBe(0);
    expect(frames(r.out).end).toEqual({ exists: false });
    expect((await node(['tail', '--work-root', '/tmp', '--project', 'proj', '--task', 'S01', '--from', '-1'])).code).toBe(2);
  });

  it('following, sends what the log gains and ends when the state is final', async () => {
    const t = taskDir('running', 'first\n');
    const stdin = new PassThrough();
    const t0 = Date.now();
    const following = node(t.argv('--follow', '--seconds', '20'), stdin);
    setTimeout(() => appendFileSync(t.log, 'second\n'), 300);
    setTimeout(() => {
      appendFileSync(t.log, 'last\n');
      t.setState('failed', { error: 'the agent exited with code 3' });
    }, 700);
    const f = frames((await following).out);
    expect(f.data.toString()).toBe('first\nsecond\nlast\n');
    expect(f.end).toMatchObject({ state: 'failed', final: true, error: 'the agent exited with code 3' });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('ends a follow when the controller hangs up, when its time is up, and when the run is gone', async () => {
    const t = taskDir('running', 'x\n');
    const stdin = new PassThrough();
    const t0 = Date.now();
    const following = node(t.argv('--follow', '--seconds', '30'), stdin);
    setTimeout(() => stdin.end(), 300);
    expect(frames((await following).out).end).toMatchObject({ state: 'running', final: false });
    expect(Date.now() - t0).toBeLessThan(5000);
    const timed = frames((await node(t.argv('--follow', '--seconds', '1', '--from', '2'), new PassThrough())).out);
    expect(timed.end).toMatchObject({ final: false, offset: 2 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    // No runner alive: nothing will end it but a report, so a follow does not wait.
    const dead = taskDir('running', 'x\n', 2 ** 22 + 17);
    expect(frames((await node(dead.argv('--follow', '--seconds', '30'), new PassThrough())).out).end).toMatchObject({ stopped: true, final: false });
  });
});

describe('gsync-node wait --tails', () => {
  it("tells each task's state and last log line before the answer", async () => {
    const t = taskDir('running', 'first\nprogress 10%\rprogress 50%\r\n\n');
    const stdin = new PassThrough();
    const r = await node(['wait', '--work-root', t.workRoot, '--project', 'proj', '--task', 'S01', '--seconds', '1', '--tails'], stdin);
    const lines = r.out.toString('utf8').trim().split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({ tails: [{ task_id: 'S01', state: 'running', started_at: '2025-01-02T03:04:05.000Z', line: 'progress 50%' }] });
    expect(JSON.parse(lines.at(-1)!)).toEqual({ changed: [] });
    // Without --tails, the answer alone, as before.
    const plain = await node(['wait', '--work-root', t.workRoot, '--project', 'proj', '--task', 'S01', '--seconds', '0'], new PassThrough());
    expect(plain.out.toString('utf8')).toBe('{"changed":[]}\n');
  });
});
