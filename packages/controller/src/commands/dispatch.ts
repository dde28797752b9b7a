import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FILES,
  SshError,
  failpoint,
  PROTOCOL_VERSION,
  UsageError,
  checkName,
  errorMessage,
  gitOps,
  nextTaskId,
  sha256File,
  taskBranch,
  type TaskManifest,
} from '@gsync/core';
import { getNode, getProject, resolveAgent, secretPolicy, type Config, type NodeConfig, type ProjectConfig } from '../config.js';
import { withNodeRetrying } from '../connect.js';
import { openSession, type Context, type Session } from '../context.js';
import { loadNodeTool } from '../node-tool.js';
import { ensureNodeTool, sendTask } from '../remote.js';
import { readSpec, specFiles, type Spec } from '../spec.js';
import { OPEN_STATES, type NewTask, type Store, type TaskRow } from '../store.js';
import { recoverDispatching } from '../recover.js';
import { checkRepo } from '../repo.js';

export interface DispatchOptions {
  project: string;
  spec: string;
  task?: string;
  node?: string;
}

export interface DispatchResult {
  project: string;
  task_id: string;
  node: string;
  branch: string;
  base_commit: string;
  bundle_bytes: number;
  tool_installed: boolean;
  /** Running tasks given the same files (from the specs' "Files:" lists). */
  warnings: string[];
  resolves?: string;
  /** True when this dispatch found its own earlier, interrupted attempt already on the node. */
  recovered?: boolean;
}

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

export function checkSyncMode(project: ProjectConfig): void {
  if (project.sync_mode !== 'bundle') {
    throw new UsageError(`project ${project.name}: sync_mode "${project.sync_mode}" is not available in this version`, {
      hint: `set "sync_mode": "bundle" for ${project.name} in projects.json`,
    });
  }
}

/** Running tasks of the project that were given some of the same files: a warning, not a refusal. */
export function overlapWarnings(store: Store, project: string, files: readonly string[]): string[] {
  if (files.length === 0) return [];
  const mine = new Set(files);
  const warnings: string[] = [];
  for (const t of store.listTasks(project, OPEN_STATES)) {
    const theirs = t.spec_files ? (JSON.parse(t.spec_files) as string[]) : [];
    const shared = theirs.filter((f) => mine.has(f));
    if (shared.length > 0) {
      warnings.push(`${t.task_id} (running on ${t.node}) was also given ${shared.join(', ')}; the two may conflict when they merge`);
    }
  }
  return warnings;
}

export interface TaskToSend {
  project: ProjectConfig;
  node: NodeConfig;
  /** Default: the next free id, taken atomically. */
  taskId?: string | undefined;
  spec: Pick<Spec, 'data' | 'text' | 'title' | 'sha256'>;
  agent: string[];
  /** A conflict resolution: the conflicted task, whose branch the node merges first. */
  resolves?: { task: TaskRow; ref: string; commit: string };
  /** For `retry`: the task whose spec this sends again. */
  retryOf?: string;
}

/**
 * Branch names join project, task id and node with "-", which the names may hold too:
 * (S01, gpu-1) and (S01-gpu, 1) would share task/p-S01-gpu-1, and a node named
 * `x-wip` could meet another task's -wip branch. Returns the task already using it.
 */
export function branchClash(existing: readonly Pick<TaskRow, 'task_id' | 'branch'>[], branch: string): string | undefined {
  const mine = new Set([branch, `${branch}-wip`]);
  return existing.find((t) => mine.has(t.branch) || mine.has(`${t.branch}-wip`))?.task_id;
}

