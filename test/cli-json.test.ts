import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, writeConfig } from './helpers/world.js';

/**
 * `--json` everywhere: results carry a schema_version, and an error is one JSON line on
 * stderr (message, hint, exit code) with every control character escaped; plus shell
 * completion from the built CLI.
 */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');

function world() {
  const repo = gitRepo();
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'noop.mjs')] }] }, { proj: { repo_local: repo.dir } });
  return configDir;
}

describe('--json', () => {
  it('results carry schema_version; status lists its rows under tasks', async () => {
    const dir = world();
    const status = await runCtl(dir, ['--json', 'status', '--project', 'proj', '--offline']);
    expect(JSON.parse(status.out)).toEqual({ schema_version: 1, tasks: [] });
    const conflicts = JSON.parse((await runCtl(dir, ['--json', 'conflicts', '--project', 'proj', '--offline'])).out) as Record<string, unknown>;
    expect(conflicts).toMatchObject({ schema_version: 1, project: 'proj', tasks: [], pairs: [] });
    expect(Object.keys(conflicts)[0]).toBe('schema_version');
  });

  it('an error is one JSON line on stderr with its exit code and hint, and nothing on stdout', async () => {
    const dir = world();
    for (const [args, code, message] of [
      [['status'], 2, /--project is required/],
      [['status', '--project', 'nope', '--offline'], 2, /nope/],
      [['pull', '--projet', 'proj'], 2, /unknown argument --projet \(did you mean --project\?\)/],
      [['frobnicate'], 2, /frobnicate/],
    ] as const) {
      const r = await runCtl(dir, ['--json', ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.out).toBe('');
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      const parsed = JSON.parse(lines[0]!) as { schema_version: number; error: { message: string; exit_code: number; hint?: string } };
      expect(parsed.schema_version).toBe(1);
      expect(parsed.error.message).toMatch(message);
      expect(parsed.error.exit_code).toBe(code);
    }
  });

  it('hostile text in an error comes out escaped: no control character reaches stderr raw', async () => {
    const dir = world();
    const evil = 'p\u001b]0;pwned\u0007\u009b31m\u202e';
    const r = await runCtl(dir, ['--json', 'status', '--project', evil, '--offline']);
    expect(r.code).toBe(2);
    // eslint-disable-next-line no-control-regex
    expect(r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(JSON.parse(r.err).error.message).toMatch(/not a valid project name|no project|pwned/);
  });
});

describe('shell completion', () => {
  it('prints a bash completion script, and completes commands and flags', () => {
    const script = spawnSync(process.execPath, [CTL, 'completion'], { encoding: 'utf8' });
    expect(script.status).toBe(0);
    expect(script.stdout).toMatch(/complete -o bashdefault -o default -F _gsync-ctl_yargs_completions gsync-ctl/);
    const commands = spawnSync(process.execPath, [CTL, '--get-yargs-completions', 'gsync-ctl', 'pu'], { encoding: 'utf8' }).stdout.split('\n');
    expect(commands).toEqual(expect.arrayContaining(['pull-bundles', 'status', 'cancel', 'doctor']));
    const flags = spawnSync(process.execPath, [CTL, '--get-yargs-completions', 'gsync-ctl', 'status', '--'], { encoding: 'utf8' }).stdout.split('\n');
    expect(flags).toEqual(expect.arrayContaining(['--project', '--all', '--offline', '--watch']));
    // A one-letter alias is offered as typed, never as `--q`.
    expect(flags).toContain('--quiet');
    expect(flags.filter((f) => /^--.$/.test(f))).toEqual([]);
    const short = spawnSync(process.execPath, [CTL, '--get-yargs-completions', 'gsync-ctl', 'status', '-'], { encoding: 'utf8' }).stdout.split('\n');
    expect(short).toContain('-q');
  });
});
