import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, writeConfig } from './helpers/world.js';

/**
 * A config dir the user may not write: the built gsync-ctl, run as an ordinary user
 * (`nobody`; root would write anyway), stops with exit 2 and one line that says what to
 * fix, before it sends or merges anything, whatever the command.
 */
afterAll(cleanupTempDirs);

const NOBODY = 65534;
const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');

/** Every path down to `path` readable by everyone, the way a home dir usually is. */
function openToAll(path: string): void {
  for (let p = path; p !== '/'; p = join(p, '..')) chmodSync(p, statSync(p).mode | 0o755);
}

function asNobody(configDir: string, args: string[]) {
  const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, ...args], {
    uid: NOBODY,
    gid: NOBODY,
    env: { PATH: process.env.PATH, HOME: tempDir('gsync-home-'), NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function world() {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
    { proj: { repo_local: repo.dir } },
  );
  const spec = specFile(tempDir('gsync-specs-'), 'a.md', '# a\nwrite a.txt a\n');
  for (const p of [repo.dir, configDir, spec]) openToAll(p);
  return { repo, configDir, spec };
}

const COMMANDS = (spec: string) => [
  ['status', '--project', 'proj'],
  ['dispatch', '--project', 'proj', '--spec', spec],
  ['pull', '--project', 'proj'],
];

describe('a config dir this user may not write', () => {
  it('with no store yet: every command stops with exit 2 and the fix, nothing created or sent', () => {
    const w = world();
    for (const args of COMMANDS(w.spec)) {
      const r = asNobody(w.configDir, args);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain(`gsync-ctl: ${join(w.configDir, 'gsync.db')}: cannot open the store`);
      expect(r.err).toContain('must be writable by this user');
      expect(r.err).toContain('fix the permissions of the config dir');
      expect(r.out).toBe('');
    }
    expect(readdirSync(w.configDir).sort()).toEqual(['nodes.json', 'projects.json']);
    expect(w.repo.git('for-each-ref', '--format=%(refname)').trim()).toBe('refs/heads/main');
  });

  it('with a store the user may not write, in a dir the user may write: the same, not a failure at the first write', () => {
    const w = world();
    // The store made by someone else (here: root), then the dir opened up.
    expect(spawnSync(process.execPath, [CTL, '--config-dir', w.configDir, 'status', '--project', 'proj']).status).toBe(0);
    chmodSync(w.configDir, 0o777);
    for (const name of readdirSync(w.configDir)) chmodSync(join(w.configDir, name), 0o644);
    for (const args of COMMANDS(w.spec)) {
      const r = asNobody(w.configDir, args);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(/cannot open the store \(SQLITE_READONLY\): the config dir and the store in it must be writable by this user/);
    }
    expect(w.repo.git('for-each-ref', '--format=%(refname)').trim()).toBe('refs/heads/main');
  });

  it('the same user with a dir of its own works (the test can tell the difference)', () => {
    const w = world();
    chownSync(w.configDir, NOBODY, NOBODY);
    const r = asNobody(w.configDir, ['status', '--project', 'proj']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});