/** Inserts the task's row as `dispatching` under its id (the next free one when none is given). */
function reserveTask(session: Session, req: TaskToSend, fields: Omit<NewTask, 'project' | 'task_id' | 'node' | 'branch' | 'state'>): { taskId: string; branch: string } {
  const { config, store } = session;
  const { project, node } = req;
  for (let attempt = 0; ; attempt++) {
    const taskId = req.taskId ?? nextTaskId(store.taskIds(project.name));
    const branch = taskBranch(project.name, taskId, node.name, config.git.branch_prefix);
    const taken = req.taskId !== undefined ? store.getTask(project.name, taskId) : undefined;
    if (taken) {
      throw new UsageError(`task ${taskId} of ${project.name} already exists (on ${taken.node}, ${taken.state})`, {
        hint: 'choose another --task, or leave it out to take the next free id',
      });
    }
    const clash = branchClash(store.listTasks(project.name), branch);
    // With a free id taken by another controller in the meantime, the next one is tried.
    if (clash && req.taskId === undefined && attempt < 100) continue;
    if (clash) {
      throw new UsageError(`task ${taskId} on ${node.name} would get the branch ${branch}, which task ${clash} already uses (names are joined with "-")`, {
        hint: 'choose a --task without "-", or another node',
      });
    }
    try {
      store.insertTask({ ...fields, project: project.name, task_id: taskId, node: node.name, branch, state: 'dispatching', dispatch_pid: process.pid });
      return { taskId, branch };
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw error;
      const existing = store.getTask(project.name, taskId);
      if (req.taskId || attempt > 100) {
        throw new UsageError(`task ${taskId} of ${project.name} already exists (on ${existing?.node ?? '?'}, ${existing?.state ?? '?'})`, {
          hint: 'choose another --task, or leave it out to take the next free id',
        });
      }
    }
  }
}

/**
 * Sends one task: base bundle (plus the conflicted branch of a resolution), spec and
 * manifest over one connection, installing gsync-node first if needed, then starts it.
 * The store row exists only while the send is under way or after it succeeded.
 */
