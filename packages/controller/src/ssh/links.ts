import type { NodeConfig } from '../config.js';
import { type ConnectContext, connectNode } from './connect.js';
import type { NodeTransport } from './transport.js';

/**
 * Connections kept open for a whole run, one per node: a `pull --wait` asks, waits and
 * collects over the same login instead of a new one per poll. A link that fails is
 * dropped and the next use connects again.
 */
export class NodeLinks {
  private readonly links = new Map<string, Promise<NodeTransport>>();

  constructor(private readonly ctx: ConnectContext) {}

  get(node: NodeConfig): Promise<NodeTransport> {
    let link = this.links.get(node.name);
    if (!link) {
      link = connectNode(this.ctx, node);
      // A failed connect is not kept: the next use tries again.
      link.catch(() => this.links.delete(node.name));
      this.links.set(node.name, link);
    }
    return link;
  }

  async drop(node: string): Promise<void> {
    const link = this.links.get(node);
    this.links.delete(node);
    await link?.then((t) => t.close()).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.links.keys()].map((name) => this.drop(name)));
  }
}
