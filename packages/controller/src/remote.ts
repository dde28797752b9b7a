import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import type { Writable } from 'node:stream';
import { pack } from 'tar-stream';
import { z } from 'zod';
import { FILES, ProtocolError, SshError, TaskReport, UsageError } from '@gsync/core';
import type { NodeConfig } from './config.js';
import { versionNewer, type NodeTool } from './node-tool.js';
import { lastLine, type ExecResult, type NodeTransport } from './transport.js';

/**
 * The controller's side of the node protocol: every operation on a node is a
 * `gsync-node` subcommand, so the node's files are only ever touched by it.
 */

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

const Hello = z.object({
  version: z.string(),
  protocol: z.number(),
  sha256: z.string(),
  node: z.string(),
  git: z.string().nullable(),
});
export type Hello = z.infer<typeof Hello>;

function failure(node: string, what: string, r: ExecResult): SshError {
  const detail = lastLine(r.stderr) || (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
  return new SshError(node, 'remote', `${what}: ${detail.replace(/^gsync-node: /, '')}`);
}

async function hello(t: NodeTransport, node: NodeConfig): Promise<Hello | undefined> {
  const r = await t.exec([node.node_bin, toolPath(node), 'hello']);
  if (r.code === 127) {
    throw new SshError(node.name, 'remote', `"${node.node_bin}" is not installed on the node (or not on its PATH)`, {
      hint: 'install Node.js 18 or newer there, or set node_bin for the node in nodes.json',
    });
  }
  if (r.code !== 0) return undefined;
  const parsed = Hello.safeParse(JSON.parse(r.stdout.toString('utf8') || 'null'));
  return parsed.success ? parsed.data : undefined;
}

/** Installs gsync-node when it is missing, older, or a different build of the same version. */
export async function ensureNodeTool(t: NodeTransport, node: NodeConfig, tool: NodeTool): Promise<{ installed: boolean; hello: Hello }> {
  let current = await hello(t, node).catch((error: unknown) => {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  });
  let installed = false;
  const stale = !current || (current.sha256 !== tool.sha256 && !versionNewer(current.version, tool.version));
  if (stale) {
    // A constant script; the path is a positional parameter, never part of the script.
    const script = 'umask 022 && mkdir -p "$(dirname "$1")" && cat > "$1.tmp.$$" && mv -f "$1.tmp.$$" "$1"';
    const r = await t.exec(['sh', '-c', script, 'sh', toolPath(node)], { stdin: tool.data });
    if (r.code !== 0) throw failure(node.name, 'cannot install gsync-node', r);
    current = await hello(t, node);
    installed = true;
  }
  if (!current) throw new SshError(node.name, 'remote', `gsync-node does not run on the node with "${node.node_bin}" (Node.js 18 or newer is needed)`);
  if (current.protocol !== tool.protocol) {
    throw new SshError(node.name, 'remote', `the node's gsync-node speaks protocol ${current.protocol}, this controller ${tool.protocol}`);
  }
  if (!current.git) {
    throw new SshError(node.name, 'remote', 'git is not installed on the node (or not on its PATH)', { hint: 'install git on the node' });
  }
  return { installed, hello: current };
}

export interface TaskPayload {
  manifest: Buffer;
  spec: Buffer;
  bundlePath: string;
  bundleSize: number;
}

const AcceptAnswer = z.object({
  taskDir: z.string(),
  created: z.boolean(),
  start: z.object({ started: z.boolean(), pid: z.number().optional(), state: z.string() }).optional(),
});
export type AcceptAnswer = z.infer<typeof AcceptAnswer>;

/** Streams task.json, spec.md and base.bundle as one tar to `gsync-node accept --start`. */
export async function sendTask(t: NodeTransport, node: NodeConfig, project: string, taskId: string, payload: TaskPayload): Promise<AcceptAnswer> {
  const tar = pack();
  const feed = (async () => {
    tar.entry({ name: FILES.manifest, mode: 0o644 }, payload.manifest);
    tar.entry({ name: FILES.spec, mode: 0o644 }, payload.spec);
    await new Promise<void>((resolve, reject) => {
      const entry = tar.entry({ name: FILES.baseBundle, size: payload.bundleSize, mode: 0o644 }, (error) => (error ? reject(error) : resolve()));
      createReadStream(payload.bundlePath).on('error', reject).pipe(entry);
    });
    tar.finalize();
  })();
  const argv = [node.node_bin, toolPath(node), 'accept', '--work-root', node.work_root, '--project', project, '--task', taskId, '--start'];
  const [r] = await Promise.all([t.exec(argv, { stdin: tar }), feed]);
  if (r.code !== 0) throw failure(node.name, `the node did not accept task ${taskId}`, r);
  const answer = AcceptAnswer.safeParse(JSON.parse(r.stdout.toString('utf8')));
  if (!answer.success) throw new ProtocolError(`node ${node.name}: unexpected answer to accept`);
  return answer.data;
}

/** Status and result of each task; what comes back is validated, never trusted. */
export async function reportTasks(t: NodeTransport, node: NodeConfig, project: string, taskIds: readonly string[]): Promise<TaskReport[]> {
  if (taskIds.length === 0) return [];
  const argv = [node.node_bin, toolPath(node), 'report', '--work-root', node.work_root, '--project', project, ...taskIds.flatMap((id) => ['--task', id])];
  const r = await t.exec(argv);
  if (r.code !== 0) throw failure(node.name, 'cannot read task status', r);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout.toString('utf8'));
  } catch {
    throw new ProtocolError(`node ${node.name}: the task report is not JSON`);
  }
  const parsed = z.array(TaskReport).safeParse(json);
  if (!parsed.success) throw new ProtocolError(`node ${node.name}: the task report does not follow protocol v1`);
  return parsed.data;
}

/** Streams one file of a task dir from the node into `out`. */
export async function fetchTaskFile(t: NodeTransport, node: NodeConfig, project: string, taskId: string, file: string, out: Writable): Promise<void> {
  const argv = [node.node_bin, toolPath(node), 'send', '--work-root', node.work_root, '--project', project, '--task', taskId, '--file', file];
  const r = await t.exec(argv, { stdout: out });
  if (r.code !== 0) throw failure(node.name, `cannot read ${file} of task ${taskId}`, r);
}
