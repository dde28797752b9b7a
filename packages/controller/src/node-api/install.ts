import { posix } from 'node:path';
import * as z from 'zod/mini';
import { SshError, UsageError, inert } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import { remoteFailure as failure, type NodeTransport } from '../ssh/transport.js';
import type { NodeTool } from './node-tool.js';

/** Where gsync-node lives on a node, and how it gets there: installed (or replaced) before a task is sent. */

/** `~/x` becomes `x`: remote commands start in the node user's home, and quoted words are never tilde-expanded. */
export function nodePath(path: string): string {
  if (path === '~') return '.';
  if (path.startsWith('~/')) return path.slice(2) || '.';
  if (path.startsWith('~')) throw new UsageError(`work_root ${JSON.stringify(path)}: only "~/" is understood, not "~user"`);
  return path;
}

export function toolPath(node: NodeConfig): string {
  return posix.join(nodePath(node.work_root), '.gsync', 'gsync-node.mjs');
}

export const Hello = z.object({
  version: z.string(),
  protocol: z.number(),
  sha256: z.string(),
  node: z.string(),
  git: z.nullable(z.string()),
  /** Asked with a project: the commits its object cache on the node holds, newest first. */
  cache: z.optional(z.array(z.string().check(z.regex(/^[0-9a-f]{40}$/))).check(z.maxLength(1000))),
});
export type Hello = z.infer<typeof Hello>;

/** What the node's gsync-node says of itself; undefined when it is not there or does not run. */
export async function hello(t: NodeTransport, node: NodeConfig, project: string | undefined): Promise<Hello | undefined> {
  const r = await t.exec([node.node_bin, toolPath(node), 'hello', ...(project ? ['--work-root', node.work_root, '--project', project] : [])]);
  if (r.code === 127) {
    throw new SshError(node.name, 'remote', `"${node.node_bin}" is not installed on the node (or not on its PATH)`, {
      hint: 'install Node.js 18 or newer there, or set node_bin for the node in nodes.json',
    });
  }
  if (r.code !== 0) return undefined;
  const text = r.stdout.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text || 'null');
  } catch {
    // gsync-node prints one JSON line: anything else came from the login, before it ran.
    throw new SshError(node.name, 'remote', `the login prints text before gsync-node's answer: ${inert(text.trim().split('\n')[0] ?? '', 120)}`, {
      hint: "make the node user's shell print nothing for non-interactive logins (a banner or echo in .bashrc breaks the protocol)",
    });
  }
  const parsed = Hello.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}

/**
 * A node whose gsync-node is not this very build gets this one: missing, older, another
 * build, or one that only claims to be newer (a version string proves nothing; the file's
 * sha256 is what this controller knows it can trust).
 */
export function needsInstall(current: Hello | undefined, tool: NodeTool): boolean {
  return !current || current.sha256 !== tool.sha256;
}

/** What a node's gsync-node must offer before a task goes to it: a Node.js that runs it, speaking this protocol. */
export function checkUsable(node: NodeConfig, current: Hello | undefined, tool: NodeTool): Hello {
  if (!current) throw new SshError(node.name, 'remote', `gsync-node does not run on the node with "${node.node_bin}" (Node.js 18 or newer is needed)`);
  if (current.protocol !== tool.protocol) {
    throw new SshError(node.name, 'remote', `the node's gsync-node speaks protocol ${current.protocol}, this controller ${tool.protocol}`);
  }
  // A node without git still takes tasks: as files (the scp mode), with an alert (see carrierForNode).
  return current;
}

/**
 * Installs gsync-node when it is missing, older, or a different build of the same version.
 * With a project, its hello also says what the project's object cache on the node holds.
 */
export async function ensureNodeTool(t: NodeTransport, node: NodeConfig, tool: NodeTool, project?: string): Promise<{ installed: boolean; hello: Hello }> {
  let current = await hello(t, node, project);
  let installed = false;
  if (needsInstall(current, tool)) {
    // A constant script; the path is a positional parameter, never part of the script.
    const script = 'umask 022 && mkdir -p "$(dirname "$1")" && cat > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"';
    const r = await t.exec(['sh', '-c', script, 'sh', toolPath(node)], { stdin: tool.data });
    if (r.code !== 0) throw failure(node.name, 'cannot install gsync-node', r);
    current = await hello(t, node, project);
    installed = true;
  }
  return { installed, hello: checkUsable(node, current, tool) };
}
