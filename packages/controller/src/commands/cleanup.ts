import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, checkName, errorMessage, gitOps, incomingRef, inert, treeBytes } from '@gsync/core';
import { deleteRemoteBranch } from '../carrier/remote.js';
import { getProject, type NodeConfig, type ProjectConfig } from '../config.js';
import { withSession, type Context, type Session } from '../context.js';
import { removeTaskDirs } from '../node-api/calls.js';
import { ensureNodeTool } from '../node-api/install.js';
import { loadNodeTool } from '../node-api/node-tool.js';
import type { TaskState } from '../lifecycle/states.js';
import { withNode } from '../ssh/connect.js';
import { withProjectLock } from '../store/lock.js';
import { tasksByNode, type TaskRow } from '../store/store.js';

export interface CleanupOptions {
  /** One project, or every one with `all`. */
  project?: string;
  all?: boolean;
  /** Only what is older than this: `30d`, `12h`, `90m`, `45s` or `0`. */
  olderThan?: string;
  dryRun?: boolean;
}

export interface CleanupItem {
  project: string;
  task_id?: string;
  node?: string;
  what: 'branch' | 'remote_branch' | 'ref' | 'report' | 'node_dir';
  name: string;
  bytes: number;
}

export interface CleanupResult {
  dry_run: boolean;
  /** What went (with --dry-run: what would go). */
  removed: CleanupItem[];
  /** What was looked at and stays, with why. */
  kept: (Omit<CleanupItem, 'bytes'> & { reason: string })[];
  unreachable: { node: string; error: string }[];
  events_dropped: number;
  /** The store's file before and after (the same with --dry-run). */
  store_bytes: { before: number; after: number };
  bytes: number;
}

/** Tasks whose leftovers may go: their work is on main, or set aside for another task. */
const DONE_WITH: readonly TaskState[] = ['merged', 'empty', 'retried', 'resolved'];
/** Under a task's report dir, what the user's own saves were kept in: never deleted. */
const USER_SAVES = 'saved-during-merge';

export function parseAge(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim());
  if (!m || (m[2] === '' && Number(m[1]) !== 0))
    throw new UsageError(`--older-than ${JSON.stringify(text)}: give a number and a unit, such as 30d, 12h, 90m or 45s (or 0 for everything)`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400, '': 0 }[m[2] as 's' | 'm' | 'h' | 'd' | ''] * 1000;
}

/** When a task stopped needing anything: merged, finished, or at least sent. */
const doneAt = (t: TaskRow) => Date.parse(t.merged_at ?? t.finished_at ?? t.collected_at ?? t.dispatched_at ?? t.created_at);

/**
 * `gsync-ctl cleanup`: removes what finished tasks left behind, older than a limit:
 * their branches once merged into main (checked, not assumed: a branch whose head is not
 * in main stays), gsync's refs, their reports, their dirs on the nodes; and events older
 * than retention_days. Never an unmerged branch, a -wip branch, a conflicted task's
 * branch, anything of a task still open, or the saves kept aside during a merge.
 */
export async function cleanup(ctx: Context, options: CleanupOptions): Promise<CleanupResult> {
  if (!options.all && !options.project) throw new UsageError('name a project with --project, or clean every project with --all');
  if (options.all && options.project) throw new UsageError('give --project or --all, not both');
  const age = parseAge(options.olderThan ?? '0');
  return withSession(ctx, async (session) => {
    const { config, store } = session;
    const projects = options.all ? [...config.projects.values()] : [getProject(config, checkName('project', options.project!))];
    const storeFile = join(ctx.configDir, 'gsync.db');
    const before = (await stat(storeFile)).size;
    const result: CleanupResult = {
      dry_run: options.dryRun === true,
      removed: [],
      kept: [],
      unreachable: [],
      events_dropped: 0,
      store_bytes: { before, after: before },
      bytes: 0,
    };
    const cutoff = ctx.now().getTime() - age;
    for (const project of projects) await withProjectLock(store, project.name, ctx.pid, () => cleanProject(session, project, cutoff, result));
    const retention = new Date(ctx.now().getTime() - config.retentionDays * 86400_000).toISOString();
    if (!result.dry_run) {
      result.events_dropped = store.dropEventsBefore(retention);
      store.compact();
      result.store_bytes.after = (await stat(storeFile)).size;
    } else {
      result.events_dropped = (store.db.prepare('SELECT COUNT(*) AS n FROM events WHERE at < ?').get(retention) as { n: number }).n;
    }
    result.bytes = result.removed.reduce((sum, r) => sum + r.bytes, 0) + Math.max(0, result.store_bytes.before - result.store_bytes.after);
    return result;
  });
}

