import { UsageError, checkName } from '@gsync/core';
import { agentProfile } from '../config/lookup.js';
import { checkEntry, editConfigFile, given, typedPath } from '../config/save.js';
import { appendToArray, replaceValue } from '../config/edit.js';
import { NodeEntry } from '../config/schema.js';
import type { Context } from '../context.js';

export interface NodeAddOptions {
  name: string;
  transport?: string;
  host?: string;
  port?: number;
  user?: string;
  identityFile?: string;
  knownHosts?: string;
  workRoot?: string;
  home?: string;
  nodeBin?: string;
  agent?: string;
  maxParallel?: number;
  /** Replace a node of the same name. */
  force: boolean;
  /** Where relative paths among the options were typed. */
  cwd: string;
}

export interface NodeAddResult {
  file: string;
  node: string;
  action: 'added' | 'replaced';
  entry: Record<string, unknown>;
}

/** Adds a node to nodes.json, keeping the file's comments and layout. */
export async function nodeAdd(ctx: Context, options: NodeAddOptions): Promise<NodeAddResult> {
  const name = checkName('node', options.name);
  const entry = given({
    name,
    transport: options.transport,
    host: options.host,
    port: options.port,
    user: options.user,
    identity_file: typedPath(options.identityFile, options.cwd),
    known_hosts: typedPath(options.knownHosts, options.cwd),
    work_root: options.workRoot,
    home: typedPath(options.home, options.cwd),
    node_bin: options.nodeBin,
    agent: options.agent,
    max_parallel: options.maxParallel,
  });
  checkEntry(NodeEntry, entry, 'node add');
  if ((entry.transport ?? 'ssh') === 'ssh' && entry.host === undefined) {
    throw new UsageError('--host is needed for an ssh node', { hint: 'give --host HOST, or --transport local for a folder on this machine' });
  }
  let action: NodeAddResult['action'] = 'added';
  const file = await editConfigFile(
    { dir: ctx.configDir, home: ctx.home },
    'nodes',
    (config, text) => {
      const index = config.nodes.findIndex((n) => n.name === name);
      if (index < 0) return appendToArray(text, ['nodes'], entry);
      if (!options.force) throw new UsageError(`node "${name}" is in ${config.nodesFile} already`, { hint: '--force replaces it' });
      action = 'replaced';
      return replaceValue(text, ['nodes', index], entry);
    },
    (config) => {
      if (entry.agent !== undefined) agentProfile(config, entry.agent, '--agent');
    },
  );
  return { file, node: name, action, entry };
}
