import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toolPath } from '@gsync/controller';
import { AGENTS, NODE_TOOL, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, writeConfig, runCtl } from './helpers/world.js';

/**
 * Repositories, config dirs and nodes a task cannot work with are refused before anything
 * is sent, each with one clear line and its exit code; a node's gsync-node that is not
 * this build is replaced whatever version it claims.
 */
afterAll(cleanupTempDirs);

function config(repoDir: string, node: Record<string, unknown> = {}) {
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    { nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'noop.mjs')], ...node }] },
    { proj: { repo_local: repoDir } },
  );
  return configDir;
}

async function refused(repoDir: string, why: RegExp): Promise<void> {
  const configDir = config(repoDir);
  const r = await runCtl(configDir, ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'Task\n')]);
  expect(r.err).toMatch(why);
  expect(r.code).toBe(2);
  expect(
    r.err
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('  ')),
  ).toHaveLength(1);
}

describe('refused at dispatch, before anything is sent', () => {
  it('a sha256 repository', async () => {
    const dir = tempDir('gsync-sha256-');
    execFileSync('git', ['init', '-q', '-b', 'main', '--object-format=sha256', dir]);
    execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'init']);
    await refused(dir, /uses sha256 object ids/);
  });

  it('a shallow clone', async () => {
    const repo = gitRepo();
    repo.write('more.txt', 'more\n');
    repo.commitAll('more');
    const dir = join(tempDir('gsync-shallow-'), 'clone');
    execFileSync('git', ['clone', '-q', '--depth', '1', `file://${repo.dir}`, dir]);
    await refused(dir, /is a shallow clone/);
  });

  it('a repository that uses Git LFS', async () => {
    const repo = gitRepo({ 'README.md': 'x\n', 'assets/.gitattributes': '*.bin filter=lfs diff=lfs merge=lfs -text\n' });
    await refused(repo.dir, /uses Git LFS/);
  });

  it('a repo_local that is a folder inside a repository', async () => {
    const repo = gitRepo({ 'README.md': 'x\n', 'sub/file.txt': 'y\n' });
    await refused(join(repo.dir, 'sub'), /is a folder inside the repository/);
  });

  it('a store that cannot be opened is bad config (exit 2), not an internal error', async () => {
    const repo = gitRepo();
    const configDir = config(repo.dir);
    mkdirSync(join(configDir, 'gsync.db'));
    const r = await runCtl(configDir, ['status', '--project', 'proj']);
    expect(r.err).toMatch(/gsync\.db: cannot open the store \(SQLITE_CANTOPEN\)/);
    expect(r.code).toBe(2);
  });
});

describe('before a pull changes anything', () => {
  it('a reports path that is a file is exit 2, and nothing is collected or merged', async () => {
    const repo = gitRepo();
    const configDir = config(repo.dir, { agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] });
    writeFileSync(join(configDir, 'reports'), 'not a folder\n');
    expect((await runCtl(configDir, ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'A\n\nwrite a.txt a\n')])).code).toBe(
      0,
    );
    const before = repo.head('main');
    const r = await runCtl(configDir, ['pull-bundles', '--project', 'proj', '--wait', '--timeout', '30']);
    expect(r.err).toMatch(/reports\/proj: cannot write the run's report there \(ENOTDIR\)/);
    expect(r.code).toBe(2);
    expect(repo.head('main')).toBe(before);
  });
});

describe('what a node says about itself', () => {
  it('a login that prints a banner is named as such, not a JSON parse error', async () => {
    const repo = gitRepo();
    const bin = join(tempDir('gsync-bin-'), 'node-banner');
    writeFileSync(bin, `#!/bin/sh\necho 'Welcome to the GPU cluster!'\nexec '${process.execPath}' "$@"\n`);
    chmodSync(bin, 0o755);
    const configDir = config(repo.dir, { node_bin: bin });
    const r = await runCtl(configDir, ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'Task\n')]);
    expect(r.err).toMatch(/the login prints text before gsync-node's answer: Welcome to the GPU cluster!/);
    expect(r.code).toBe(5);
  });

  it('replaces a gsync-node that claims a newer version but is not this build', async () => {
    const repo = gitRepo();
    const configDir = config(repo.dir);
    const home = join(configDir, 'nodes/l1');
    const fake = join(home, toolPath({ work_root: '~/dispatch' } as never));
    mkdirSync(join(fake, '..'), { recursive: true });
    writeFileSync(
      fake,
      `console.log(JSON.stringify({ version: '99.0.0', protocol: 1, sha256: 'f'.repeat(64), node: process.version, git: 'git version 2.39.5' }));\n`,
    );
    const r = await runCtl(configDir, ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'Task\n')]);
    expect(r.code).toBe(0);
    expect(readFileSync(fake)).toEqual(readFileSync(NODE_TOOL));
  });
});