async function cleanProject(session: Session, project: ProjectConfig, cutoff: number, result: CleanupResult): Promise<void> {
  const { store } = session;
  const repo = project.repo_local;
  const dry = result.dry_run;
  const main = await gitOps.resolveCommit(repo, `refs/heads/${project.main_branch}`);
  if (!main) throw new UsageError(`project ${project.name}: ${repo} has no branch ${project.main_branch}`);
  const checkedOut = new Map((await gitOps.listWorktrees(repo)).filter((w) => w.branch).map((w) => [w.branch!, w.path]));
  const at = { project: project.name };
  const tasks = store.listTasks(project.name, DONE_WITH).filter((t) => !t.cleaned_at && doneAt(t) <= cutoff);
  const clean = new Map<string, boolean>(tasks.map((t) => [t.task_id, true]));

  /** A ref goes only when its commit is on main (and no worktree has it checked out). */
  const dropRef = async (t: TaskRow, ref: string, what: 'branch' | 'ref'): Promise<void> => {
    const oid = await gitOps.resolveCommit(repo, ref);
    if (!oid) return;
    const item = { ...at, task_id: t.task_id, what, name: ref.replace(/^refs\/heads\//, '') };
    const where = checkedOut.get(ref);
    if (where) return void result.kept.push({ ...item, reason: `checked out in ${where}` });
    if (!(await gitOps.isAncestor(repo, oid, main))) {
      clean.set(t.task_id, false);
      return void result.kept.push({ ...item, reason: `its commit ${oid.slice(0, 12)} is not on ${project.main_branch}` });
    }
    if (!dry) await gitOps.git(repo, ['update-ref', '-d', ref, oid]);
    result.removed.push({ ...item, bytes: 0 });
  };

  for (const t of tasks) {
    await dropRef(t, `refs/heads/${t.branch}`, 'branch');
    await dropRef(t, incomingRef(project.name, t.task_id, t.node), 'ref');
    // Plan A: the task branch on the shared remote, while it is still where gsync left it.
    if (project.sync_mode === 'git' && t.state !== 'retried') {
      const at = [t.result_head, t.base_commit].filter((c): c is string => !!c);
      const why = await deleteRemoteBranch(project, t.branch, at, dry).catch((error: unknown) => errorMessage(error));
      if (!why) result.removed.push({ project: project.name, task_id: t.task_id, what: 'remote_branch', name: t.branch, bytes: 0 });
      else if (why !== 'not there') {
        clean.set(t.task_id, false);
        result.kept.push({ project: project.name, task_id: t.task_id, what: 'remote_branch', name: t.branch, reason: inert(why, 300) });
      }
    }
    if (t.wip_branch && (await gitOps.resolveCommit(repo, `refs/heads/${t.wip_branch}`)))
      result.kept.push({ ...at, task_id: t.task_id, what: 'branch', name: t.wip_branch, reason: 'a -wip branch is never deleted' });
    const reports = join(session.ctx.configDir, 'reports', project.name, t.task_id);
    for (const name of await readdir(reports).catch(() => [] as string[])) {
      const path = join(reports, name);
      if (name === USER_SAVES) {
        result.kept.push({ ...at, task_id: t.task_id, what: 'report', name: path, reason: 'saves of yours kept aside during a merge are never deleted' });
        continue;
      }
      result.removed.push({ ...at, task_id: t.task_id, what: 'report', name: path, bytes: await treeBytes(path) });
      if (!dry) await rm(path, { recursive: true, force: true });
    }
    if (!dry && existsSync(reports) && (await readdir(reports)).length === 0) await rm(reports, { recursive: true, force: true });
  }

  // Each node removes the dirs of these tasks (it refuses any whose task has not ended).
  const byNode = tasksByNode(tasks);
  const tool = byNode.size > 0 ? await loadNodeTool(session.ctx.nodeToolPath) : undefined;
  for (const [name, list] of byNode) {
    const node = session.config.nodes.find((n) => n.name === name);
    if (!node) {
      for (const t of list)
        result.kept.push({ ...at, task_id: t.task_id, node: name, what: 'node_dir', name: t.task_id, reason: `node ${name} is no longer in nodes.json` });
      continue;
    }
    await removeOnNode(session, node, project, list, tool!, result, clean);
  }

  // Whatever a pull left for itself is not in use under the project's lock.
  const staging = `refs/gsync/staging/${project.name}`;
  if (await gitOps.resolveCommit(repo, staging)) {
    if (!dry) await gitOps.deleteRef(repo, staging);
    result.removed.push({ ...at, what: 'ref', name: staging, bytes: 0 });
  }
  // Run reports older than the limit.
  const runReports = join(session.ctx.configDir, 'reports', project.name);
  for (const name of await readdir(runReports).catch(() => [] as string[])) {
    if (!name.endsWith('-merge_report.md')) continue;
    const path = join(runReports, name);
    const s = await stat(path);
    if (s.mtimeMs > cutoff) continue;
    if (!dry) await rm(path, { force: true });
    result.removed.push({ ...at, what: 'report', name: path, bytes: s.size });
  }

  if (!dry) {
    const now = store.timestamp();
    for (const t of tasks) if (clean.get(t.task_id)) store.updateTask(project.name, t.task_id, { cleaned_at: now });
    session.log({
      project: project.name,
      level: 'info',
      kind: 'cleanup',
      message: `cleanup of ${project.name}: ${result.removed.filter((r) => r.project === project.name).length} item(s) removed`,
    });
  }
}

async function removeOnNode(
  session: Session,
  node: NodeConfig,
  project: ProjectConfig,
  tasks: TaskRow[],
  tool: Awaited<ReturnType<typeof loadNodeTool>>,
  result: CleanupResult,
  clean: Map<string, boolean>,
): Promise<void> {
  const at = { project: project.name, node: node.name };
  try {
    const answers = await withNode(session.connect, node, async (t) => {
      await ensureNodeTool(t, node, tool, project.name);
      return removeTaskDirs(
        t,
        node,
        project.name,
        tasks.map((x) => x.task_id),
        result.dry_run,
      );
    });
    for (const a of answers) {
      const item = { ...at, task_id: a.task_id, what: 'node_dir' as const, name: `${node.work_root}/${project.name}/tasks/${a.task_id}` };
      if (a.removed) result.removed.push({ ...item, bytes: a.bytes });
      else if (a.kept !== 'not on this node') {
        clean.set(a.task_id, false);
        result.kept.push({ ...item, reason: inert(a.kept ?? 'the node kept it', 200) });
      }
    }
  } catch (error) {
    // Asked again by the next cleanup: these tasks are not marked clean.
    for (const t of tasks) clean.set(t.task_id, false);
    if (!result.unreachable.some((u) => u.node === node.name)) result.unreachable.push({ node: node.name, error: inert(errorMessage(error), 2000) });
  }
}
