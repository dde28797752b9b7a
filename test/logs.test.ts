import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { Store, dispatch, main } from '@gsync/controller';
import { AGENTS, NODE_TOOL, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, writeConfig } from './helpers/world.js';

/** `gsync-ctl logs` on local nodes: the agent's log read from its node, bounded, escaped, followed until the task ends. */
afterAll(cleanupTempDirs);

const TALK = ['node', join(AGENTS, 'talk.mjs'), '{spec_file}'];

function setup() {
  const repo = gitRepo();
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent: TALK }] }, { proj: { repo_local: repo.dir } });
  const ctx = { configDir, home: tempDir('gsync-home-'), env: { ...process.env, SSH_AUTH_SOCK: '' }, now: () => new Date(), pid: process.pid };
  const send = (spec: string) =>
    dispatch(
      { ...ctx, nodeToolPath: NODE_TOOL, acceptNew: false, onEvent: () => undefined },
      { project: 'proj', spec: specFile(tempDir('gsync-specs-'), 's.md', spec) },
    );
  const statusFile = (task = 'S01') => join(configDir, 'nodes/l1/dispatch/proj/tasks', task, 'status.json');
  return { configDir, send, statusFile };
}

/** The task runs on after dispatch returns: wait until the node says it has ended. */
async function ended(statusFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(statusFile, 'utf8')) as { finished_at?: string }).finished_at) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`${statusFile} never ended`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** gsync-ctl in this process, noting when each piece of stdout arrived. */
async function ctlTimed(configDir: string, argv: string[]) {
  const out = new PassThrough();
  const err = new PassThrough();
  const pieces: { at: number; text: string }[] = [];
  let errText = '';
  out.on('data', (b: Buffer) => pieces.push({ at: Date.now(), text: b.toString('utf8') }));
  err.on('data', (b: Buffer) => {
    errText += b.toString('utf8');
  });
  const io = { env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, stdout: out, stderr: err, nodeToolPath: NODE_TOOL, pid: process.pid };
  const code = await main(['--config-dir', configDir, ...argv], io);
  return { code, pieces, out: pieces.map((p) => p.text).join(''), err: errText, ended: Date.now() };
}

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;

