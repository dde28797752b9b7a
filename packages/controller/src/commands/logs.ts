import { StringDecoder } from 'node:string_decoder';
import { type NodeState, checkName } from '@gsync/core';
import { getNode, getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { ensureNodeTool } from '../node-api/install.js';
import { loadNodeTool } from '../node-api/node-tool.js';
import { tailAgentLog } from '../node-api/tail.js';
import { withNode } from '../ssh/connect.js';

/** The most of the log one call brings: the last MiB of a long log, and a follow asks again after each. */
const CALL_BYTES = 1024 * 1024;
/** How long one follow call waits on the node for the log to grow. */
const FOLLOW_SECONDS = 30;
/** Follow calls that come back at once, the log not flowing, are this far apart at least. */
const FOLLOW_MIN_MS = 1000;

/** A piece of the log for the caller to show: text (raw, for it to escape), or how many bytes were left out. */
export type LogPiece = { kind: 'text'; text: string } | { kind: 'skipped'; bytes: number };

export interface LogsOptions {
  project: string;
  task: string;
  /** Keep reading as the log grows, until the task ends. */
  follow?: boolean;
  /** Only the last N lines of what the log holds now (following, then everything new). */
  lines?: number;
  /** Gets the log as it comes; a promise holds the reading back until the piece is out. */
  onLog: (piece: LogPiece) => void | Promise<void>;
  maxBytes?: number;
  followSeconds?: number;
}

export interface LogsResult {
  task_id: string;
  node: string;
  /** False when the node has no dir for the task: it is not there yet, or no longer. */
  on_node: boolean;
  /** The task's state in the controller's store. */
  task_state: string;
  /** The task's state on the node when reading ended. */
  state: NodeState | null;
  final: boolean;
  /** Its run ended without a final state (killed): the next pull finishes it. */
  stopped: boolean;
  error?: string;
  /** Bytes of the log up to where reading ended. */
  offset: number;
}

/** The last `n` lines of `text` (a last line without its newline counts). */
export function lastLines(text: string, n: number): string {
  if (n <= 0) return '';
  let i = text.endsWith('\n') ? text.length - 1 : text.length;
  for (let k = 0; k < n; k++) {
    const j = text.lastIndexOf('\n', i - 1);
    if (j === -1) return text;
    i = j;
  }
  return text.slice(i + 1);
}

/**
 * `gsync-ctl logs`: the agent's log of a task, read from its node with `gsync-node tail`,
 * each call bounded in bytes and time. Following, it asks again from where the last call
 * ended until the task's state is final, its run is gone, or --timeout.
 */
export async function logs(ctx: Context, options: LogsOptions): Promise<LogsResult> {
  return withSession(ctx, async (session) => {
    const project = getProject(session.config, checkName('project', options.project));
    const taskId = checkName('task id', options.task);
    const task = session.store.taskNamed(project.name, taskId);
    const node = getNode(session.config, task.node);
    const tool = await loadNodeTool(ctx.nodeToolPath);
    const maxBytes = options.maxBytes ?? CALL_BYTES;
    const decoder = new StringDecoder('utf8');
    const result: LogsResult = {
      task_id: taskId,
      node: node.name,
      on_node: true,
      task_state: task.state,
      state: null,
      final: false,
      stopped: false,
      offset: 0,
    };
    await withNode(session.connect, node, async (t) => {
      // An older gsync-node has no tail: the node gets this build's, as a dispatch would give it.
      await ensureNodeTool(t, node, tool);
      for (let first = true; ; first = false) {
        // The first call reads what is there; with --lines it is cut once whole.
        const window: string[] = [];
        const trim = first && options.lines !== undefined;
        const left = ctx.deadline === undefined ? Infinity : Math.floor((ctx.deadline - Date.now()) / 1000);
        if (!first && left < 1) return;
        const asked = Date.now();
        let got = 0;
        const end = await tailAgentLog(
          t,
          node,
          project.name,
          taskId,
          { from: result.offset, follow: !first, maxBytes, seconds: Math.max(0, Math.min(options.followSeconds ?? FOLLOW_SECONDS, left)) },
          {
            data: (bytes) => {
              got += bytes.length;
              const text = decoder.write(bytes);
              if (trim) window.push(text);
              else if (text) return options.onLog({ kind: 'text', text });
            },
            // Cut to its last lines anyway: what was left before them is not worth a word.
            skipped: (bytes) => (trim ? undefined : options.onLog({ kind: 'skipped', bytes })),
          },
        );
        if (trim) {
          const text = lastLines(window.join(''), options.lines!);
          if (text) await options.onLog({ kind: 'text', text });
        }
        if (!end.exists) {
          result.on_node = false;
          return;
        }
        Object.assign(result, { state: end.state ?? null, final: end.final === true, stopped: end.stopped === true, offset: end.offset ?? result.offset });
        if (end.error) result.error = end.error;
        if (!options.follow || result.final || result.stopped) return;
        // A follow that came back at once with the log not flowing is asked again no sooner than a second on.
        const early = FOLLOW_MIN_MS - (Date.now() - asked);
        if (!first && early > 0 && got < maxBytes) await new Promise((r) => setTimeout(r, early));
      }
    });
    const rest = decoder.end();
    if (rest) await options.onLog({ kind: 'text', text: rest });
    return result;
  });
}
