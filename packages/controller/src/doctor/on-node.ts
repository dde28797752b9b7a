import { DEFAULT_AGENT_ARGV, SshError, inert } from '@gsync/core';
import { humanBytes } from '@gsync/core/units';
import { type Config, type NodeConfig, type ProjectConfig, agentProfile, resolveAgent } from '../config.js';
import { ensureNodeTool, hello, needsInstall } from '../node-api/install.js';
import type { NodeTool } from '../node-api/node-tool.js';
import { findCommand, gitOnPath, probeRuntime, probeWorkRoot, type Runtime } from '../node-api/probes.js';
import type { NodeTransport } from '../ssh/transport.js';
import { type Check, failed, ok, problem } from './check.js';

/** Each question to a node is ended after this long without an answer. */
const PROBE_SECONDS = 15;
const PROBE_BYTES = 256 * 1024;
/** Less free space than this at work_root is a problem: each task holds a checkout of its project. */
const MIN_FREE_BYTES = 1024 ** 3;
const NODE_FIX = 'install Node.js 18 or newer on the node, or set node_bin for the node in nodes.json';

export interface OnNode {
  config: Config;
  /** Only this project's agent is looked for; else every project's. */
  project: ProjectConfig | undefined;
  /** Install or replace gsync-node when it is not this controller's build. */
  fix: boolean;
  tool: Promise<NodeTool>;
  /** gsync-ctl's --timeout (ms since the epoch). */
  deadline: number | undefined;
}

/** The link itself broke: every later question would fail the same way, so the node's checks end with one line. */
class LinkLost extends Error {}

/** Every question to the node bounded: a short silence ends it, and so does the command's --timeout. */
function bounded(t: NodeTransport, deadline: number | undefined): NodeTransport {
  return {
    node: t.node,
    exec: (argv, options = {}) => t.exec(argv, { idleSeconds: PROBE_SECONDS, maxOutputBytes: PROBE_BYTES, deadline, ...options }),
    close: () => t.close(),
  };
}

/** What a connected node offers a task: Node.js, git, gsync-node, work_root, free disk, the agent's command. */
export async function checkOnNode(d: OnNode, node: NodeConfig, link: NodeTransport, checks: Check[]): Promise<void> {
  try {
    await askNode(d, node, bounded(link, d.deadline), checks);
  } catch (error) {
    if (!(error instanceof LinkLost)) throw error;
  }
}

