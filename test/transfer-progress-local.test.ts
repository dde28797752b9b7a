import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, pullBundles, type TransferStart } from '@gsync/controller';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * Transfers show their bytes as they go: counted exactly on local nodes, and shown by the
 * built gsync-ctl on a real pseudo-terminal (util-linux `script`) with the node behind a
 * slow link (fixtures/node/slow-link.mjs), as a bar; piped, as two plain lines; with
 * --quiet, not at all.
 */
afterAll(cleanupTempDirs);

const MiB = 1024 * 1024;
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const SLOW_LINK = join(ROOT, 'fixtures/node/slow-link.mjs');
const ESC = '\x1b[';

/** A repository with 10 MiB of incompressible code (its first bundle is as big) and a config dir of its own. */
function world(nodeExtra: object = {}) {
  const repo = gitRepo();
  spawnSync('sh', ['-c', `head -c ${10 * MiB} /dev/urandom > big.bin`], { cwd: repo.dir });
  repo.commitAll('big file');
  const configDir = tempDir('gsync-config-');
  const agent = ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'];
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent, ...nodeExtra }] }, { proj: { repo_local: repo.dir } });
  return { configDir, specs: tempDir('gsync-specs-') };
}

describe('transfers on local nodes', () => {
  it('the code sent and the result received are counted to the byte, and each transfer ends once', async () => {
    const { configDir, specs } = world();
    const seen: { start: TransferStart; bytes: number; ends: boolean[] }[] = [];
    const ctx = testContext(configDir, {
      onTransfer: (start) => {
        const t = { start, bytes: 0, ends: [] as boolean[] };
        seen.push(t);
        return {
          add: (n) => {
            t.bytes += n;
          },
          end: (ok) => void t.ends.push(ok),
        };
      },
    });
    await dispatch(ctx, { project: 'proj', spec: specFile(specs, 's.md', `random noise.bin ${3 * MiB} seed\n`) });
    const report = await pullBundles(ctx, { project: 'proj', wait: true, interval: 0.1, timeout: 60 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(seen.map((t) => [t.start.direction, t.start.node, t.start.tasks, t.ends])).toEqual([
      ['send', 'l1', ['S01'], [true]],
      ['receive', 'l1', ['S01'], [true]],
    ]);
    const [sent, received] = seen;
    // The task tar: the 10 MiB bundle with task.json and spec.md, every byte of it counted.
    expect(sent!.start.total).toBeGreaterThan(10 * MiB);
    expect(sent!.bytes).toBe(sent!.start.total);
    // The collect stream after its report: the 3 MiB result with its tar header and end.
    expect(received!.start.total).toBeGreaterThan(3 * MiB);
    expect(received!.bytes).toBeGreaterThanOrEqual(3 * MiB);
    expect(received!.bytes).toBeLessThanOrEqual(received!.start.total + 64 * 1024);
  });
});

/** The task runs on after dispatch returns: its temp dirs go only once it is done writing. */
async function finished(configDir: string): Promise<void> {
  const statusFile = join(configDir, 'nodes/l1/dispatch/proj/tasks/S01/status.json');
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(statusFile, 'utf8')) as { finished_at?: string }).finished_at) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One word for the shell, whatever it holds. */
const sh = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** Runs gsync-ctl on a pseudo-terminal (`tail` is a redirection after it) and returns what the terminal showed. */
function onTerminal(configDir: string, args: string[], tail = ''): string {
  const line = [process.execPath, CTL, '--config-dir', configDir, ...args].map(sh).join(' ') + tail;
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm', COLUMNS: '100', GSYNC_TEST_LINK_RATE: String(8 * MiB) };
  for (const name of ['NO_COLOR', 'FORCE_COLOR']) delete env[name];
  const r = spawnSync('/usr/bin/script', ['-qec', line, '/dev/null'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  expect(r.error).toBeUndefined();
  return r.stdout;
}

describe('transfer progress of the built gsync-ctl, behind a slow link', () => {
  const slow = { node_bin: SLOW_LINK };
  const dispatchArgs = (specs: string, spec: string) => ['dispatch', '--project', 'proj', '--spec', specFile(specs, 's.md', spec)];

  it('on a terminal: a bar with the bytes sent, then the bytes received, gone once each is over', () => {
    const { configDir, specs } = world(slow);
    const out = onTerminal(configDir, dispatchArgs(specs, `random noise.bin ${10 * MiB} seed\n`));
    expect(out).toMatch(/sending S01 to l1 \[\S*=[^\]]*\] \d+(\.\d)? MiB of 10 MiB/);
    // Erased before the next line: nothing is left of it on the screen.
    expect(out).toMatch(/MiB\/s, \d+s left\r?\n\x1b\[1F\x1b\[J\S*·\S* dispatched S01 to l1/);
    expect(out).toContain('dispatched \x1b[1mS01');
    const pulled = onTerminal(configDir, ['pull', '--project', 'proj', '--wait', '--interval', '0.2', '--timeout', '60']);
    expect(pulled).toMatch(/receiving S01 from l1 \[\S*=[^\]]*\] \d+(\.\d)? MiB of 10 MiB/);
    expect(pulled).toContain('merged');
  });

  it('stderr piped: a plain line as the code starts going and one as it is there, no bar', async () => {
    const { configDir, specs } = world(slow);
    const errFile = join(tempDir('gsync-stderr-'), 'err.txt');
    const out = onTerminal(configDir, dispatchArgs(specs, '# nothing\n'), ` 2>${sh(errFile)}`);
    expect(out).toContain('dispatched \x1b[1mS01');
    expect(out).not.toContain('sending');
    const err = readFileSync(errFile, 'utf8');
    const lines = err.split('\n').filter((l) => /S01 to l1:/.test(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe('sending S01 to l1: 10 MiB');
    expect(lines[1]).toMatch(/^sent S01 to l1: 10 MiB in \d+\.\ds, \d+(\.\d)? MiB\/s$/);
    expect(err).not.toContain('\x1b');
    expect(err).not.toContain('[=');
    await finished(configDir);
  });

  it('--quiet: nothing of it', async () => {
    const { configDir, specs } = world(slow);
    const out = onTerminal(configDir, ['--quiet', ...dispatchArgs(specs, '# nothing\n')]);
    expect(out).toContain('dispatched \x1b[1mS01');
    expect(out).not.toMatch(/sending|sent S01/);
    expect(out).not.toContain(`${ESC}1F`);
    await finished(configDir);
  });
});
