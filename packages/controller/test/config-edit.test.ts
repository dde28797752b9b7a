import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, main } from '@gsync/controller';
import { NODE_TOOL, capture, cleanupTempDirs, gitRepo, tempDir } from '../../../test/helpers/git-repo.js';

/** init, node add and project add as a user runs them: what they write, what they refuse, and that the result loads. */
afterAll(cleanupTempDirs);

const HOME = '/home/alice';

async function ctl(configDir: string, argv: string[], cwd = '/srv') {
  const [out, err] = [capture(), capture()];
  const io = { env: { HOME, NO_COLOR: '1' }, stdout: out.stream, stderr: err.stream, nodeToolPath: NODE_TOOL, pid: process.pid, cwd };
  const code = await main(['--config-dir', configDir, ...argv], io);
  return { code, out: out.text(), err: err.text(), firstLine: err.text().split('\n')[0] ?? '' };
}

function configDir(nodes: string, projects = '{}\n'): string {
  const dir = tempDir('gsync-config-');
  writeFileSync(join(dir, 'nodes.json'), nodes);
  writeFileSync(join(dir, 'projects.json'), projects);
  return dir;
}

const read = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8');
const load = (dir: string) => loadConfig({ dir, home: HOME });
const mode = (path: string) => statSync(path).mode & 0o777;