async function askNode(d: OnNode, node: NodeConfig, t: NodeTransport, checks: Check[]): Promise<void> {
  /** Runs one check; an error is its line, and a lost link ends the node's checks there. */
  const check = async (name: string, fn: () => Promise<Check | Check[]>) => {
    try {
      checks.push(...[await fn()].flat());
    } catch (error) {
      checks.push(failed(name, error));
      if (error instanceof SshError && error.kind === 'transfer') throw new LinkLost();
    }
  };

  let runtime: Runtime | undefined;
  let runtimeError: unknown;
  try {
    runtime = await probeRuntime(t, node);
  } catch (error) {
    if (error instanceof SshError && error.kind === 'transfer') return void checks.push(failed('node.js', error));
    runtimeError = error;
  }
  const bin = inert(node.node_bin, 100);
  if (runtimeError !== undefined) checks.push(failed('node.js', runtimeError, NODE_FIX));
  else if (!runtime) checks.push(problem('node.js', `"${bin}" is not installed on the node (or not on its PATH)`, NODE_FIX));
  else if (runtime.major < 18) checks.push(problem('node.js', `${runtime.node} (${bin}) is too old: gsync-node needs 18 or newer`, NODE_FIX));
  else checks.push(ok('node.js', `${runtime.node} (${bin})`));

  await check('git', async () => {
    // As gsync-node finds it (on node_bin's PATH); when node_bin does not run, as the login finds it.
    const git = runtime ? runtime.git : await gitOnPath(t);
    if (git) return ok('git', git);
    return ok('git', 'no git: tasks go as files (the scp mode), whatever the project says', 'install git on the node for the bundle and git modes');
  });
  // gsync-node needs a Node.js that runs it: without one, the line above says all there is.
  if (runtime && runtime.major >= 18) await check('gsync-node', () => checkTool(d, node, t));
  await check('work root', async () => {
    const w = await probeWorkRoot(t, node);
    const root = inert(node.work_root, 200);
    const lines: Check[] = [];
    if (!w.dir)
      lines.push(problem('work root', `${root} is not a folder: it, or something in its path, is a file`, 'set work_root for the node in nodes.json'));
    else if (!w.writable) {
      const where = w.exists ? `${root} is not writable` : `${root} cannot be made: the folder above it is not writable`;
      lines.push(problem('work root', `${where} for the node user`, 'make it writable for the node user, or set work_root for the node in nodes.json'));
    } else
      lines.push(
        ok('work root', w.exists ? `${root} is writable` : `${root} does not exist yet: the first dispatch makes it (the folder above it is writable)`),
      );
    if (!w.dir) return lines;
    if (w.freeBytes === undefined) lines.push(ok('free disk', `not known: df on the node gave no answer`));
    else if (w.freeBytes < MIN_FREE_BYTES) {
      lines.push(
        problem(
          'free disk',
          `only ${humanBytes(w.freeBytes)} free at ${root} (at least ${humanBytes(MIN_FREE_BYTES)} is wanted)`,
          'free space there, or set work_root to a bigger disk',
        ),
      );
    } else lines.push(ok('free disk', `${humanBytes(w.freeBytes)} free at ${root}`));
    return lines;
  });
  for (const agent of agentsOf(d, node)) {
    await check('agent', async () => {
      if ('error' in agent) throw agent.error;
      const command = inert(agent.command, 200);
      if (!agent.command.startsWith('/') && agent.command.includes('/'))
        return ok('agent', `${command}${agent.whose}: a path inside each task's checkout, not checked here`);
      const found = await findCommand(t, agent.command);
      if (found) return ok('agent', `${command}${agent.whose}: ${found}`);
      return problem(
        'agent',
        `${command}${agent.whose} is not on the node (not on its PATH)`,
        `install ${command} on the node, or set the agent in nodes.json or projects.json`,
      );
    });
  }
}

/** gsync-node: this controller's build, or not (yet); with --fix, installed when it is not. */
async function checkTool(d: OnNode, node: NodeConfig, t: NodeTransport): Promise<Check> {
  const tool = await d.tool;
  const current = await hello(t, node, undefined);
  if (!needsInstall(current, tool)) return ok('gsync-node', `${tool.version}, this controller's build`);
  if (d.fix) {
    const r = await ensureNodeTool(t, node, tool);
    return ok('gsync-node', `${r.hello.version} installed just now (--fix)`);
  }
  const now = current
    ? `${inert(current.version, 40)}, another build than this controller's: the next dispatch replaces it`
    : 'not installed yet: the first dispatch installs it';
  return ok('gsync-node', now, 'gsync-ctl doctor --fix installs it now');
}

type AgentToCheck = { command: string; whose: string } | { error: unknown };

/** The agent commands the node would run: the project's, or those of every project (the node's own when there is none). */
function agentsOf(d: OnNode, node: NodeConfig): AgentToCheck[] {
  const projects = d.project ? [d.project] : [...d.config.projects.values()];
  if (projects.length === 0) {
    try {
      const argv = node.agent === undefined ? DEFAULT_AGENT_ARGV : agentProfile(d.config, node.agent, `${d.config.nodesFile}: node ${node.name}.agent`);
      return [{ command: argv[0]!, whose: " (the node's agent)" }];
    } catch (error) {
      return [{ error }];
    }
  }
  const byCommand = new Map<string, string[]>();
  const out: AgentToCheck[] = [];
  for (const p of projects) {
    try {
      const command = resolveAgent(d.config, p, node)[0]!;
      byCommand.set(command, [...(byCommand.get(command) ?? []), p.name]);
    } catch (error) {
      out.push({ error });
    }
  }
  for (const [command, names] of byCommand) out.push({ command, whose: ` (${names.length === 1 ? 'project' : 'projects'} ${names.join(', ')})` });
  return out;
}
