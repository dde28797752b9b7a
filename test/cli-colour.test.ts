import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';

/** The built gsync-ctl on a real pseudo-terminal (util-linux `script`): colour by the usual rules, per stream. */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const ESC = '\x1b[';

/** One word for the shell, whatever it holds. */
const sh = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

const repo = gitRepo();
const configDir = tempDir('gsync-config-');
writeFileSync(join(configDir, 'nodes.json'), JSON.stringify({ nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'noop.mjs')] }] }));
writeFileSync(join(configDir, 'projects.json'), JSON.stringify({ proj: { repo_local: repo.dir } }));

/** gsync-ctl with these arguments, as a shell would start it: `tail` is a redirection or pipe after it. */
const ctl = (args: string[], tail = '') => [process.execPath, CTL, '--config-dir', configDir, ...args].map(sh).join(' ') + tail;
// conflicts prints dimmed lines on stdout and needs no node; an unknown command prints a red line on stderr.
const toStdout = ['conflicts', '--project', 'proj'];
const toStderr = ['frobnicate'];

/** Runs a shell line on a pseudo-terminal and returns what the terminal showed. */
function onTerminal(line: string, env: NodeJS.ProcessEnv = {}): string {
  const base: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
  for (const name of ['NO_COLOR', 'FORCE_COLOR']) delete base[name];
  const r = spawnSync('/usr/bin/script', ['-qec', line, '/dev/null'], { encoding: 'utf8', env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  expect(r.error).toBeUndefined();
  return r.stdout;
}

describe('colour on a terminal', () => {
  it('a terminal gets colour on stdout and on stderr', () => {
    const out = onTerminal(ctl(toStdout));
    expect(out).toContain('no collected task waits to merge into main');
    expect(out).toContain(`${ESC}2m`);
    expect(onTerminal(ctl(toStderr))).toContain(`${ESC}31mgsync-ctl:`);
  });

  it('NO_COLOR=1 turns it off on both streams', () => {
    for (const args of [toStdout, toStderr]) {
      const out = onTerminal(ctl(args), { NO_COLOR: '1' });
      expect(out).toMatch(/collected task|gsync-ctl:/);
      expect(out).not.toContain(ESC);
    }
  });

  it('--no-color turns it off, even on an error from parsing the flags', () => {
    for (const args of [toStdout, toStderr]) expect(onTerminal(ctl(['--no-color', ...args]))).not.toContain(ESC);
  });

  it('piped, stdout and stderr are plain', () => {
    const out = onTerminal(ctl(toStdout, ' | cat'));
    expect(out).toContain('no collected task waits');
    expect(out).not.toContain(ESC);
    expect(onTerminal(ctl(toStderr, ' 2>&1 | cat'))).not.toContain(ESC);
  });

  it('each stream is judged on its own: stdout piped leaves stderr coloured, stderr to a file is plain', () => {
    expect(onTerminal(ctl(toStderr, ' | cat'))).toContain(`${ESC}31mgsync-ctl:`);
    const file = join(tempDir('gsync-stderr-'), 'err.txt');
    onTerminal(ctl(toStderr, ` 2>${sh(file)}`));
    const err = readFileSync(file, 'utf8');
    expect(err).toMatch(/^gsync-ctl: unknown argument "frobnicate"/);
    expect(err).not.toContain(ESC);
  });

  it('FORCE_COLOR=1 or --color gives colour when piped; --no-color beats FORCE_COLOR', () => {
    expect(onTerminal(ctl(toStdout, ' | cat'), { FORCE_COLOR: '1' })).toContain(`${ESC}2m`);
    expect(onTerminal(ctl(toStderr, ' 2>&1 | cat'), { FORCE_COLOR: '1' })).toContain(`${ESC}31mgsync-ctl:`);
    expect(onTerminal(ctl(['--color', ...toStdout], ' | cat'))).toContain(`${ESC}2m`);
    expect(onTerminal(ctl(['--no-color', ...toStdout], ' | cat'), { FORCE_COLOR: '1' })).not.toContain(ESC);
  });
});
