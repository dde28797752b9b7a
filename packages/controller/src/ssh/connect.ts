import { SshError } from '@gsync/core';
import type { Config, NodeConfig } from '../config.js';
import { openLocalTransport } from './local-transport.js';
import type { AskPassphrase } from './identity.js';
import { type SshTarget, resolveSshTarget } from './resolve.js';
import { openSshTransport } from './ssh-transport.js';
import type { NodeLinks } from './links.js';
import type { NodeTransport } from './transport.js';

export interface ConnectContext {
  config: Config;
  home: string;
  env: NodeJS.ProcessEnv;
  acceptNew: boolean;
  /** Asks for an encrypted key's passphrase; absent when there is no terminal to ask on. */
  askPassphrase?: AskPassphrase;
  /** gsync-ctl's --timeout (ms since the epoch): no node is contacted after it, every command is ended at it. */
  deadline?: number;
}

/** Past the command's --timeout nothing new is started on a node. */
export function pastDeadline(ctx: Pick<ConnectContext, 'deadline'>): boolean {
  return ctx.deadline !== undefined && Date.now() >= ctx.deadline;
}

export async function connectNode(ctx: ConnectContext, node: NodeConfig): Promise<NodeTransport> {
  if (pastDeadline(ctx)) throw new SshError(node.name, 'remote', "not contacted: gsync-ctl's --timeout has passed");
  if (node.transport === 'local') return answering(await openLocalTransport(node.name, node.home!, ctx.env), node, ctx.deadline);
  const target = await resolveSshTarget({ node, sshConfig: ctx.config.sshConfig, home: ctx.home, env: ctx.env });
  // Connecting, too, gives up at the command's --timeout, at every jump host on the way.
  if (ctx.deadline !== undefined) {
    for (let t: SshTarget | undefined = target; t; t = t.proxy?.kind === 'jump' ? t.proxy.hop : undefined) {
      t.connectTimeoutSeconds = Math.max(0.001, Math.min(t.connectTimeoutSeconds, (ctx.deadline - Date.now()) / 1000));
    }
  }
  const transport = await openSshTransport({ node: node.name, target, acceptNew: ctx.acceptNew, askPassphrase: ctx.askPassphrase, env: ctx.env });
  return answering(transport, node, ctx.deadline);
}

/**
 * Every command on the node is ended after answer_timeout_seconds of silence, unless the
 * call allows more, and at the command's --timeout whatever it is doing.
 */
function answering(t: NodeTransport, node: NodeConfig, deadline: number | undefined): NodeTransport {
  return {
    node: t.node,
    exec: (argv, options = {}) => t.exec(argv, { idleSeconds: node.answer_timeout_seconds, deadline, ...options }),
    close: () => t.close(),
  };
}

/** Runs `fn` with a connection to the node and always hangs up. */
export async function withNode<T>(ctx: ConnectContext, node: NodeConfig, fn: (t: NodeTransport) => Promise<T>): Promise<T> {
  const t = await connectNode(ctx, node);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

/** The link failed (cut, stalled, refused), not the node's answer: worth another try. */
export function isTransient(error: unknown): boolean {
  return error instanceof SshError && (error.kind === 'transfer' || error.kind === 'connect');
}

/**
 * Runs `fn` with a connection (a fresh one, or the run's kept link to the node), again after a transient failure, up to `retries`
 * more times with exponential backoff (0.5 s, 1 s, 2 s, ...). `fn` must be safe to
 * run again: every caller re-reads what is left to do.
 */
export async function withNodeRetrying<T>(
  ctx: ConnectContext,
  node: NodeConfig,
  retries: number,
  onRetry: (error: unknown, attempt: number, delayMs: number) => void,
  fn: (t: NodeTransport) => Promise<T>,
  options: { links?: NodeLinks; sleep?: (ms: number) => Promise<void> } = {},
): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      const links = options.links;
      if (!links) return await withNode(ctx, node, fn);
      try {
        return await fn(await links.get(node));
      } catch (error) {
        // A link that broke, or whose command had to be ended, is not used again; one that only carried a bad answer stays.
        if (isTransient(error) || (error instanceof SshError && error.kind === 'remote')) await links.drop(node.name);
        throw error;
      }
    } catch (error) {
      if (!isTransient(error) || attempt > retries || pastDeadline(ctx)) throw error;
      const delayMs = 500 * 2 ** (attempt - 1);
      onRetry(error, attempt, delayMs);
      await sleep(delayMs);
    }
  }
}
