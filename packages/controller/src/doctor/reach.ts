import { connect } from 'node:net';
import { SshError } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import type { Context } from '../context.js';
import { openLocalTransport } from '../ssh/local-transport.js';
import { type SshTarget, resolveSshTarget } from '../ssh/resolve.js';
import { openSshTransport } from '../ssh/ssh-transport.js';
import type { NodeTransport } from '../ssh/transport.js';
import { type Check, failed, ok, problem } from './check.js';

/** A doctor waits less than a dispatch would: a node that needs longer is worth a line anyway. */
const CONNECT_SECONDS = 10;

/**
 * The connection to a node, with a line for each step of making it (ssh config, reachable, host
 * key, login); undefined, after the line that says why, when there is none. A host key never
 * seen is recorded only with --accept-new: the ssh config's accept-new waits for a dispatch.
 */
export async function reach(ctx: Context, sshConfig: string | undefined, node: NodeConfig, checks: Check[]): Promise<NodeTransport | undefined> {
  if (node.transport === 'local') {
    try {
      const t = await openLocalTransport(node.name, node.home!, ctx.env);
      checks.push(ok('reachable', `a local node: runs on this machine in ${node.home}`));
      return t;
    } catch (error) {
      checks.push(failed('reachable', error, `make ${node.home} a folder this user can write, or set home for the node in nodes.json`));
      return undefined;
    }
  }
  let target: SshTarget;
  try {
    target = await resolveSshTarget({ node, sshConfig, home: ctx.home, env: ctx.env });
  } catch (error) {
    checks.push(failed('ssh config', error, 'fix host for the node in nodes.json, or its entry in the ssh config (ssh -G HOST shows what ssh makes of it)'));
    return undefined;
  }
  const hops: SshTarget[] = [];
  for (let h: SshTarget | undefined = target; h; h = h.proxy?.kind === 'jump' ? h.proxy.hop : undefined) hops.push(h);
  const jumps = hops.slice(1).map((h) => h.spec);
  const via = jumps.length > 0 ? ` through ${jumps.join(', ')}` : target.proxy?.kind === 'command' ? ' through its ProxyCommand' : '';
  checks.push(ok('ssh config', `${target.user}@${target.host}:${target.port}${via}`));
  // A key never seen is recorded only when this run is told to (the ssh config's accept-new waits for a dispatch).
  const configAccepts = hops.some((h) => h.acceptNew);
  const left = ctx.deadline === undefined ? Number.POSITIVE_INFINITY : (ctx.deadline - Date.now()) / 1000;
  for (const h of hops) {
    h.acceptNew = false;
    h.connectTimeoutSeconds = Math.max(0.001, Math.min(h.connectTimeoutSeconds, CONNECT_SECONDS, left));
  }
  // Whether a direct node answers at all gets its own line, whatever the keys say.
  const answers = target.proxy ? undefined : await tcpAnswers(target.host, target.port, target.connectTimeoutSeconds);
  if (typeof answers === 'string') {
    checks.push(
      problem('reachable', `cannot connect to ${target.host}:${target.port}: ${answers}`, 'check that the node is up and host/port in nodes.json are right'),
    );
    return undefined;
  }
  const reachable = ok('reachable', `${target.host}:${target.port}${via}`);
  try {
    const t = await openSshTransport({ node: node.name, target, acceptNew: ctx.acceptNew, askPassphrase: ctx.askPassphrase, env: ctx.env });
    checks.push(reachable, ok('host key', `known (${target.knownHostsFiles[0]})`), ok('login', `as ${target.user}`));
    return t;
  } catch (error) {
    const kind = error instanceof SshError ? error.kind : undefined;
    if (kind === 'hostkey') {
      const check = failed('host key', error);
      if (configAccepts && / is not known /.test(check.detail))
        check.fix = `${check.fix}; the ssh config's StrictHostKeyChecking accept-new records it at the first dispatch`;
      checks.push(reachable, check);
    } else if (kind === 'auth') {
      // A key file that cannot be used fails before anything is sent: reachable is then known only from the try above.
      if (answers) checks.push(reachable);
      checks.push(failed('login', error));
    } else checks.push(failed('reachable', error));
    return undefined;
  }
}

/** True when something accepts a TCP connection there in time; else why not (ECONNREFUSED, no answer in 10 s). */
function tcpAnswers(host: string, port: number, seconds: number): Promise<true | string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (answer: true | string) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(seconds * 1000, () => done(`no answer in ${seconds} s`));
    socket.once('connect', () => done(true));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}
