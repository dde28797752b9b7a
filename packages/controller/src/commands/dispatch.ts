import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { UsageError, checkName, errorMessage } from '@gsync/core';
import { carrierFor } from '../carrier/carrier.js';
import { getNode, getProject, resolveAgent } from '../config.js';
import { withSession, type Context } from '../context.js';
import { pickNode } from '../dispatch/pick-node.js';
import { recoverDispatching } from '../dispatch/recover.js';
import { deliverTask, reserveNewTask, sendNewTask, type DispatchResult, type ReservedTask } from '../dispatch/send-task.js';
import { readSpec } from '../dispatch/spec.js';
import { NodeLinks } from '../ssh/links.js';
import { isDirectory } from '../is-directory.js';

export interface DispatchOptions {
  project: string;
  /** One spec file, or several (a folder stands for its .md and .txt files, in name order). */
  spec: string | readonly string[];
  task?: string;
  node?: string;
}

export interface DispatchAllResult {
  dispatched: DispatchResult[];
  /** Specs that could not be sent, each with its one-line reason (the others went out). */
  failed: { spec: string; error: string; cause: unknown }[];
}

/** The spec files named: a folder stands for the .md and .txt files in it, in name order. */
async function specPaths(specs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of specs) {
    const isDir = await isDirectory(path);
    if (!isDir) {
      out.push(path);
      continue;
    }
    const names = (await readdir(path)).filter((n) => /\.(md|txt)$/i.test(n)).sort();
    if (names.length === 0) throw new UsageError(`spec folder ${path} has no .md or .txt file`);
    out.push(...names.map((n) => join(path, n)));
  }
  return out;
}

/** `gsync-ctl dispatch` with one spec: sends it to a node (the least busy one unless named) and starts its agent. */
export async function dispatch(ctx: Context, options: DispatchOptions): Promise<DispatchResult> {
  const specs = typeof options.spec === 'string' ? [options.spec] : options.spec;
  if (specs.length !== 1) throw new UsageError('dispatch() takes one spec; use dispatchAll for several');
  return withSession(ctx, async (session) => {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    carrierFor(project);
    const node = options.node ? getNode(config, options.node) : pickNode(config, store);
    const agent = resolveAgent(config, project, node);
    const spec = await readSpec(specs[0]!, agent);
    const taskId = options.task === undefined ? undefined : checkName('task id', options.task);
    const recovered = await recoverDispatching(session, project);
    const again = recovered.find((t) => t.spec_sha256 === spec.sha256 && t.state === 'dispatched' && (taskId === undefined || t.task_id === taskId));
    if (again) {
      // The same dispatch was cut off after the node had the task: finish it rather than send it twice.
      return {
        project: project.name,
        task_id: again.task_id,
        node: again.node,
        branch: again.branch,
        base_commit: again.base_commit,
        bundle_bytes: 0,
        tool_installed: false,
        warnings: [],
        recovered: true,
      };
    }
    return sendNewTask(session, { project, node, taskId, spec, agent });
  });
}

/**
 * `gsync-ctl dispatch` with several specs: every spec is read and checked first (a bad
 * one stops everything, nothing sent), ids are taken in the order given (the merge
 * order), each spec goes to the least busy node counting those planned before it,
 * and the nodes are sent their tasks in parallel, one connection each.
 */
export async function dispatchAll(ctx: Context, options: Omit<DispatchOptions, 'task'>): Promise<DispatchAllResult> {
  return withSession(ctx, async (session) => {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    carrierFor(project);
    const paths = await specPaths(typeof options.spec === 'string' ? [options.spec] : options.spec);
    const planned = new Map<string, number>();
    const plans = [];
    for (const path of paths) {
      const node = options.node ? getNode(config, options.node) : pickNode(config, store, planned);
      planned.set(node.name, (planned.get(node.name) ?? 0) + 1);
      const agent = resolveAgent(config, project, node);
      plans.push({ path, node, agent, spec: await readSpec(path, agent) });
    }
    await recoverDispatching(session, project);
    const reserved: { path: string; task: ReservedTask }[] = [];
    try {
      for (const p of plans) reserved.push({ path: p.path, task: await reserveNewTask(session, { project, node: p.node, spec: p.spec, agent: p.agent }) });
    } catch (error) {
      // All or nothing until the first byte goes out: the ids taken so far are free again.
      for (const r of reserved) store.deleteTask(project.name, r.task.taskId);
      throw error;
    }
    const links = new NodeLinks(session.connect);
    const outcomes = new Map<string, DispatchResult | { spec: string; error: string; cause: unknown }>();
    try {
      const byNode = new Map<string, typeof reserved>();
      for (const r of reserved) byNode.set(r.task.req.node.name, [...(byNode.get(r.task.req.node.name) ?? []), r]);
      const limit = pLimit(4);
      await Promise.all(
        [...byNode.values()].map((tasks) =>
          limit(async () => {
            for (const { path, task } of tasks) {
              try {
                outcomes.set(task.taskId, await deliverTask(session, task, links));
              } catch (error) {
                outcomes.set(task.taskId, { spec: path, error: errorMessage(error), cause: error });
              }
            }
          }),
        ),
      );
    } finally {
      await links.closeAll();
    }
    const all = reserved.map((r) => outcomes.get(r.task.taskId)!);
    return {
      dispatched: all.filter((o): o is DispatchResult => 'task_id' in o),
      failed: all.filter((o): o is { spec: string; error: string; cause: unknown } => !('task_id' in o)),
    };
  });
}
