import pLimit from 'p-limit';
import { checkName } from '@gsync/core';
import { type NodeConfig, getNode, getProject, loadConfig } from '../config.js';
import type { Context } from '../context.js';
import type { Check } from '../doctor/check.js';
import { type OnNode, checkOnNode } from '../doctor/on-node.js';
import { reach } from '../doctor/reach.js';
import { loadNodeTool } from '../node-api/node-tool.js';

export type { Check } from '../doctor/check.js';

export interface DoctorOptions {
  /** One node; else every node in nodes.json. */
  node?: string | undefined;
  /** Look for this project's agent on the nodes; else for the agents of every project. */
  project?: string | undefined;
  /** Install or replace gsync-node where it is missing or another build; without it nothing on a node is changed. */
  fix?: boolean;
}

export interface NodeChecks {
  node: string;
  checks: Check[];
}

export interface DoctorResult {
  schema_version: 1;
  config: { nodes_file: string; projects_file: string };
  nodes: NodeChecks[];
}

const NODES_AT_ONCE = 8;

/**
 * Checks each node the way a dispatch would use it: ssh config, reachable, host key, login,
 * Node.js, git, gsync-node, work_root, free disk, the agent's command. Nodes in parallel, each
 * question bounded in time; one that cannot be reached gets the line that says why. Read-only
 * unless `fix`; a host key is recorded only with --accept-new. A config that does not load throws.
 */
export async function doctor(ctx: Context, options: DoctorOptions): Promise<DoctorResult> {
  const config = await loadConfig({ dir: ctx.configDir, home: ctx.home });
  for (const warning of config.warnings) ctx.onEvent({ level: 'warn', kind: 'config', message: warning });
  const nodes = options.node === undefined ? config.nodes : [getNode(config, checkName('node', options.node))];
  const project = options.project === undefined ? undefined : getProject(config, checkName('project', options.project));
  const tool = loadNodeTool(ctx.nodeToolPath);
  // Read when a node is asked about gsync-node; a file that cannot be read is that check's line.
  tool.catch(() => undefined);
  const d: OnNode = { config, project, fix: options.fix ?? false, tool, deadline: ctx.deadline };
  const limit = pLimit(NODES_AT_ONCE);
  const checkNode = async (node: NodeConfig): Promise<NodeChecks> => {
    const checks: Check[] = [];
    const link = await reach(ctx, config.sshConfig, node, checks);
    if (link) await checkOnNode(d, node, link, checks).finally(() => link.close().catch(() => undefined));
    return { node: node.name, checks };
  };
  return {
    schema_version: 1,
    config: { nodes_file: config.nodesFile, projects_file: config.projectsFile },
    nodes: await Promise.all(nodes.map((node) => limit(() => checkNode(node)))),
  };
}
