import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';
import { ConfigError, UsageError } from '@gsync/core';
import { expandUserPath, getNode, getProject, loadConfig, resolveAgent } from '@gsync/controller';

afterAll(cleanupTempDirs);

const HOME = '/home/alice';

/** Section 5 of the seed spec (git-node-sync-spec-v1.md), verbatim, `[...]` and all. */
const SEED_NODES_JSON = `{
  "nodes": [...],
  "git_config": {
    "default_sync_mode": "git",
    "github_org": "oyster-labs",
    "branch_prefix": "task/",
    "auto_cleanup_branches": true,
    "conflict_handler": "codex"
  }
}
`;

const SEED_PROJECTS_JSON = `{
  "gem-platform": {
    "repo_url": "git@github.com:oyster-labs/gem-platform.git",
    "repo_local": "~/Downloads/gem-platform",
    "sync_mode": "git",
    "main_branch": "main"
  },
  "claw-nation": {
    "repo_url": "git@github.com:oyster-labs/claw-nation.git",
    "repo_local": "~/Downloads/claw-nation",
    "sync_mode": "git",
    "main_branch": "main"
  }
}
`;

const MINIMAL_PROJECTS = JSON.stringify({ proj: { repo_local: '/srv/proj' } });
const MINIMAL_NODES = JSON.stringify({ nodes: [{ name: 'n1', host: 'n1.lan' }] });

/** A config dir holding exactly these two file texts (undefined: the file is absent). */
function configDir(nodes: string | undefined, projects: string | undefined): string {
  const dir = tempDir('gsync-config-');
  mkdirSync(dir, { recursive: true });
  if (nodes !== undefined) writeFileSync(join(dir, 'nodes.json'), nodes);
  if (projects !== undefined) writeFileSync(join(dir, 'projects.json'), projects);
  return dir;
}

const load = (dir: string) => loadConfig({ dir, home: HOME });

