import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GitRepo } from './git-repo.js';
import type { SshWorld } from './sshd.js';

/**
 * A shared git remote over real SSH for Plan A: one of the world's sshd users serves
 * bare repositories through `git-shell` (each key may run git-shell there and nothing
 * else). The controller reaches it through the world's ssh config; each node user gets
 * its own deploy key and a `~/.ssh/config` entry, as a node in the field would have.
 */
export interface SshRemote {
  /** The host alias both sides use: a repository's URL is `<alias>:<name>.git`. */
  alias: string;
  /** A bare repository on the remote holding `repo`'s main; returns its URL. */
  create(repo: GitRepo, name: string): string;
  /** Points a node's entry for the remote at `port` (a closed one cuts the node off), or back at the remote. */
  reach(node: string, port?: number): void;
  /** `GIT_SSH_COMMAND` for the controller's git. */
  sshCommand: string;
}

export function setUpSshRemote(world: SshWorld, nodes: readonly string[], server = 'git', alias = 'shared-remote'): SshRemote {
  const remote = world.node(server);
  const reach = (name: string, port = remote.port) => {
    const n = world.node(name);
    const config = join(n.home, '.ssh', 'config');
    writeFileSync(
      config,
      [
        `Host ${alias}`,
        '  HostName 127.0.0.1',
        `  Port ${port}`,
        `  User ${remote.user}`,
        '  IdentityFile ~/.ssh/deploy_key',
        '  IdentitiesOnly yes',
        '  StrictHostKeyChecking yes',
        '  ConnectTimeout 5',
        '',
      ].join('\n'),
    );
    chownSync(config, n.uid, n.uid);
  };
  const deployKey = (name: string): string => {
    const n = world.node(name);
    const key = join(n.home, '.ssh', 'deploy_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `deploy-${name}`, '-f', key]);
    writeFileSync(join(n.home, '.ssh', 'known_hosts'), `[127.0.0.1]:${remote.port} ${remote.hostKeyPub}\n`);
    reach(name);
    for (const f of ['deploy_key', 'deploy_key.pub', 'known_hosts']) chownSync(join(n.home, '.ssh', f), n.uid, n.uid);
    return readFileSync(`${key}.pub`, 'utf8').trim();
  };
  const only = (pub: string) => `command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ${pub}`;
  const keys = [readFileSync(`${world.clientKey}.pub`, 'utf8').trim(), ...nodes.map(deployKey)];
  writeFileSync(join(remote.home, '.ssh/authorized_keys'), `${keys.map(only).join('\n')}\n`);
  appendFileSync(
    world.sshConfig,
    [
      `Host ${alias}`,
      '  HostName 127.0.0.1',
      `  Port ${remote.port}`,
      `  User ${remote.user}`,
      `  IdentityFile ${world.clientKey}`,
      `  UserKnownHostsFile ${world.knownHosts}`,
      '  IdentitiesOnly yes',
      '',
    ].join('\n'),
  );
  return {
    alias,
    sshCommand: `ssh -F ${world.sshConfig}`,
    reach,
    create(repo, name) {
      const path = join(remote.home, `${name}.git`);
      execFileSync('git', ['init', '-q', '--bare', path]);
      repo.git('push', '-q', path, 'main');
      execFileSync('chown', ['-R', `${remote.user}:${remote.user}`, path]);
      return `${alias}:${name}.git`;
    },
  };
}