describe('gsync-ctl init', () => {
  it('creates the dir (0700) with files (0600) that load as they are and explain every field in comments', async () => {
    const dir = join(tempDir('gsync-home-'), 'fresh', '.gsync');
    const r = await ctl(dir, ['init']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`created ${join(dir, 'nodes.json')}\ncreated ${join(dir, 'projects.json')}\n`);
    expect(mode(dir)).toBe(0o700);
    expect([mode(join(dir, 'nodes.json')), mode(join(dir, 'projects.json'))]).toEqual([0o600, 0o600]);
    expect(readdirSync(dir).sort()).toEqual(['nodes.json', 'projects.json']);
    const config = await load(dir);
    expect([config.nodes, config.projects.size, config.warnings]).toEqual([[], 0, []]);
    for (const field of ['identity_file', 'work_root', 'max_parallel', 'stale_after_seconds', 'alert_command', 'deny_patterns']) {
      expect(read(dir, 'nodes.json')).toMatch(new RegExp(`^\\s*//.*"${field}"`, 'm'));
    }
    for (const field of ['repo_local', 'main_branch', 'sync_mode', 'repo_url', 'verify_command', 'verify_isolation', 'conflict_handler']) {
      expect(read(dir, 'projects.json')).toMatch(new RegExp(`^\\s*//.*"${field}"`, 'm'));
    }
  });

  it('its commented examples, uncommented, load without a warning: they name real fields with valid values', async () => {
    const dir = tempDir('gsync-config-');
    expect((await ctl(dir, ['init'])).code).toBe(0);
    // An example line is "// " followed by JSON; prose follows "// " with a letter.
    const uncomment = (text: string) => text.replace(/^(\s*)\/\/ (\s*["{}[\]].*)$/gm, '$1$2');
    writeFileSync(join(dir, 'nodes.json'), uncomment(read(dir, 'nodes.json')));
    writeFileSync(join(dir, 'projects.json'), uncomment(read(dir, 'projects.json')));
    const config = await load(dir);
    expect(config.warnings).toEqual([]);
    expect(config.nodes.map((n) => [n.name, n.transport, n.max_parallel])).toEqual([
      ['gpu-1', 'ssh', 4],
      ['scratch', 'local', 4],
    ]);
    expect(config.projects.get('web')).toMatchObject({ repo_local: join(HOME, 'src/web'), verify_command: ['pnpm', 'test'], verify_isolation: 'sandbox' });
    expect(config.git).toMatchObject({ default_sync_mode: 'bundle', branch_prefix: 'task/' });
  });

  it('never overwrites: an existing file is kept byte for byte and said so; run twice, it changes nothing', async () => {
    const dir = tempDir('gsync-config-');
    const mine = '{ "nodes": [{ "name": "mine", "host": "h" }] } // hand-written\n';
    writeFileSync(join(dir, 'nodes.json'), mine);
    chmodSync(dir, 0o755);
    const first = await ctl(dir, ['init', '--json']);
    expect(first.code, first.err).toBe(0);
    expect(JSON.parse(first.out)).toEqual({ schema_version: 1, dir, created: [join(dir, 'projects.json')], kept: [join(dir, 'nodes.json')] });
    expect(read(dir, 'nodes.json')).toBe(mine);
    expect(mode(dir)).toBe(0o755);
    const projects = read(dir, 'projects.json');
    const again = await ctl(dir, ['init']);
    expect(again.code).toBe(0);
    expect(again.out).toContain(`kept ${join(dir, 'nodes.json')}: it exists already\nkept ${join(dir, 'projects.json')}: it exists already\n`);
    expect([read(dir, 'nodes.json'), read(dir, 'projects.json')]).toEqual([mine, projects]);
    expect(readdirSync(dir).sort()).toEqual(['nodes.json', 'projects.json']);
  });

  it('node add and project add then fill the fresh files, after their comments', async () => {
    const dir = tempDir('gsync-config-');
    await ctl(dir, ['init']);
    expect((await ctl(dir, ['node', 'add', 'gpu-1', '--host', '10.0.0.7'])).code).toBe(0);
    expect((await ctl(dir, ['node', 'add', 'gpu-2', '--host', '10.0.0.8', '--max-parallel', '2'])).code).toBe(0);
    expect((await ctl(dir, ['project', 'add', 'web', '--repo', 'src/web'])).code).toBe(0);
    expect(read(dir, 'nodes.json')).toContain(
      '    // { "name": "scratch", "transport": "local", "home": "nodes/scratch" },\n' +
        '    {\n      "name": "gpu-1",\n      "host": "10.0.0.7"\n    },\n' +
        '    {\n      "name": "gpu-2",\n      "host": "10.0.0.8",\n      "max_parallel": 2\n    }\n  ],\n',
    );
    expect(read(dir, 'projects.json')).toMatch(/\n {2}\/\/ },\n {2}"web": {\n {4}"repo_local": "\/srv\/src\/web"\n {2}}\n}\n$/);
    const config = await load(dir);
    expect(config.nodes.map((n) => [n.name, n.host, n.max_parallel])).toEqual([
      ['gpu-1', '10.0.0.7', 4],
      ['gpu-2', '10.0.0.8', 2],
    ]);
    expect(config.projects.get('web')?.repo_local).toBe('/srv/src/web');
  });
});

const COMMENTED = `{
  // the boxes in the rack
  "nodes": [
    { "name": "a", "host": "a.lan" }, // the first box
  ],
}
`;

describe('gsync-ctl node add', () => {
  it('keeps every comment and a trailing comma, and writes the new node like the one before it', async () => {
    const dir = configDir(COMMENTED);
    const r = await ctl(dir, ['node', 'add', 'b', '--host', 'b.lan', '--port', '2222', '--user', 'bob', '--identity-file', 'keys/b', '--work-root', '~/gs']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`added node b to ${join(dir, 'nodes.json')}\n`);
    expect(read(dir, 'nodes.json')).toBe(`{
  // the boxes in the rack
  "nodes": [
    { "name": "a", "host": "a.lan" }, // the first box
    { "name": "b", "host": "b.lan", "port": 2222, "user": "bob", "identity_file": "/srv/keys/b", "work_root": "~/gs" },
  ],
}
`);
    const node = (await load(dir)).nodes[1];
    expect(node).toMatchObject({ name: 'b', host: 'b.lan', port: 2222, user: 'bob', identity_file: '/srv/keys/b', work_root: '~/gs', max_parallel: 4 });
  });

  it('without a trailing comma it adds none, and a comment on the last entry stays on its line', async () => {
    const dir = configDir('{\n  "nodes": [\n    {\n      "name": "a",\n      "host": "a.lan"\n    } // the first box\n  ]\n}\n');
    expect((await ctl(dir, ['node', 'add', 'b', '--host', 'b.lan'])).code).toBe(0);
    expect(read(dir, 'nodes.json')).toBe(
      '{\n  "nodes": [\n    {\n      "name": "a",\n      "host": "a.lan"\n    }, // the first box\n    {\n      "name": "b",\n      "host": "b.lan"\n    }\n  ]\n}\n',
    );
  });

  it("keeps the file's tabs and CRLF line ends, and fills the seed's elided [...]", async () => {
    const dir = configDir('{\r\n\t"nodes": [...]\r\n}\r\n');
    expect((await ctl(dir, ['node', 'add', 'b', '--host', 'b.lan'])).code).toBe(0);
    expect(read(dir, 'nodes.json')).toBe('{\r\n\t"nodes": [\r\n\t\t{\r\n\t\t\t"name": "b",\r\n\t\t\t"host": "b.lan"\r\n\t\t}\r\n\t]\r\n}\r\n');
    expect((await load(dir)).nodes.map((n) => n.name)).toEqual(['b']);
  });

  it('refuses a name that is there (exit 2, file untouched); --force replaces that entry alone', async () => {
    const dir = configDir(COMMENTED);
    const r = await ctl(dir, ['node', 'add', 'a', '--host', 'new.lan']);
    expect([r.code, r.firstLine]).toEqual([2, `gsync-ctl: node "a" is in ${join(dir, 'nodes.json')} already`]);
    expect(r.err).toContain('--force replaces it');
    expect(read(dir, 'nodes.json')).toBe(COMMENTED);
    const forced = await ctl(dir, ['node', 'add', 'a', '--host', 'new.lan', '--max-parallel', '8', '--force', '--json']);
    expect(forced.code, forced.err).toBe(0);
    expect(JSON.parse(forced.out)).toEqual({
      schema_version: 1,
      file: join(dir, 'nodes.json'),
      node: 'a',
      action: 'replaced',
      entry: { name: 'a', host: 'new.lan', max_parallel: 8 },
    });
    expect(read(dir, 'nodes.json')).toBe(COMMENTED.replace('{ "name": "a", "host": "a.lan" }', '{ "name": "a", "host": "new.lan", "max_parallel": 8 }'));
    expect((await load(dir)).nodes).toMatchObject([{ name: 'a', host: 'new.lan', max_parallel: 8 }]);
  });

  const refusals: [string, string[], string][] = [
    ['a port out of range', ['b', '--host', 'h', '--port', '70000'], 'gsync-ctl: --port 70000: too big: expected number to be <=65535'],
    ['a port that is not a number', ['b', '--host', 'h', '--port', 'ssh'], 'gsync-ctl: --port is not a number'],
    ['max-parallel 0', ['b', '--host', 'h', '--max-parallel', '0'], 'gsync-ctl: --max-parallel 0: too small: expected number to be >0'],
    ['an unknown transport', ['b', '--host', 'h', '--transport', 'ftp'], 'gsync-ctl: --transport "ftp": invalid option: expected one of "ssh"|"local"'],
    ['an ssh node without a host', ['b'], 'gsync-ctl: --host is needed for an ssh node'],
    [
      'a name like a path',
      ['../b', '--host', 'h'],
      'gsync-ctl: node "../b" may hold only letters, digits, ".", "_" and "-", and must start and end with a letter or digit',
    ],
    [
      'an agent profile that does not exist',
      ['b', '--host', 'h', '--agent', 'gpt'],
      'gsync-ctl: --agent: no agent profile "gpt" (profiles: claude, codex; add it to "agents" in',
    ],
    ['an empty host', ['b', '--host', ''], 'gsync-ctl: --host "": too small: expected string to have >=1 characters'],
  ];
  for (const [what, argv, line] of refusals) {
    it(`refuses ${what}: exit 2, one line naming the flag, the file byte for byte as it was`, async () => {
      const dir = configDir(COMMENTED);
      chmodSync(join(dir, 'nodes.json'), 0o640);
      const r = await ctl(dir, ['node', 'add', ...argv]);
      expect(r.code).toBe(2);
      expect(r.firstLine.startsWith(line), r.firstLine).toBe(true);
      expect(read(dir, 'nodes.json')).toBe(COMMENTED);
      expect(mode(join(dir, 'nodes.json'))).toBe(0o640);
      expect(readdirSync(dir).sort()).toEqual(['nodes.json', 'projects.json']);
    });
  }

  it('keeps the mode of the file, and writes a symlinked file where the link points', async () => {
    const dir = tempDir('gsync-config-');
    const dotfiles = tempDir('gsync-dotfiles-');
    writeFileSync(join(dotfiles, 'nodes.json'), COMMENTED);
    chmodSync(join(dotfiles, 'nodes.json'), 0o640);
    symlinkSync(join(dotfiles, 'nodes.json'), join(dir, 'nodes.json'));
    writeFileSync(join(dir, 'projects.json'), '{}');
    expect((await ctl(dir, ['node', 'add', 'b', '--host', 'b.lan'])).code).toBe(0);
    expect(read(dotfiles, 'nodes.json')).toContain('{ "name": "b", "host": "b.lan" },');
    expect(mode(join(dotfiles, 'nodes.json'))).toBe(0o640);
    expect(readdirSync(dotfiles)).toEqual(['nodes.json']);
  });

  it('refuses to edit a config that does not load, naming what is wrong, and writes nothing', async () => {
    const broken = '{ "nodes": [{ "name": "a", "host": "a", "port": "22" }] }';
    const dir = configDir(broken);
    const r = await ctl(dir, ['node', 'add', 'b', '--host', 'b.lan']);
    expect([r.code, r.firstLine]).toEqual([2, expect.stringMatching(/nodes\.json: nodes\[0\]\.port: .*number/)]);
    expect(read(dir, 'nodes.json')).toBe(broken);
    const none = tempDir('gsync-config-');
    const missing = await ctl(none, ['node', 'add', 'b', '--host', 'b.lan']);
    expect([missing.code, missing.firstLine]).toEqual([2, `gsync-ctl: ${join(none, 'nodes.json')}: file not found`]);
    expect(missing.err).toContain('gsync-ctl init');
    expect(readdirSync(none)).toEqual([]);
  });
});

describe('gsync-ctl project add', () => {
  const PROJECTS = '// where the code lives\n{\n  "api": { "repo_local": "/srv/api" }, // the old one\n}\n';

  it('keeps the comments and the trailing comma, makes a relative --repo absolute, and the result loads', async () => {
    const dir = configDir('{ "nodes": [] }', PROJECTS);
    const r = await ctl(dir, ['project', 'add', 'web', '--repo', '../code/web', '--main-branch', 'trunk', '--sync-mode', 'bundle'], '/srv/work');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`added project web to ${join(dir, 'projects.json')}\n`);
    expect(read(dir, 'projects.json')).toBe(
      '// where the code lives\n{\n  "api": { "repo_local": "/srv/api" }, // the old one\n  "web": { "repo_local": "/srv/code/web", "sync_mode": "bundle", "main_branch": "trunk" },\n}\n',
    );
    expect((await load(dir)).projects.get('web')).toMatchObject({ repo_local: '/srv/code/web', main_branch: 'trunk', sync_mode: 'bundle' });
  });

  it('refuses a name that is there and bad values (exit 2, file untouched); --force replaces', async () => {
    const dir = configDir('{ "nodes": [] }', PROJECTS);
    const cases: [string[], string][] = [
      [['api', '--repo', '/x'], `gsync-ctl: project "api" is in ${join(dir, 'projects.json')} already`],
      [['web', '--repo', '/x', '--sync-mode', 'rsync'], 'gsync-ctl: --sync-mode "rsync": invalid option: expected one of "bundle"|"git"|"scp"'],
      [['web', '--repo', '/x', '--main-branch', 'refs/heads/main'], 'gsync-ctl: --main-branch "refs/heads/main": must be a branch name like "main"'],
      [['web', '--repo', ''], 'gsync-ctl: --repo "": too small: expected string to have >=1 characters'],
      [['web-', '--repo', '/x'], 'gsync-ctl: project "web-" may hold only letters'],
      [['web'], 'gsync-ctl: missing --repo'],
      [['--repo', '/x'], 'gsync-ctl: missing NAME: gsync-ctl project add NAME'],
    ];
    for (const [argv, line] of cases) {
      const r = await ctl(dir, ['project', 'add', ...argv]);
      expect([r.code, r.firstLine.startsWith(line)], r.firstLine).toEqual([2, true]);
      expect(read(dir, 'projects.json')).toBe(PROJECTS);
    }
    const forced = await ctl(dir, ['project', 'add', 'api', '--repo', '/srv/api2', '--force']);
    expect([forced.code, forced.out]).toEqual([0, `replaced project api in ${join(dir, 'projects.json')}\n`]);
    expect(read(dir, 'projects.json')).toBe(PROJECTS.replace('"/srv/api"', '"/srv/api2"'));
  });

  it('writes nothing when the whole config would not load with it (git mode with no remote to use)', async () => {
    const dir = configDir('{ "nodes": [] }', PROJECTS);
    const r = await ctl(dir, ['project', 'add', 'web', '--repo', '/srv/web', '--sync-mode', 'git']);
    expect(r.code).toBe(2);
    expect(r.firstLine).toBe(
      `gsync-ctl: ${join(dir, 'projects.json')}: web.repo_url: sync_mode "git" needs the shared remote: set repo_url, or git_config.github_org`,
    );
    expect(r.err).toContain('nothing was written');
    expect(read(dir, 'projects.json')).toBe(PROJECTS);
    expect(readdirSync(dir).sort()).toEqual(['nodes.json', 'projects.json']);
    const withUrl = await ctl(dir, ['project', 'add', 'web', '--repo', '/srv/web', '--sync-mode', 'git', '--repo-url', 'git@example.com:me/web.git', '--json']);
    expect(withUrl.code, withUrl.err).toBe(0);
    expect(JSON.parse(withUrl.out)).toMatchObject({ project: 'web', action: 'added', entry: { repo_url: 'git@example.com:me/web.git', sync_mode: 'git' } });
  });

  it('adds a project whose repository is not there yet, and says so on stderr (once it is a git repository, not)', async () => {
    const dir = configDir('{ "nodes": [] }', PROJECTS);
    const missing = await ctl(dir, ['project', 'add', 'web', '--repo', '/srv/web']);
    expect(missing.code).toBe(0);
    expect(missing.err).toBe("warning: /srv/web does not exist yet (or is not a folder): dispatch needs the project's git repository there\n");
    const plain = tempDir('gsync-plain-');
    const notGit = await ctl(dir, ['project', 'add', 'web2', '--repo', plain, '--json']);
    expect(notGit.code).toBe(0);
    expect(JSON.parse(notGit.out).warnings).toEqual([`${plain} is not a git repository yet: dispatch needs one there (git init or clone it)`]);
    const repo = gitRepo();
    const ok = await ctl(dir, ['project', 'add', 'web3', '--repo', repo.dir]);
    expect([ok.code, ok.err]).toEqual([0, '']);
  });

  it('shows examples in its help', async () => {
    const dir = tempDir('gsync-config-');
    mkdirSync(dir, { recursive: true });
    for (const command of [['init'], ['node', 'add'], ['project', 'add']]) {
      const r = await ctl(dir, [...command, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`Examples:\\n {2}gsync-ctl ${command.join(' ')}`));
    }
  });
});