/** The ConfigError loading `dir` fails with (the test fails if it loads, or fails otherwise). */
async function configError(dir: string): Promise<ConfigError> {
  const error = await load(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe("the seed's own example files", () => {
  it('load unchanged', async () => {
    const dir = configDir(SEED_NODES_JSON, SEED_PROJECTS_JSON);
    const config = await load(dir);
    expect(config.nodes).toEqual([]);
    expect(config.git).toEqual({
      default_sync_mode: 'git',
      github_org: 'oyster-labs',
      branch_prefix: 'task/',
      auto_cleanup_branches: true,
      conflict_handler: 'codex',
    });
    expect([...config.projects.keys()]).toEqual(['gem-platform', 'claw-nation']);
    expect(config.projects.get('gem-platform')).toMatchObject({
      name: 'gem-platform',
      repo_url: 'git@github.com:oyster-labs/gem-platform.git',
      repo_local: '/home/alice/Downloads/gem-platform',
      sync_mode: 'git',
      main_branch: 'main',
    });
    expect(config.projects.get('claw-nation')).toMatchObject({
      name: 'claw-nation',
      repo_url: 'git@github.com:oyster-labs/claw-nation.git',
      repo_local: '/home/alice/Downloads/claw-nation',
      sync_mode: 'git',
      main_branch: 'main',
    });
    expect(config.warnings).toEqual([]);
    expect(config).toMatchObject({
      dir,
      nodesFile: join(dir, 'nodes.json'),
      projectsFile: join(dir, 'projects.json'),
      agents: {},
      sshConfig: undefined,
      agentTimeoutSeconds: 3600,
      maxResultBytes: 2 * 1024 ** 3,
    });
  });

  it('give their projects by name and refuse others, naming the file and what it has', async () => {
    const config = await load(configDir(SEED_NODES_JSON, SEED_PROJECTS_JSON));
    expect(getProject(config, 'claw-nation').repo_local).toBe('/home/alice/Downloads/claw-nation');
    expect(() => getProject(config, 'gem')).toThrow(UsageError);
    expect(() => getProject(config, 'gem')).toThrow(`unknown project "gem" (projects in ${config.projectsFile}: gem-platform, claw-nation)`);
    expect(() => getNode(config, 'gpu-1')).toThrow(`unknown node "gpu-1" (nodes in ${config.nodesFile}: none)`);
  });
});

describe('a full nodes.json', () => {
  const nodes = `// gsync nodes, with comments and trailing commas
{
  "nodes": [
    { "name": "gpu-1", "host": "10.0.0.5", "port": 2222, "user": "ci", "identity_file": "~/.ssh/id_gsync",
      "known_hosts": "keys/known_hosts", "agent": "fast", "max_parallel": 2, "gpu": "A100", "ip": "10.0.0.5" },
    { "name": "local-1", "transport": "local", "agent": ["node", "agent.mjs", "{spec_file}"] },
    /* a node with only what it must have */
    { "name": "cpu-1", "host": "cpu-1.lan", },
  ],
  "agents": { "fast": ["fast-agent", "--prompt", "{spec}"] },
  "ssh_config": "~/.ssh/config",
  "agent_timeout_seconds": 600,
}`;
  const projects = `{
  "proj": { "repo_local": "repos/proj", "main_branch": "trunk", "agent": ["proj-agent", "{spec}"] },
  "other": { "repo_local": "/abs/other", "sync_mode": "scp" },
}`;

  it('reads every field, expands ~ and relative paths, and fills defaults', async () => {
    const dir = configDir(nodes, projects);
    const config = await load(dir);
    expect(config.nodes.map((n) => n.name)).toEqual(['gpu-1', 'local-1', 'cpu-1']);
    expect(config.nodes[0]).toMatchObject({
      name: 'gpu-1',
      transport: 'ssh',
      host: '10.0.0.5',
      port: 2222,
      user: 'ci',
      identity_file: '/home/alice/.ssh/id_gsync',
      known_hosts: join(dir, 'keys/known_hosts'),
      agent: 'fast',
      max_parallel: 2,
      work_root: '~/dispatch',
    });
    expect(config.nodes[1]).toMatchObject({ transport: 'local', home: join(dir, 'nodes/local-1') });
    expect(config.nodes[2]).toMatchObject({
      transport: 'ssh',
      host: 'cpu-1.lan',
      work_root: '~/dispatch',
      node_bin: 'node',
      max_parallel: 4,
      connect_timeout_seconds: 20,
    });
    expect(config.nodes[2]!.port).toBeUndefined();
    expect(config.sshConfig).toBe('/home/alice/.ssh/config');
    expect(config.agentTimeoutSeconds).toBe(600);
    expect(config.git).toMatchObject({ default_sync_mode: 'bundle', branch_prefix: 'task/', auto_cleanup_branches: false });
    expect(config.projects.get('proj')).toMatchObject({ repo_local: join(dir, 'repos/proj'), main_branch: 'trunk', sync_mode: 'bundle' });
    expect(config.projects.get('other')).toMatchObject({ repo_local: '/abs/other', main_branch: 'main', sync_mode: 'scp' });
    expect(config.warnings).toEqual([]);
  });

  it("picks the agent: the project's, else the node's (by profile name), else claude", async () => {
    const config = await load(configDir(nodes, projects));
    const [gpu, local, cpu] = config.nodes as [(typeof config.nodes)[0], (typeof config.nodes)[0], (typeof config.nodes)[0]];
    const proj = getProject(config, 'proj');
    const other = getProject(config, 'other');
    expect(resolveAgent(config, proj, gpu)).toEqual(['proj-agent', '{spec}']);
    expect(resolveAgent(config, other, gpu)).toEqual(['fast-agent', '--prompt', '{spec}']);
    expect(resolveAgent(config, other, local)).toEqual(['node', 'agent.mjs', '{spec_file}']);
    expect(resolveAgent(config, other, cpu)).toEqual(['claude', '-p', '{spec}', '--dangerously-skip-permissions']);
  });

  it('refuses an agent profile nobody defined, naming where it was asked for', async () => {
    const dir = configDir(JSON.stringify({ nodes: [{ name: 'n1', host: 'h', agent: 'nosuch' }] }), MINIMAL_PROJECTS);
    const config = await load(dir);
    const run = () => resolveAgent(config, getProject(config, 'proj'), getNode(config, 'n1'));
    expect(run).toThrow(UsageError);
    expect(run).toThrow(new RegExp(`${join(dir, 'nodes.json')}: node n1\\.agent: no agent profile "nosuch"`));
  });
});

describe('bad config names the file and the field', () => {
  const nodesCases: [string, unknown, string, RegExp][] = [
    ['a node without a name', { nodes: [{ host: 'h' }] }, 'nodes[0].name', /./],
    ['a port as a string', { nodes: [{ name: 'a', host: 'h', port: '22' }] }, 'nodes[0].port', /number/],
    ['a port out of range', { nodes: [{ name: 'a', host: 'h', port: 70000 }] }, 'nodes[0].port', /./],
    [
      'a zero max_parallel',
      {
        nodes: [
          { name: 'a', host: 'h' },
          { name: 'b', host: 'h', max_parallel: 0 },
        ],
      },
      'nodes[1].max_parallel',
      /./,
    ],
    ['a path-like node name', { nodes: [{ name: '../../x', host: 'h' }] }, 'nodes[0].name', /letters, digits/],
    ['a node name with a substitution', { nodes: [{ name: '$(id)', host: 'h' }] }, 'nodes[0].name', /letters, digits/],
    ['an unknown transport', { nodes: [{ name: 'a', transport: 'telnet', host: 'h' }] }, 'nodes[0].transport', /./],
    ['nodes not a list', { nodes: { a: {} } }, 'nodes', /./],
    ['no nodes at all', {}, 'nodes', /./],
    ['an agent as an empty list', { nodes: [{ name: 'a', host: 'h', agent: [] }] }, 'nodes[0].agent', /./],
    ['a bad branch prefix', { nodes: [], git_config: { branch_prefix: 'task' } }, 'git_config.branch_prefix', /ending in "\/"/],
    ['an unknown sync mode', { nodes: [], git_config: { default_sync_mode: 'rsync' } }, 'git_config.default_sync_mode', /./],
    ['an agent profile that is not a list', { nodes: [], agents: { fast: 'fast-agent {spec}' } }, 'agents.fast', /./],
    [
      'a duplicate node name',
      {
        nodes: [
          { name: 'a', host: 'h' },
          { name: 'b', host: 'h' },
          { name: 'a', host: 'h2' },
        ],
      },
      'nodes[2].name',
      /node "a" is defined twice/,
    ],
    ['an ssh node without a host', { nodes: [{ name: 'a' }] }, 'nodes[0].host', /is required for an ssh node/],
  ];
  for (const [what, nodes, field, reason] of nodesCases) {
    it(`nodes.json: ${what} → ${field}`, async () => {
      const dir = configDir(JSON.stringify(nodes), MINIMAL_PROJECTS);
      const error = await configError(dir);
      expect(error.file).toBe(join(dir, 'nodes.json'));
      expect(error.field).toBe(field);
      expect(error.reason).toMatch(reason);
      expect(error.message).toBe(`${join(dir, 'nodes.json')}: ${field}: ${error.reason}`);
    });
  }

  const projectCases: [string, unknown, string, RegExp][] = [
    ['a project without repo_local', { proj: { repo_url: 'git@x:y.git' } }, 'proj.repo_local', /./],
    ['repo_local as a number', { proj: { repo_local: 7 } }, 'proj.repo_local', /string/],
    ['a full ref as main_branch', { proj: { repo_local: '/r', main_branch: 'refs/heads/main' } }, 'proj.main_branch', /branch name/],
    ['an unknown sync mode', { proj: { repo_local: '/r', sync_mode: 'ftp' } }, 'proj.sync_mode', /./],
    ['a project that is not an object', { proj: 'repos/proj' }, 'proj', /./],
    ['a path-like project name', { '../../x': { repo_local: '/r' } }, '../../x', /./],
    ['a project name with a space', { 'my proj': { repo_local: '/r' } }, 'my proj', /./],
  ];
  for (const [what, projects, field, reason] of projectCases) {
    it(`projects.json: ${what} → ${field}`, async () => {
      const dir = configDir(MINIMAL_NODES, JSON.stringify(projects));
      const error = await configError(dir);
      expect(error.file).toBe(join(dir, 'projects.json'));
      expect(error.field).toBe(field);
      expect(error.reason).toMatch(reason);
    });
  }

  // BUG: zod 4 reports a refined record key as "Invalid key in record" and keeps the refine's
  // message only in a nested issue, so the rule config.ts wrote for names never reaches the user.
  it('a bad project name says what a name may hold', async () => {
    const error = await configError(configDir(MINIMAL_NODES, JSON.stringify({ '../../x': { repo_local: '/r' } })));
    expect(error.reason).toMatch(/letters, digits/);
  });

  it('a missing nodes.json says so, with a hint', async () => {
    const dir = configDir(undefined, MINIMAL_PROJECTS);
    const error = await configError(dir);
    expect([error.file, error.field, error.reason]).toEqual([join(dir, 'nodes.json'), '', 'file not found']);
    expect(error.hint).toMatch(/--config-dir/);
  });

  it('a missing projects.json says so', async () => {
    const dir = configDir(MINIMAL_NODES, undefined);
    const error = await configError(dir);
    expect([error.file, error.reason]).toEqual([join(dir, 'projects.json'), 'file not found']);
  });

  it('broken JSON gives the line and column', async () => {
    const dir = configDir('{\n  "nodes": [\n    { "name": "a" "host": "h" }\n  ]\n}\n', MINIMAL_PROJECTS);
    const error = await configError(dir);
    expect(error.file).toBe(join(dir, 'nodes.json'));
    expect(error.reason).toMatch(/^invalid JSON at line 3, column 19: /);
  });

  it('an ellipsis is forgiven only as the seed writes it, not as any stray text', async () => {
    const dir = configDir('{ "nodes": [], "git_config": { "branch_prefix": oops } }', MINIMAL_PROJECTS);
    expect((await configError(dir)).reason).toMatch(/^invalid JSON at line 1/);
  });
});

describe('unknown fields', () => {
  it('warn, naming the file and the field, and are otherwise ignored', async () => {
    const dir = configDir(
      JSON.stringify({ nodes: [{ name: 'a', host: 'h', hostname: 'typo' }], extra_top: 1 }),
      JSON.stringify({ proj: { repo_local: '/r', main_brnch: 'dev' } }),
    );
    const config = await load(dir);
    expect(config.warnings).toEqual([
      `${join(dir, 'nodes.json')}: nodes[0].hostname: unknown field, ignored`,
      `${join(dir, 'nodes.json')}: extra_top: unknown field, ignored`,
      `${join(dir, 'projects.json')}: proj.main_brnch: unknown field, ignored`,
    ]);
    expect(config.nodes[0]).not.toHaveProperty('hostname');
    expect(config.projects.get('proj')!.main_branch).toBe('main');
  });

  it('fields of the older dispatch tooling are accepted quietly', async () => {
    const legacy = { name: 'a', host: 'h', git_mode: 'ssh', github_token_env: 'GH', ip: '1.2.3.4', description: 'box', gpu: 'A100', tags: ['x'] };
    const config = await load(configDir(JSON.stringify({ nodes: [legacy] }), MINIMAL_PROJECTS));
    expect(config.warnings).toEqual([]);
  });
});

describe('expandUserPath', () => {
  const cases: [string, string][] = [
    ['~', '/home/alice'],
    ['~/keys/id', '/home/alice/keys/id'],
    ['/etc/ssh/key', '/etc/ssh/key'],
    ['keys/id', '/cfg/keys/id'],
    ['../shared/id', '/shared/id'],
    ['~bob/id', '/cfg/~bob/id'],
  ];
  for (const [path, expanded] of cases) {
    it(`${path} → ${expanded}`, () => {
      expect(expandUserPath(path, '/home/alice', '/cfg')).toBe(expanded);
    });
  }
});

describe('the shared remote (sync_mode "git")', () => {
  const nodes = (git: object = {}) => JSON.stringify({ nodes: [], git_config: git });
  it('takes repo_url as given, or builds it from github_org', async () => {
    const config = await load(
      configDir(
        nodes({ github_org: 'acme' }),
        JSON.stringify({ a: { repo_local: '/r/a', sync_mode: 'git' }, b: { repo_local: '/r/b', sync_mode: 'git', repo_url: 'ssh://git@host:2222/b.git' } }),
      ),
    );
    expect(config.projects.get('a')!.repo_url).toBe('git@github.com:acme/a.git');
    expect(config.projects.get('b')!.repo_url).toBe('ssh://git@host:2222/b.git');
  });

  it('refuses a project in git mode with no remote, and a URL that carries credentials', async () => {
    const none = await configError(configDir(nodes(), JSON.stringify({ a: { repo_local: '/r/a', sync_mode: 'git' } })));
    expect(none.field).toBe('a.repo_url');
    expect(none.reason).toContain('sync_mode "git" needs the shared remote');
    for (const url of ['https://user:secret@example.com/a.git', 'https://ghp_token@github.com/acme/a.git', 'http://x:y@host/a.git']) {
      const e = await configError(configDir(nodes(), JSON.stringify({ a: { repo_local: '/r/a', sync_mode: 'git', repo_url: url } })));
      expect(e.field).toBe('a.repo_url');
      expect(e.reason).toContain('must not carry credentials');
      expect(e.message).not.toContain('secret');
    }
  });
});
