import type { Config, NodeConfig } from './config.js';
import { openLocalTransport } from './local-transport.js';
import { resolveSshTarget } from './ssh/resolve.js';
import { openSshTransport } from './ssh/ssh-transport.js';
import type { NodeTransport } from './transport.js';

export interface ConnectContext {
  config: Config;
  home: string;
  env: NodeJS.ProcessEnv;
  acceptNew: boolean;
}

export async function connectNode(ctx: ConnectContext, node: NodeConfig): Promise<NodeTransport> {
  if (node.transport === 'local') return openLocalTransport(node.name, node.home!, ctx.env);
  const target = await resolveSshTarget({ node, sshConfig: ctx.config.sshConfig, home: ctx.home, env: ctx.env });
  return openSshTransport({ node: node.name, target, acceptNew: ctx.acceptNew });
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
