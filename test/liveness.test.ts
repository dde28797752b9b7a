import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch, main } from '@gsync/controller';
import { AGENTS, NODE_TOOL, ROOT, capture, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/** `pull --wait` says which tasks run where, for how long, and what their agents said last; never under --quiet or --json. */
afterAll(cleanupTempDirs);

/** A node_bin that notes every gsync-node command it starts, then runs it. */
function countingNodeBin(): { bin: string; calls: () => string[] } {
  const dir = tempDir('gsync-bin-');
  const log = join(dir, 'calls.log');
  const bin = join(dir, 'node-counting');
  writeFileSync(bin, `#!/bin/sh\necho "$2" >> '${log}'\nexec '${process.execPath}' "$@"\n`);
  chmodSync(bin, 0o755);
  return { bin, calls: () => readFileSync(log, 'utf8').trim().split('\n') };
}

/** A project whose one task's agent says a line, works a while, and says more. */
async function slowTask(spec = 'Talk\nsay step one\nsleep 3\nsay step two\nsleep 1\n') {
  const repo = gitRepo();
  const { bin, calls } = countingNodeBin();
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'talk.mjs'), '{spec_file}'], node_bin: bin }] },
    { proj: { repo_local: repo.dir } },
  );
  await dispatch(testContext(configDir), { project: 'proj', spec: specFile(tempDir('gsync-specs-'), 's.md', spec) });
  return { configDir, calls };
}

/** gsync-ctl pull --wait in this process, stderr no terminal, its plain lines every `everyMs`. */
async function pullWait(configDir: string, flags: string[] = [], everyMs = 300) {
  const [out, err] = [capture(), capture()];
  const io = {
    env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' },
    stdout: out.stream,
    stderr: err.stream,
    nodeToolPath: NODE_TOOL,
    pid: process.pid,
    waitingEveryMs: everyMs,
  };
  const code = await main(['--config-dir', configDir, ...flags, 'pull', '--project', 'proj', '--wait', '--interval', '0.2'], io);
  return { code, out: out.text(), err: err.text() };
}

describe('pull --wait while agents run', () => {
  it('not on a terminal: a plain line per task now and then, its last log line brought by the wait it makes anyway', async () => {
    const { configDir, calls } = await slowTask();
    const before = calls().length;
    const r = await pullWait(configDir);
    expect(r.code, r.err).toBe(0);
    const lines = r.err.split('\n').filter((l) => l.startsWith('waiting for'));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines)
      expect(line).toMatch(/^waiting for S01 on l1 \((queued|received|preparing|running|committing|bundling|dispatched) \d+s\)(: step (one|two))?$/);
    expect(lines).toContainEqual(expect.stringMatching(/\(running [1-4]s\): step one$/));
    expect(r.err).not.toContain('\x1b');
    // No call of its own: the lines come with the node's long poll (a few waits, not one call a second).
    const during = calls().slice(before);
    expect(during.filter((c) => !['wait', 'collect', 'report'].includes(c))).toEqual([]);
    expect(during.length).toBeLessThanOrEqual(8);
  });

  for (const flag of ['--quiet', '--json']) {
    it(`${flag}: none of it`, async () => {
      const { configDir, calls } = await slowTask('Talk\nsay step one\nsleep 2\n');
      const before = calls().length;
      const r = await pullWait(configDir, [flag], 100);
      expect(r.code, r.err).toBe(0);
      expect(r.err).not.toMatch(/waiting for/);
      expect(r.out).not.toMatch(/waiting for/);
      expect(calls().slice(before)).toContain('wait');
    });
  }

  it('on a terminal: the lines are redrawn in place, cut to its width, a hostile line escaped', async () => {
    const { configDir } = await slowTask('Talk\nsay step one\nsleep 2\nhostile\nsleep 2\n');
    const ctl = [
      process.execPath,
      join(ROOT, 'packages/controller/bin/gsync-ctl.js'),
      '--config-dir',
      configDir,
      'pull',
      '--project',
      'proj',
      '--wait',
      '--interval',
      '0.2',
    ];
    const line = ctl.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(' ');
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm', COLUMNS: '60', SSH_AUTH_SOCK: '' };
    for (const name of ['NO_COLOR', 'FORCE_COLOR']) delete env[name];
    const r = spawnSync('/usr/bin/script', ['-qec', line, '/dev/null'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(r.status, r.stdout).toBe(0);
    const screen = r.stdout;
    // Drawn, then moved up over and drawn again.
    expect(screen).toMatch(/waiting for S01 on l1 \(running \d+s\)\x1b\[2m: step one/);
    expect(screen).toContain('\x1b[1F\x1b[J');
    // The title escape arrives as text; the line fits in 59 columns.
    expect(screen).not.toContain('\x1b]0;');
    const hostile = screen.split('\r\n').find((l) => l.includes('pwned'));
    expect(hostile).toContain('\\x1b]0;pwned');
    const visible = hostile!.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    expect(visible.slice(visible.lastIndexOf('waiting for')).length).toBeLessThanOrEqual(59);
    expect(visible).toMatch(/…$/);
  });
});
