import { UsageError } from '@gsync/core';
import type { Config, NodeConfig } from '../config.js';
import type { Store } from '../store/store.js';

/** The node with the fewest open tasks (and `planned` ones not sent yet); ties go to the one listed first. */
export function pickNode(config: Config, store: Store, planned: ReadonlyMap<string, number> = new Map()): NodeConfig {
  const counts = store.openTasksByNode();
  const open = new Map(config.nodes.map((n) => [n.name, (counts.get(n.name) ?? 0) + (planned.get(n.name) ?? 0)]));
  let best: NodeConfig | undefined;
  for (const node of config.nodes) {
    if (!best || (open.get(node.name) ?? 0) < (open.get(best.name) ?? 0)) best = node;
  }
  if (!best) throw new UsageError(`no nodes in ${config.nodesFile}`);
  return best;
}