export async function sendNewTask(ctx: Context, session: Session, req: TaskToSend): Promise<DispatchResult> {
  const { config, store } = session;
  const { project, node, spec } = req;
  const baseRef = `refs/heads/${project.main_branch}`;
  const baseCommit = await checkRepo(project, baseRef);
  const tool = await loadNodeTool(ctx.nodeToolPath);
  const files = specFiles(spec.text);
  const warnings = overlapWarnings(store, project.name, files);
  // The row is the reservation of the id: two controllers dispatching at once get different ids.
  const { taskId, branch } = reserveTask(session, req, {
    base_ref: baseRef,
    base_commit: baseCommit,
    spec_title: spec.title,
    spec_sha256: spec.sha256,
    spec_text: spec.text,
    spec_files: JSON.stringify(files),
    resolves: req.resolves?.task.task_id ?? null,
    merge_head: req.resolves?.commit ?? null,
    retry_of: req.retryOf ?? null,
  });
  failpoint('dispatch:after-reserve');

  const temp = await mkdtemp(join(tmpdir(), 'gsync-dispatch-'));
  try {
    const bundlePath = join(temp, FILES.baseBundle);
    let bundle: TaskManifest['bundle'];
    try {
      await gitOps.createBundle(project.repo_local, bundlePath, [baseRef, ...(req.resolves ? [req.resolves.ref] : [])]);
      bundle = { name: FILES.baseBundle, size: (await stat(bundlePath)).size, sha256: await sha256File(bundlePath) };
    } catch (error) {
      store.deleteTask(project.name, taskId);
      throw error;
    }
    const manifest: TaskManifest = {
      protocol: PROTOCOL_VERSION,
      project: project.name,
      task_id: taskId,
      node: node.name,
      branch,
      base: { ref: baseRef, commit: baseCommit },
      ...(req.resolves ? { merge: { ref: req.resolves.ref, commit: req.resolves.commit } } : {}),
      bundle,
      spec: { name: FILES.spec, sha256: spec.sha256, title: spec.title },
      agent: {
        argv: req.agent,
        timeout_seconds: project.agent_timeout_seconds ?? node.agent_timeout_seconds ?? config.agentTimeoutSeconds,
        kill_grace_seconds: 5,
      },
      policy: secretPolicy(config, project),
      created_at: ctx.now().toISOString(),
    };
    const at = { project: project.name, task_id: taskId, node: node.name };
    // Only a link that failed after connecting can have delivered the task with its answer lost.
    const mayHaveArrived = (error: unknown) => error instanceof SshError && error.kind === 'transfer';
    let reached = false;
    for (const warning of warnings) session.log({ ...at, level: 'warn', kind: 'overlap_warning', message: `${taskId}: ${warning}` });
    try {
      const retrying = (error: unknown, attempt: number, delayMs: number) => {
        reached ||= mayHaveArrived(error);
        session.log({ ...at, level: 'warn', kind: 'transfer_retry', message: `${node.name}: ${errorMessage(error)}; sending ${taskId} again in ${delayMs / 1000} s (${attempt}/${config.transferRetries})` });
      };
      // The same manifest each time: a node that already has the task from a lost answer says so instead of refusing.
      const { installed, answer } = await withNodeRetrying(session.connect, node, config.transferRetries, retrying, async (t) => {
        const { installed } = await ensureNodeTool(t, node, tool);
        if (installed) session.log({ ...at, level: 'info', kind: 'node_tool_installed', message: `installed gsync-node ${tool.version} on ${node.name}` });
        const answer = await sendTask(t, node, project.name, taskId, {
          manifest: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`),
          spec: spec.data,
          bundlePath,
          bundleSize: bundle.size,
        });
        return { installed, answer };
      });
      failpoint('dispatch:after-send');
      store.updateTask(project.name, taskId, { state: 'dispatched', dispatched_at: store.timestamp(), node_state: answer.start?.state ?? 'received', dispatch_pid: null, last_seen_at: store.timestamp() });
      if (req.resolves) store.updateTask(project.name, req.resolves.task.task_id, { resolved_by: taskId });
      session.log({
        ...at,
        level: 'info',
        kind: 'dispatched',
        message: `dispatched ${taskId} to ${node.name} on ${branch} (base ${baseCommit.slice(0, 12)}, ${bundle.size} bytes)${req.resolves ? `, resolving ${req.resolves.task.task_id}` : ''}`,
        data: { base: baseCommit, bundle, pid: answer.start?.pid, resolves: req.resolves?.task.task_id, files },
      });
      return {
        project: project.name,
        task_id: taskId,
        node: node.name,
        branch,
        base_commit: baseCommit,
        bundle_bytes: bundle.size,
        tool_installed: installed,
        warnings,
        ...(req.resolves ? { resolves: req.resolves.task.task_id } : {}),
      };
    } catch (error) {
      if (reached || mayHaveArrived(error)) {
        // The link failed: the node may hold the task with only its answer lost. The row stays
        // `dispatching` without an owner, and the next dispatch or pull settles it with the node.
        store.updateTask(project.name, taskId, { dispatch_pid: null });
        session.log({ ...at, level: 'error', kind: 'dispatch_failed', message: `dispatch of ${taskId} to ${node.name} failed: ${errorMessage(error)}; the next dispatch or pull asks ${node.name} whether it arrived` });
      } else {
        store.deleteTask(project.name, taskId);
        session.log({ ...at, level: 'error', kind: 'dispatch_failed', message: `dispatch of ${taskId} to ${node.name} failed: ${errorMessage(error)}` });
      }
      throw error;
    }
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

export async function dispatch(ctx: Context, options: DispatchOptions): Promise<DispatchResult> {
  const session = await openSession(ctx);
  try {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    checkSyncMode(project);
    const node = options.node ? getNode(config, options.node) : pickNode(config, store);
    const agent = resolveAgent(config, project, node);
    const spec = await readSpec(options.spec, agent);
    const taskId = options.task === undefined ? undefined : checkName('task id', options.task);
    const recovered = await recoverDispatching(ctx, session, project);
    const again = recovered.find((t) => t.spec_sha256 === spec.sha256 && t.state === 'dispatched' && (taskId === undefined || t.task_id === taskId));
    if (again) {
      // The same dispatch was cut off after the node had the task: finish it rather than send it twice.
      return { project: project.name, task_id: again.task_id, node: again.node, branch: again.branch, base_commit: again.base_commit, bundle_bytes: 0, tool_installed: false, warnings: [], recovered: true };
    }
    return await sendNewTask(ctx, session, { project, node, taskId, spec, agent });
  } finally {
    session.close();
  }
}
