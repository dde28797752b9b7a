import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, writeConfig } from './helpers/world.js';

/** The built gsync-ctl as a user runs it: one clear line and a documented exit code for bad input. */
afterAll(cleanupTempDirs);

const CTL = join(ROOT, 'packages/controller/bin/gsync-ctl.js');

function world() {
  const repo = gitRepo();
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'echo-argv.mjs'), '{spec}'] }] },
    { proj: { repo_local: repo.dir } },
  );
  return { repo, configDir, specs: tempDir('gsync-specs-') };
}

function ctl(configDir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, firstLine: r.stderr.split('\n')[0] ?? '' };
}

describe('gsync-ctl on bad input', () => {
  const w = world();
  const good = specFile(w.specs, 'good.md', '# fine\n');
  const nodeHome = join(w.configDir, 'nodes/l1');
  const cases: [string, string[], RegExp][] = [
    ['unknown project', ['dispatch', '--project', 'nope', '--spec', good], /unknown project "nope" \(projects in .*projects\.json: proj\)/],
    ['unknown node', ['dispatch', '--project', 'proj', '--spec', good, '--node', 'ghost'], /unknown node "ghost" \(nodes in .*nodes\.json: l1\)/],
    ['missing spec', ['dispatch', '--project', 'proj', '--spec', join(w.specs, 'missing.md')], /spec .*missing\.md: file not found/],
    ['path-like task id', ['dispatch', '--project', 'proj', '--spec', good, '--task', '../../x'], /task id "\.\.\/\.\.\/x" may hold only letters/],
    ['task id with a shell substitution', ['dispatch', '--project', 'proj', '--spec', good, '--task', '$(id)'], /task id "\$\(id\)" may hold only/],
    ['missing flag', ['dispatch', '--project', 'proj'], /^gsync-ctl: missing --spec$/],
    ['unknown command', ['frobnicate'], /^gsync-ctl: unknown argument "frobnicate"$/],
    ['a mistyped command', ['pul', '--project', 'proj'], /^gsync-ctl: unknown command "pul": did you mean pull\?$/],
    ['a mistyped flag', ['status', '--project', 'proj', '--jsn'], /^gsync-ctl: unknown argument --jsn \(did you mean --json\?\)$/],
    ['a mistyped required flag', ['dispatch', '--projet', 'proj', '--spec', good], /^gsync-ctl: unknown argument --projet \(did you mean --project\?\)$/],
    [
      'a task id for several specs',
      ['dispatch', '--project', 'proj', '--spec', good, '--spec', good, '--task', 'T1'],
      /--task names one task: give it with a single --spec file/,
    ],
    ['an empty spec folder', ['dispatch', '--project', 'proj', '--spec', tempDir('gsync-empty-')], /spec folder .* has no \.md or \.txt file/],
  ];
  for (const [what, args, message] of cases) {
    it(`${what}: exit 2, one clear line, nothing written`, () => {
      const r = ctl(w.configDir, ...args);
      expect(r.code).toBe(2);
      expect(r.firstLine).toMatch(/^gsync-ctl: /);
      expect(r.firstLine).toMatch(message);
      expect(existsSync(nodeHome)).toBe(false);
    });
  }

  it('a dispatch that fails says so once', () => {
    const { configDir, specs, repo } = world();
    writeConfig(
      configDir,
      { nodes: [{ name: 'far', host: '127.0.0.1', port: 1, connect_timeout_seconds: 2, identity_file: join(specs, 'no-such-key') }] },
      { proj: { repo_local: repo.dir } },
    );
    const r = ctl(configDir, 'dispatch', '--project', 'proj', '--spec', specFile(specs, 's.md', '# one\n'));
    expect(r.code).toBe(5);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('  '));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^gsync-ctl: node far: /);
  });

  it('--version and -V print the version; -h is --help', () => {
    for (const flag of ['--version', '-V']) {
      const r = ctl(w.configDir, flag);
      expect([r.code, r.stdout.trim()]).toEqual([0, expect.stringMatching(/^gsync-ctl \d+\.\d+\.\d+$/)]);
    }
    const help = ctl(w.configDir, '-h');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('gsync-ctl <command> [options]');
    expect(help.stdout).toContain('cleanup');
  });

  it('an empty spec is refused', () => {
    const r = ctl(w.configDir, 'dispatch', '--project', 'proj', '--spec', specFile(w.specs, 'empty.md', '\n  \n'));
    expect([r.code, r.firstLine]).toEqual([2, expect.stringMatching(/spec .*empty\.md: is empty/)]);
  });

  it('a bad config names the file and the field', () => {
    const configDir = tempDir('gsync-config-');
    writeConfig(configDir, { nodes: [{ name: 'a', host: 'h', port: '22' }] }, {});
    const r = ctl(configDir, 'status', '--project', 'proj');
    expect(r.code).toBe(2);
    expect(r.firstLine).toMatch(/nodes\.json: nodes\[0\]\.port: .*number/);
  });

  it('a duplicate task id is refused', () => {
    const { configDir, specs } = world();
    const spec = specFile(specs, 's.md', '# one\n');
    expect(ctl(configDir, 'dispatch', '--project', 'proj', '--spec', spec, '--task', 'T1').code).toBe(0);
    const r = ctl(configDir, 'dispatch', '--project', 'proj', '--spec', spec, '--task', 'T1');
    expect([r.code, r.firstLine]).toEqual([2, expect.stringMatching(/task T1 of proj already exists \(on l1, dispatched\)/)]);
  });
});