describe('gsync-ctl logs', () => {
  it("shows a finished task's log, its last lines, or JSON lines, and its final state", async () => {
    const w = setup();
    await w.send('Talk\nsay one\nsay two\nsay three\n');
    await ended(w.statusFile());
    const all = await runCtl(w.configDir, ['logs', '--project', 'proj', '--task', 'S01']);
    expect(all.code, all.err).toBe(0);
    expect(all.out).toBe('one\ntwo\nthree\n');
    expect(all.err).toMatch(/^S01 on l1 ended: empty$/m);
    const last = await runCtl(w.configDir, ['logs', '--project', 'proj', '--task', 'S01', '--lines', '2']);
    expect(last.out).toBe('two\nthree\n');
    const json = await runCtl(w.configDir, ['--json', 'logs', '--project', 'proj', '--task', 'S01', '-n', '1']);
    expect(
      json.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { schema_version: 1, log: 'three\n' },
      { schema_version: 1, end: expect.objectContaining({ task_id: 'S01', node: 'l1', state: 'empty', final: true, on_node: true }) },
    ]);
  });

  it('--follow shows lines as the agent writes them, and ends when the task ends', async () => {
    const w = setup();
    await w.send('Talk\nsay first\nsleep 2\nsay second\nsleep 1\nsay third\n');
    const r = await ctlTimed(w.configDir, ['logs', '--project', 'proj', '--task', 'S01', '--follow']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('first\nsecond\nthird\n');
    expect(r.err).toMatch(/^S01 on l1 ended: empty$/m);
    // "first" was shown while the agent still slept, not all at the end.
    const first = r.pieces.find((p) => p.text.includes('first'))!;
    expect(r.ended - first.at).toBeGreaterThanOrEqual(2000);
    expect(first.text).not.toContain('third');
  });

  it('shows hostile log text escaped, and at most the last MiB of a 50 MiB log', async () => {
    const w = setup();
    await w.send('Talk\nflood 50\nhostile\nsay the end\n');
    await ended(w.statusFile());
    const r = await runCtl(w.configDir, ['logs', '--project', 'proj', '--task', 'S01']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toMatch(CONTROL);
    expect(r.out).toContain('over\\x0dwrite \\x1b]0;pwned title\\x07\\x1b[2J\\x1b[31mred\\x1b[0m \\x9b31m c1 \\x00nul\\x07 \\u{202e}evil\nthe end\n');
    expect(Buffer.byteLength(r.out)).toBeLessThan(1.1 * 1024 * 1024);
    expect(r.err).toMatch(/^… 49(\.\d)? MiB of the log left out/m);
    expect(r.err).not.toMatch(CONTROL);
    // As JSON, the same text comes back exactly, and no C1 or bidi character is printed raw.
    const json = await runCtl(w.configDir, ['--json', 'logs', '--project', 'proj', '--task', 'S01', '--lines', '2']);
    expect(json.out).not.toMatch(/[\u007f-\u009f\u202e]/);
    expect(JSON.parse(json.out.split('\n')[0]!)).toEqual({
      schema_version: 1,
      log: 'over\rwrite \x1b]0;pwned title\x07\x1b[2J\x1b[31mred\x1b[0m \u009b31m c1 \0nul\x07 \u202eevil\nthe end\n',
    });
  });

  it('an unknown project or task is exit 2, a task not on its node yet exit 4, each said in one line', async () => {
    const w = setup();
    const project = await runCtl(w.configDir, ['logs', '--project', 'nope', '--task', 'S01']);
    expect([project.code, project.out]).toEqual([2, '']);
    expect(project.err).toMatch(/^gsync-ctl: unknown project "nope"/);
    const task = await runCtl(w.configDir, ['logs', '--project', 'proj', '--task', 'S07']);
    expect([task.code, task.out]).toEqual([2, '']);
    expect(task.err).toMatch(/^gsync-ctl: no task S07 in project proj\n/);
    // A task whose dispatch has begun but not reached the node.
    const store = new Store(join(w.configDir, 'gsync.db'));
    store.insertTask({
      project: 'proj',
      task_id: 'S02',
      node: 'l1',
      branch: 'task/proj-S02-l1',
      base_ref: 'refs/heads/main',
      base_commit: '0'.repeat(40),
      spec_title: 'x',
      spec_sha256: '0'.repeat(64),
    });
    store.close();
    const early = await runCtl(w.configDir, ['logs', '--project', 'proj', '--task', 'S02', '--follow']);
    expect([early.code, early.out, early.err]).toEqual([4, '', 'task S02 is not on l1 yet: it is still being sent\n']);
  });

  it('a node whose follow answers at once, the log never moving, is asked again at most once a second', async () => {
    const w = setup();
    await w.send('# talk\nsay hello\n');
    await ended(w.statusFile());
    // A node that answers every tail at once with "still running, nothing new"; every other call goes to the real tool.
    const dir = tempDir('gsync-fake-');
    const calls = join(dir, 'calls');
    const bin = join(dir, 'node-bin');
    const end = JSON.stringify({ end: { exists: true, offset: 0, size: 0, state: 'running', final: false } });
    writeFileSync(bin, `#!/bin/sh\nfor a in "$@"; do if [ "$a" = tail ]; then echo >> '${calls}'; printf '%s\\n' '${end}'; exit 0; fi; done\nexec node "$@"\n`);
    chmodSync(bin, 0o755);
    writeConfig(w.configDir, { nodes: [{ name: 'l1', transport: 'local', agent: TALK, node_bin: bin }] }, { proj: { repo_local: gitRepo().dir } });
    const started = Date.now();
    const r = await runCtl(w.configDir, ['--timeout', '4', 'logs', '--project', 'proj', '--task', 'S01', '--follow']);
    const asked = readFileSync(calls, 'utf8').length;
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.out).toBe('');
    // The first read and about one follow a second: never the hundreds a loop without a pause makes.
    expect(asked).toBeGreaterThanOrEqual(2);
    expect(asked).toBeLessThanOrEqual(6);
  });

  it('Ctrl-C on a follow leaves no process on the node', async () => {
    const w = setup();
    await w.send('Talk\nsay begin\nsleep 30\n');
    const ctl = spawn(
      process.execPath,
      [join(ROOT, 'packages/controller/bin/gsync-ctl.js'), '--config-dir', w.configDir, 'logs', '--project', 'proj', '--task', 'S01', '-f'],
      {
        env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    ctl.stdout.on('data', (b: Buffer) => {
      out += b.toString('utf8');
    });
    const home = join(w.configDir, 'nodes/l1');
    /** gsync-node tail processes run for this node (a local node's commands start in its home). */
    const tails = () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return readlinkSync(`/proc/${p}/cwd`) === home && readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes('tail');
          } catch {
            return false;
          }
        });
    const until = async (ok: () => boolean, what: string, seconds: number) => {
      for (let i = 0; !ok(); i++) {
        if (i > seconds * 10) throw new Error(`not within ${seconds} s: ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until(() => out.includes('begin') && tails().length === 1, 'begin shown, one tail on the node', 30);
    const exited = new Promise((resolve) => ctl.on('exit', (code, signal) => resolve(signal ?? code)));
    // Only gsync-ctl is signalled, as over SSH, where the node sees just the connection close.
    ctl.kill('SIGINT');
    expect(await exited).toBe('SIGINT');
    // Long before the 30 s a follow call may last.
    await until(() => tails().length === 0, 'the tail gone from the node', 5);
  });
});
