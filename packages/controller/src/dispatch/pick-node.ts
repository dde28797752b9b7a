import { UsageError } from '@gsync/core';
import type { Config, NodeConfig } from '../config.js';
import type { Store } from '../store/store.js';

/** The node with the fewest open tasks; ties go to the one listed first. */
export function pickNode(config: Config, store: Store): NodeConfig {
  const open = store.openTasksByNode();
  let best: NodeConfig | undefined;
  for (const node of config.nodes) {
    if (!best || (open.get(node.name) ?? 0) < (open.get(best.name) ?? 0)) best = node;
  }
  if (!best) throw new UsageError(`no nodes in ${config.nodesFile}`);
  return best;
}