describe('gsync-ctl end to end', () => {
  it('dispatches several specs in one call, one line each, in the order given', () => {
    const w = world();
    const a = specFile(w.specs, 'a.md', '# first\n');
    const b = specFile(w.specs, 'b.md', '# second\n');
    const r = ctl(w.configDir, 'dispatch', '--project', 'proj', '--spec', a, '--spec', b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['dispatched S01 to l1 on branch task/proj-S01-l1', 'dispatched S02 to l1 on branch task/proj-S02-l1']);
  });

  it('a 10,000-character first line becomes a 72-character commit title; the agent still gets the whole spec', () => {
    const { repo, configDir, specs } = world();
    const long = `${'x'.repeat(10_000)}\nsecond line\n`;
    const d = ctl(configDir, 'dispatch', '--project', 'proj', '--spec', specFile(specs, 'long.md', long), '--json');
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ task_id: 'S01', node: 'l1', branch: 'task/proj-S01-l1' });
    const p = ctl(configDir, 'pull-bundles', '--project', 'proj', '--wait', '--interval', '0.1', '--json');
    expect(p.code).toBe(0);
    const report = JSON.parse(p.stdout);
    expect(report.tasks[0].outcome).toBe('merged');
    const subject = repo.git('log', '-1', '--format=%s', 'task/proj-S01-l1').trim();
    expect(subject).toBe(`task/S01: ${'x'.repeat(71)}…`);
    expect(JSON.parse(repo.git('show', 'main:argv.json'))).toEqual([long]);
    const s = ctl(configDir, 'status', '--project', 'proj');
    expect(s.stdout).toMatch(/S01\s+l1\s+merged\s+task\/proj-S01-l1/);
    // A second pull does nothing new and says so.
    const again = ctl(configDir, 'pull-bundles', '--project', 'proj');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing new to collect or merge/);
    expect(readdirSync(join(configDir, 'reports/proj')).filter((f) => f.endsWith('-merge_report.md'))).toHaveLength(2);
  });

  it('pull-bundles exits 4 while a task is still running, and 3 on a conflict', () => {
    const repo = gitRepo({ 'f.txt': 'a\n' });
    const configDir = tempDir('gsync-config-');
    writeConfig(
      configDir,
      { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }] },
      { proj: { repo_local: repo.dir } },
    );
    const specs = tempDir('gsync-specs-');
    const slow = specFile(specs, 'slow.md', '# slow\nsleep 3\nwrite f.txt slow\n');
    const fast = specFile(specs, 'fast.md', '# fast\nwrite f.txt fast\n');
    expect(ctl(configDir, 'dispatch', '--project', 'proj', '--spec', slow).code).toBe(0);
    expect(ctl(configDir, 'pull-bundles', '--project', 'proj').code).toBe(4);
    expect(ctl(configDir, 'dispatch', '--project', 'proj', '--spec', fast).code).toBe(0);
    const r = ctl(configDir, 'pull-bundles', '--project', 'proj', '--wait', '--interval', '0.2');
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/CONFLICT\s+S02 \(l1\) task\/proj-S02-l1: f\.txt/);
    writeFileSync(join(configDir, 'unused'), '');
  });
});

describe('gsync-ctl as other programs use it', () => {
  it('status --watch stops at --timeout', () => {
    const { configDir } = world();
    const started = Date.now();
    const r = spawnSync(process.execPath, [CTL, '--config-dir', configDir, '--timeout', '3', 'status', '--project', 'proj', '--offline', '--watch', '1'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stdout.match(/every 1 s, Ctrl-C stops/g)?.length).toBeGreaterThanOrEqual(2);
  });

  it('a reader that goes away (| head) ends it quietly with 141, no stack trace', () => {
    const { configDir } = world();
    const line = `${JSON.stringify(process.execPath)} ${JSON.stringify(CTL)} --config-dir ${JSON.stringify(configDir)} status --project proj --offline --watch 0.2 | head -c 1 >/dev/null; echo "rc=\${PIPESTATUS[0]}" >&2`;
    const r = spawnSync('bash', ['-c', line], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('rc=141\n');
  });

  it('a name with a bad character is refused with an example of its own kind', () => {
    const { configDir } = world();
    const r = ctl(configDir, 'node', 'add', 'bad/name', '--transport', 'local');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('choose a node like "gpu-1" or "vm.eu"');
  });
});
