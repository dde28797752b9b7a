import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { AGENTS, tempDir } from './git-repo.js';

/**
 * Real OpenSSH nodes on 127.0.0.1 for end-to-end tests: one sshd per node,
 * each with its own port, host key and Unix user (a node `behind` another takes
 * connections from that node's user only). The controller side gets a
 * client key, a known_hosts file and an ssh_config with one alias per node.
 * Needs root (to create users and run sshd); `pnpm test` installs
 * openssh-server first when it is missing.
 */
export interface SshNode {
  name: string;
  user: string;
  uid: number;
  home: string;
  port: number;
  alias: string;
  hostKeyPub: string;
}

export interface SshWorld {
  dir: string;
  clientKey: string;
  knownHosts: string;
  sshConfig: string;
  /** A copy of fixtures/agents every node user can read. */
  agents: string;
  nodes: SshNode[];
  node(name: string): SshNode;
  stop(): Promise<void>;
}

const SSHD = '/usr/sbin/sshd';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd on port ${port} exited: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd on port ${port} did not start: ${log()}`);
}

function ensureUser(user: string): { uid: number; gid: number; home: string } {
  try {
    execFileSync('id', ['-u', user], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['-m', '-s', '/bin/sh', user], { stdio: 'pipe' });
  }
  // A new account is locked ("!"), and sshd without PAM refuses locked accounts even for keys.
  execFileSync('usermod', ['-p', '*', user], { stdio: 'pipe' });
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  const home = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim().split(':')[5]!;
  return { uid, gid, home };
}

function killUser(user: string): void {
  try {
    execFileSync('pkill', ['-KILL', '-u', user], { stdio: 'ignore' });
  } catch {
    // nothing of that user was running
  }
}

export interface NodeSpec {
  name: string;
  /** Give the node a PATH without git (node and the shell tools only). */
  withoutGit?: boolean;
  /**
   * A host behind a bastion: only connections made by this (earlier) node's user get
   * through, so the node is reached through that node or not at all. Its ssh config
   * entry says `ProxyJump <that node's alias>`.
   */
  behind?: string;
}

/** The uid that owns the other end of a loopback connection, as the kernel lists it in /proc/net/tcp. */
function peerUid(socket: Socket): number | undefined {
  const hex = (port: number) => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const [mine, theirs] = [hex(socket.localPort!), hex(socket.remotePort!)];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === theirs && f[2] === mine) return Number(f[7]);
  }
  return undefined;
}

/**
 * A node behind a bastion: sshd runs per connection (`sshd -i`, as from inetd) for a
 * connection the bastion's user opened, and any other connection is closed unanswered.
 */
async function gate(port: number, uid: number, config: string, sessions: ChildProcess[]): Promise<Server> {
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    if (peerUid(socket) !== uid) return void socket.destroy();
    sessions.push(spawn(SSHD, ['-i', '-e', '-f', config], { stdio: [socket, socket, 'ignore'] }));
    // sshd has its own copy of the connection now.
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

export async function startSshNodes(specs: readonly NodeSpec[], userPrefix: string): Promise<SshWorld> {
  if (process.getuid?.() !== 0) throw new Error('the SSH end-to-end tests need root, to create node users and run sshd');
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (pnpm test does it when run as root)`);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = tempDir('gsync-sshd-');
  chmodSync(dir, 0o755);
  const agents = join(dir, 'agents');
  cpSync(AGENTS, agents, { recursive: true });
  const clientKey = join(dir, 'client_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gsync-test', '-f', clientKey]);
  const clientPub = readFileSync(`${clientKey}.pub`, 'utf8');
  const knownHosts = join(dir, 'known_hosts');
  const sshConfig = join(dir, 'ssh_config');
  const nodes: SshNode[] = [];
  const children: ChildProcess[] = [];
  const sessions: ChildProcess[] = [];
  const gates: Server[] = [];
  const knownLines: string[] = [];
  const configBlocks: string[] = [];

  for (const spec of specs) {
    const user = `${userPrefix}-${spec.name}`.slice(0, 31);
    const { uid, gid, home } = ensureUser(user);
    killUser(user);
    // Test users only: every run starts from an empty home.
    for (const entry of readdirSync(home)) rmSync(join(home, entry), { recursive: true, force: true });
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    writeFileSync(join(home, '.ssh/authorized_keys'), clientPub, { mode: 0o600 });
    if (spec.withoutGit) {
      const bin = join(home, 'bin-nogit');
      rmSync(bin, { recursive: true, force: true });
      mkdirSync(bin);
      for (const tool of ['node', 'sh', 'mkdir', 'cat', 'mv', 'dirname']) {
        symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
      }
      writeFileSync(join(home, '.ssh/environment'), `PATH=${bin}\n`);
    }
    for (const p of ['.ssh', '.ssh/authorized_keys', ...(spec.withoutGit ? ['.ssh/environment'] : [])]) chownSync(join(home, p), uid, gid);

    const hostKey = join(dir, `host_${spec.name}`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `host-${spec.name}`, '-f', hostKey]);
    const port = await freePort();
    const config = join(dir, `sshd_${spec.name}.conf`);
    writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, `sshd_${spec.name}.pid`)}`,
        'AuthorizedKeysFile .ssh/authorized_keys',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        `AllowUsers ${user}`,
        'PermitUserEnvironment yes',
        'StrictModes no',
        'MaxStartups 100',
        'MaxSessions 50',
        'Subsystem sftp internal-sftp',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const bastion = spec.behind === undefined ? undefined : nodes.find((n) => n.name === spec.behind);
    if (spec.behind !== undefined && !bastion) throw new Error(`node ${spec.name} is behind ${spec.behind}, which must come before it`);
    if (bastion) gates.push(await gate(port, bastion.uid, config, sessions));
    else {
      let log = '';
      const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
      children.push(child);
      await waitForPort(port, child, () => log);
    }
    const hostKeyPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    knownLines.push(`[127.0.0.1]:${port} ${hostKeyPub}`);
    const alias = `${spec.name}-alias`;
    configBlocks.push(
      [
        `Host ${alias}`,
        '  HostName 127.0.0.1',
        `  Port ${port}`,
        `  User ${user}`,
        `  IdentityFile ${clientKey}`,
        `  UserKnownHostsFile ${knownHosts}`,
        '  IdentitiesOnly yes',
        ...(bastion ? [`  ProxyJump ${bastion.alias}`] : []),
        '',
      ].join('\n'),
    );
    nodes.push({ name: spec.name, user, uid, home, port, alias, hostKeyPub });
  }
  writeFileSync(knownHosts, `${knownLines.join('\n')}\n`);
  writeFileSync(sshConfig, configBlocks.join('\n'));

  return {
    dir,
    clientKey,
    knownHosts,
    sshConfig,
    agents,
    nodes,
    node(name) {
      const n = nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no test node ${name}`);
      return n;
    },
    async stop() {
      for (const server of gates) server.close();
      for (const child of [...children, ...sessions]) child.kill('SIGTERM');
      const running = [...children, ...sessions].filter((c) => c.exitCode === null && c.signalCode === null);
      await Promise.all(running.map((c) => new Promise((r) => c.once('exit', r))));
      for (const n of nodes) killUser(n.user);
    },
  };
}
