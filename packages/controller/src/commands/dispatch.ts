import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FILES,
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
import { getNode, getProject, resolveAgent, type Config, type NodeConfig, type ProjectConfig } from '../config.js';
import { withNode } from '../connect.js';
import { openSession, type Context, type Session } from '../context.js';
import { loadNodeTool } from '../node-tool.js';
import { ensureNodeTool, sendTask } from '../remote.js';
import { readSpec, specFiles, type Spec } from '../spec.js';
import { OPEN_STATES, type Store, type TaskRow } from '../store.js';
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
  taskId: string;
  spec: Pick<Spec, 'data' | 'text' | 'title' | 'sha256'>;
  agent: string[];
  /** A conflict resolution: the conflicted task, whose branch the node merges first. */
  resolves?: { task: TaskRow; ref: string; commit: string };
}

/**
 * Sends one task: base bundle (plus the conflicted branch of a resolution), spec and
 * manifest over one connection, installing gsync-node first if needed, then starts it.
 * The store row exists only while the send is under way or after it succeeded.
 */
export async function sendNewTask(ctx: Context, session: Session, req: TaskToSend): Promise<DispatchResult> {
  const { config, store } = session;
  const { project, node, taskId, spec } = req;
  const existing = store.getTask(project.name, taskId);
  if (existing) {
    throw new UsageError(`task ${taskId} of ${project.name} already exists (on ${existing.node}, ${existing.state})`, {
      hint: 'choose another --task, or leave it out to take the next free id',
    });
  }
  const baseRef = `refs/heads/${project.main_branch}`;
  const baseCommit = await checkRepo(project, baseRef);
  const branch = taskBranch(project.name, taskId, node.name, config.git.branch_prefix);
  const tool = await loadNodeTool(ctx.nodeToolPath);
  const files = specFiles(spec.text);
  const warnings = overlapWarnings(store, project.name, files);

  const temp = await mkdtemp(join(tmpdir(), 'gsync-dispatch-'));
  try {
    const bundlePath = join(temp, FILES.baseBundle);
    await gitOps.createBundle(project.repo_local, bundlePath, [baseRef, ...(req.resolves ? [req.resolves.ref] : [])]);
    const bundle = { name: FILES.baseBundle, size: (await stat(bundlePath)).size, sha256: await sha256File(bundlePath) };
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
      created_at: ctx.now().toISOString(),
    };
    store.insertTask({
      project: project.name,
      task_id: taskId,
      node: node.name,
      branch,
      base_ref: baseRef,
      base_commit: baseCommit,
      spec_title: spec.title,
      spec_sha256: spec.sha256,
      spec_text: spec.text,
      spec_files: JSON.stringify(files),
      resolves: req.resolves?.task.task_id ?? null,
      merge_head: req.resolves?.commit ?? null,
      state: 'dispatching',
    });
    const at = { project: project.name, task_id: taskId, node: node.name };
    for (const warning of warnings) session.log({ ...at, level: 'warn', kind: 'overlap_warning', message: `${taskId}: ${warning}` });
    try {
      const { installed, answer } = await withNode(session.connect, node, async (t) => {
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
      store.updateTask(project.name, taskId, { state: 'dispatched', dispatched_at: store.timestamp(), node_state: answer.start?.state ?? 'received' });
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
      store.deleteTask(project.name, taskId);
      session.log({ ...at, level: 'error', kind: 'dispatch_failed', message: `dispatch of ${taskId} to ${node.name} failed: ${errorMessage(error)}` });
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
    const taskId = checkName('task id', options.task ?? nextTaskId(store.taskIds(project.name)));
    return await sendNewTask(ctx, session, { project, node, taskId, spec, agent });
  } finally {
    session.close();
  }
}
