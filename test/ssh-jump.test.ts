import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshError } from '@gsync/core';
import { dispatch, pullBundles } from '@gsync/controller';
import { ROOT, cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * SSH as OpenSSH does it, against real sshd on loopback: `inner` takes connections only
 * from the jump host's user and `deep` only from inner's, so each is reached through its
 * jump hosts or not at all.
 */
let world: SshWorld;
let extra: string;
const PASSPHRASE = 'correct horse gsjump';
let encryptedKey: string;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'jump' }, { name: 'inner', behind: 'jump' }, { name: 'deep', behind: 'inner' }], 'gsjump');
  const dir = tempDir('gsync-jump-keys-');
  encryptedKey = join(dir, 'encrypted_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'gsjump-encrypted', '-f', encryptedKey]);
  appendFileSync(join(world.node('inner').home, '.ssh/authorized_keys'), readFileSync(`${encryptedKey}.pub`));
  extra = tempDir('gsync-jump-');
});

afterAll(async () => {
  await world?.stop();
  cleanupTempDirs();
});

/** An ssh config entry for a node of the world, reached as `lines` say. */
function entry(alias: string, name: string, lines: string[]): string {
  const n = world.node(name);
  return [`Host ${alias}`, '  HostName 127.0.0.1', `  Port ${n.port}`, `  User ${n.user}`, '  IdentitiesOnly yes', ...lines.map((l) => `  ${l}`), ''].join(
    '\n',
  );
}

const key = () => `IdentityFile ${world.clientKey}`;
const known = () => `UserKnownHostsFile ${world.knownHosts}`;

/**
 * A config dir whose ssh config holds `blocks` ahead of the world's own entries (the first
 * value ssh finds wins). Each test has its own project, so task dirs on the shared nodes never collide.
 */
function setup(project: string, repo: GitRepo, nodes: object[], blocks: string[] = []) {
  const configDir = tempDir('gsync-config-');
  const sshConfig = join(configDir, 'ssh_config');
  writeFileSync(sshConfig, [...blocks, readFileSync(world.sshConfig, 'utf8')].join('\n'));
  // No retries: every failure here is meant, and says so at once.
  writeConfig(
    configDir,
    { ssh_config: sshConfig, transfer_retries: 0, nodes },
    { [project]: { repo_local: repo.dir, main_branch: 'main', sync_mode: 'bundle' } },
  );
  return { ctx: testContext(configDir), specs: tempDir('gsync-specs-'), configDir };
}

const noop = () => ['node', join(world.agents, 'noop.mjs')];
const edit = () => ['node', join(world.agents, 'edit.mjs'), '{spec_file}'];

/** The processes a node user runs (its sshd sessions among them). */
function processesOf(user: string): string {
  try {
    return execFileSync('pgrep', ['-u', user, '-l'], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

/** Waits until the jump host's user runs nothing: every session through it was closed. */
async function jumpSessionsGone(user: string): Promise<string> {
  const until = Date.now() + 10_000;
  while (processesOf(user) !== '' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  return processesOf(user);
}

async function failure(promise: Promise<unknown>): Promise<SshError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof SshError)) throw error;
  return error as SshError;
}

describe('ProxyJump', () => {
  it('the node behind the jump host refuses a direct connection; through ProxyJump a task goes out, runs, merges, and no session is left on the jump host', async () => {
    const repo = gitRepo();
    const inner = world.node('inner');
    const { ctx, specs } = setup('jumped', repo, [
      { name: 'inner', host: inner.alias, agent: edit() },
      { name: 'direct', host: '127.0.0.1', port: inner.port, user: inner.user, identity_file: world.clientKey, known_hosts: world.knownHosts },
    ]);
    const spec = specFile(specs, 'a.md', '# behind\nwrite behind.txt through the jump host\n');
    const direct = await failure(dispatch(ctx, { project: 'jumped', spec, node: 'direct' }));
    expect(direct.message).toMatch(new RegExp(`^node direct: cannot connect to 127\\.0\\.0\\.1:${inner.port}: `));

    const sent = await dispatch(ctx, { project: 'jumped', spec, node: 'inner' });
    expect(sent.node).toBe('inner');
    expect(existsSync(join(inner.home, 'dispatch/jumped/tasks', sent.task_id, 'task.json'))).toBe(true);
    const report = await pullBundles(ctx, { project: 'jumped', wait: true, interval: 0.2, timeout: 60 });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([[sent.task_id, 'merged']]);
    expect(repo.git('show', 'main:behind.txt')).toBe('through the jump host\n');
    expect(await jumpSessionsGone(world.node('jump').user)).toBe('');
  });

  it('goes through two jump hosts, the second written user@host:port, and closes both', async () => {
    const repo = gitRepo();
    const [jump, inner, deep] = [world.node('jump'), world.node('inner'), world.node('deep')];
    const { ctx, specs } = setup(
      'chain',
      repo,
      [
        { name: 'deep', host: 'deep-chain', agent: edit() },
        // deep-alias says ProxyJump inner-alias, whose own entry says ProxyJump jump-alias: a chain through the config.
        { name: 'deep2', host: deep.alias, agent: noop() },
      ],
      [
        entry('deep-chain', 'deep', [key(), known(), `ProxyJump ${jump.alias},${inner.user}@127.0.0.1:${inner.port}`]),
        ['Host 127.0.0.1', `  ${key()}`, `  ${known()}`, '  IdentitiesOnly yes', ''].join('\n'),
      ],
    );
    const sent = await dispatch(ctx, { project: 'chain', spec: specFile(specs, 'a.md', '# deep\nwrite deep.txt two hops down\n'), node: 'deep' });
    expect(existsSync(join(deep.home, 'dispatch/chain/tasks', sent.task_id, 'task.json'))).toBe(true);
    const report = await pullBundles(ctx, { project: 'chain', wait: true, interval: 0.2, timeout: 60 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(['merged']);
    expect(repo.git('show', 'main:deep.txt')).toBe('two hops down\n');
    expect((await dispatch(ctx, { project: 'chain', spec: specFile(specs, 'b.md', '# again\n'), node: 'deep2' })).node).toBe('deep2');
    expect(await jumpSessionsGone(jump.user)).toBe('');
    expect(await jumpSessionsGone(inner.user)).toBe('');
  });

  it('refuses a jump host whose host key does not match, names it, and leaves nothing open', async () => {
    const repo = gitRepo();
    const jump = world.node('jump');
    const wrong = join(extra, 'known_hosts_wrong_jump');
    writeFileSync(wrong, `[127.0.0.1]:${jump.port} ${world.node('deep').hostKeyPub}\n`);
    const { ctx, specs } = setup(
      'badjump',
      repo,
      [{ name: 'inner', host: 'inner-badjump', agent: noop() }],
      [entry('inner-badjump', 'inner', [key(), known(), 'ProxyJump badjump']), entry('badjump', 'jump', [key(), `UserKnownHostsFile ${wrong}`])],
    );
    const error = await failure(dispatch(ctx, { project: 'badjump', spec: specFile(specs, 'x.md', '# x\n'), node: 'inner' }));
    expect(error.kind).toBe('hostkey');
    expect(error.message).toMatch(new RegExp(`^node inner: jump host badjump: HOST KEY CHANGED for \\[127\\.0\\.0\\.1\\]:${jump.port}: it now offers SHA256:`));
    expect(existsSync(join(world.node('inner').home, 'dispatch/badjump'))).toBe(false);
    expect(await jumpSessionsGone(jump.user)).toBe('');
  });

  it('says in one line which jump host cannot be reached, and which cannot reach the next', async () => {
    const repo = gitRepo();
    const jump = world.node('jump');
    const { ctx, specs } = setup(
      'unreachable',
      repo,
      [
        { name: 'nojump', host: 'inner-nojump', agent: noop(), connect_timeout_seconds: 5 },
        { name: 'nohost', host: 'nothing-behind', agent: noop(), connect_timeout_seconds: 5 },
      ],
      [
        entry('inner-nojump', 'inner', [key(), known(), `ProxyJump ${jump.user}@127.0.0.1:1`]),
        ['Host nothing-behind', '  HostName 127.0.0.1', '  Port 1', `  ${key()}`, `  ProxyJump ${jump.alias}`, ''].join('\n'),
        ['Host 127.0.0.1', `  ${key()}`, `  ${known()}`, ''].join('\n'),
      ],
    );
    const spec = specFile(specs, 'x.md', '# x\n');
    const down = await failure(dispatch(ctx, { project: 'unreachable', spec, node: 'nojump' }));
    // ssh -G writes the hop back as [host]:port.
    expect(down.message).toBe(`node nojump: jump host ${jump.user}@[127.0.0.1]:1: cannot connect to 127.0.0.1:1: ECONNREFUSED`);
    const closed = await failure(dispatch(ctx, { project: 'unreachable', spec, node: 'nohost' }));
    expect(closed.message).toBe(`node nohost: jump host ${jump.alias} cannot open a connection to 127.0.0.1:1: (SSH) Channel open failure: Connection refused`);
    expect(await jumpSessionsGone(jump.user)).toBe('');
  });
});

describe('ProxyCommand', () => {
  it('connects over the command (ssh -W %h:%p through the jump host), and says how a failing one ended', async () => {
    const repo = gitRepo();
    const jump = world.node('jump');
    const command = `ssh -F ${world.sshConfig} -o BatchMode=yes -W %h:%p ${jump.alias}`;
    const { ctx, specs } = setup(
      'proxycmd',
      repo,
      [
        { name: 'viacmd', host: 'inner-cmd', agent: edit() },
        { name: 'badcmd', host: 'inner-badcmd', agent: noop() },
      ],
      [
        entry('inner-cmd', 'inner', [key(), known(), `ProxyCommand ${command}`]),
        entry('inner-badcmd', 'inner', [key(), known(), 'ProxyCommand sh -c "echo no route to %h >&2; exit 3"']),
      ],
    );
    const sent = await dispatch(ctx, { project: 'proxycmd', spec: specFile(specs, 'a.md', '# cmd\nwrite cmd.txt over a command\n'), node: 'viacmd' });
    const report = await pullBundles(ctx, { project: 'proxycmd', wait: true, interval: 0.2, timeout: 60 });
    expect(report.tasks.map((t) => [t.task_id, t.outcome])).toEqual([[sent.task_id, 'merged']]);
    expect(repo.git('show', 'main:cmd.txt')).toBe('over a command\n');
    expect(await jumpSessionsGone(jump.user)).toBe('');

    const error = await failure(dispatch(ctx, { project: 'proxycmd', spec: specFile(specs, 'b.md', '# b\n'), node: 'badcmd' }));
    expect(error.message).toBe(
      `node badcmd: cannot connect to 127.0.0.1:${world.node('inner').port}: the ProxyCommand exited with code 3: no route to 127.0.0.1`,
    );
  });
});

describe('host keys from the ssh config', () => {
  it('StrictHostKeyChecking accept-new records the key of a jump host and of the node never seen before; without it they stop', async () => {
    const repo = gitRepo();
    const [jump, inner] = [world.node('jump'), world.node('inner')];
    const files = { jump: join(extra, 'kh_new_jump'), inner: join(extra, 'kh_new_inner') };
    const blocks = (strict: string[]) => [
      entry('inner-new', 'inner', [key(), `UserKnownHostsFile ${files.inner}`, 'ProxyJump jump-new', ...strict]),
      entry('jump-new', 'jump', [key(), `UserKnownHostsFile ${files.jump}`, ...strict]),
    ];
    const spec = () => specFile(tempDir(), 'x.md', '# x\n');
    const before = setup('acceptnew', repo, [{ name: 'inner', host: 'inner-new', agent: noop() }], blocks([]));
    const unknown = await failure(dispatch(before.ctx, { project: 'acceptnew', spec: spec(), node: 'inner' }));
    expect(unknown.message).toMatch(new RegExp(`^node inner: jump host jump-new: host key for \\[127\\.0\\.0\\.1\\]:${jump.port} is not known`));

    const { ctx } = setup('acceptnew', repo, [{ name: 'inner', host: 'inner-new', agent: noop() }], blocks(['StrictHostKeyChecking accept-new']));
    expect((await dispatch(ctx, { project: 'acceptnew', spec: spec(), node: 'inner' })).node).toBe('inner');
    expect(readFileSync(files.jump, 'utf8')).toBe(`[127.0.0.1]:${jump.port} ${jump.hostKeyPub}\n`);
    expect(readFileSync(files.inner, 'utf8')).toBe(`[127.0.0.1]:${inner.port} ${inner.hostKeyPub}\n`);
  });

  it('StrictHostKeyChecking no is read as accept-new: a changed key is still refused', async () => {
    const repo = gitRepo();
    const inner = world.node('inner');
    const wrong = join(extra, 'kh_wrong_inner');
    writeFileSync(wrong, `[127.0.0.1]:${inner.port} ${world.node('jump').hostKeyPub}\n`);
    const { ctx, specs } = setup(
      'strictno',
      repo,
      [{ name: 'inner', host: 'inner-no', agent: noop() }],
      [entry('inner-no', 'inner', [key(), `UserKnownHostsFile ${wrong}`, 'ProxyJump jump-alias', 'StrictHostKeyChecking no'])],
    );
    const error = await failure(dispatch(ctx, { project: 'strictno', spec: specFile(specs, 'x.md', '# x\n'), node: 'inner' }));
    expect(error.kind).toBe('hostkey');
    expect(error.message).toMatch(/^node inner: HOST KEY CHANGED for/);
  });
});

describe('identities', () => {
  it('a missing identity file is called missing, for the node and for a jump host', async () => {
    const repo = gitRepo();
    const gone = join(extra, 'no_such_key');
    const { ctx, specs } = setup(
      'missingkey',
      repo,
      [
        { name: 'inner', host: world.node('inner').alias, identity_file: gone, agent: noop() },
        { name: 'hopless', host: 'inner-hopless', agent: noop() },
      ],
      [entry('inner-hopless', 'inner', [key(), known(), 'ProxyJump jump-nokey']), entry('jump-nokey', 'jump', [`IdentityFile ${gone}`, known()])],
    );
    const spec = specFile(specs, 'x.md', '# x\n');
    const own = await failure(dispatch(ctx, { project: 'missingkey', spec, node: 'inner' }));
    expect([own.kind, own.message]).toEqual(['auth', `node inner: identity file ${gone} does not exist`]);
    const hop = await failure(dispatch(ctx, { project: 'missingkey', spec, node: 'hopless' }));
    expect(hop.message).toBe(`node hopless: jump host jump-nokey: no usable identity: identity file ${gone} does not exist, and no ssh-agent is running`);
  });

  it('an encrypted key with no agent and no terminal is named; IdentityAgent lends it from an agent, IdentityAgent none refuses the agent', async () => {
    const repo = gitRepo();
    const socket = join(tempDir('gsync-agent-'), 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    try {
      const until = Date.now() + 5000;
      while (!existsSync(socket) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      // The agent gets the key without its passphrase: ssh-add would want a terminal for it.
      const plain = join(tempDir(), 'plain_copy');
      writeFileSync(plain, readFileSync(encryptedKey), { mode: 0o600 });
      execFileSync('ssh-keygen', ['-q', '-p', '-P', PASSPHRASE, '-N', '', '-f', plain]);
      execFileSync('ssh-add', ['-q', plain], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });

      const enc = (alias: string, lines: string[]) => entry(alias, 'inner', [`IdentityFile ${encryptedKey}`, known(), 'ProxyJump jump-alias', ...lines]);
      const { ctx, specs } = setup(
        'encrypted',
        repo,
        [
          { name: 'enc', host: 'inner-enc', agent: noop() },
          { name: 'lent', host: 'inner-lent', agent: noop() },
          { name: 'noagent', host: 'inner-noagent', agent: noop() },
        ],
        [enc('inner-enc', []), enc('inner-lent', [`IdentityAgent ${socket}`]), enc('inner-noagent', ['IdentityAgent none'])],
      );
      const spec = specFile(specs, 'x.md', '# x\n');
      const locked = await failure(dispatch(ctx, { project: 'encrypted', spec, node: 'enc' }));
      expect(locked.message).toBe(
        `node enc: no usable identity: identity file ${encryptedKey} is encrypted, no ssh-agent is running, and there is no terminal to ask for its passphrase`,
      );
      expect((await dispatch(ctx, { project: 'encrypted', spec, node: 'lent' })).node).toBe('lent');
      const withAgent = { ...ctx, env: { ...ctx.env, SSH_AUTH_SOCK: socket } };
      expect((await dispatch(withAgent, { project: 'encrypted', spec, node: 'enc' })).node).toBe('enc');
      const refused = await failure(dispatch(withAgent, { project: 'encrypted', spec, node: 'noagent' }));
      expect(refused.message).toMatch(/^node noagent: no usable identity: identity file .* is encrypted/);
    } finally {
      agent.kill();
    }
  });

  it('on a terminal, asks once for the passphrase of an encrypted key (without echoing it) and uses it', async () => {
    const repo = gitRepo();
    const { configDir, specs } = setup(
      'prompt',
      repo,
      [{ name: 'enc', host: 'inner-enc', agent: noop() }],
      [entry('inner-enc', 'inner', [`IdentityFile ${encryptedKey}`, known(), 'ProxyJump jump-alias'])],
    );
    const ctl = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
    const sh = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
    /** gsync-ctl on a pseudo-terminal; `answer` is typed once the prompt shows. */
    const onTerminal = (args: string[], answer: string) =>
      new Promise<{ code: number | null; screen: string }>((resolve) => {
        const line = [process.execPath, ctl, '--config-dir', configDir, ...args].map(sh).join(' ');
        const env = { ...process.env, TERM: 'dumb', NO_COLOR: '1', SSH_AUTH_SOCK: '' };
        const child = spawn('/usr/bin/script', ['-qec', line, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        let screen = '';
        let typed = false;
        child.stdout.on('data', (chunk: Buffer) => {
          screen += chunk.toString();
          if (!typed && screen.includes('Enter passphrase for key')) {
            typed = true;
            child.stdin.write(`${answer}\r`);
          }
        });
        child.on('close', (code) => resolve({ code, screen }));
      });
    const two = ['dispatch', '--project', 'prompt', '--node', 'enc', '--spec', specFile(specs, 'a.md', '# a\n'), '--spec', specFile(specs, 'b.md', '# b\n')];
    const ok = await onTerminal(two, PASSPHRASE);
    expect(ok.code).toBe(0);
    expect(ok.screen.split(`Enter passphrase for key '${encryptedKey}': `)).toHaveLength(2);
    expect(ok.screen).not.toContain(PASSPHRASE);

    const wrong = await onTerminal(['dispatch', '--project', 'prompt', '--node', 'enc', '--spec', specFile(specs, 'c.md', '# c\n')], 'not it');
    expect(wrong.code).toBe(5);
    expect(wrong.screen).toContain(`gsync-ctl: node enc: wrong passphrase for identity file ${encryptedKey}`);
    expect(wrong.screen).not.toContain('not it');
  });
});
