import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { checkName, errorMessage, writeFileAtomic, type TaskReport } from '@gsync/core';
import { collectTask } from '../collect.js';
import { getNode, getProject, type ProjectConfig } from '../config.js';
import { withNode } from '../connect.js';
import { openSession, type Context, type Session } from '../context.js';
import { acquireLock } from '../lock.js';
import { mergeIdentity, mergeIntoMain } from '../merge.js';
import { reportTasks } from '../remote.js';
import { renderReport, type ReportTask, type RunReport } from '../report.js';
import { checkRepo } from '../repo.js';
import { ATTENTION_STATES, OPEN_STATES, type TaskRow } from '../store.js';
import { EXIT } from '../exit-codes.js';

export interface PullOptions {
  project: string;
  wait?: boolean;
  /** Seconds between polls with --wait. */
  interval?: number;
  /** Give up waiting after this many seconds. */
  timeout?: number;
  /** Merge each task as soon as it is collected, instead of strictly in dispatch order. */
  anyOrder?: boolean;
  sleep?: (ms: number) => Promise<void>;
}

function describe(task: TaskRow, outcome: ReportTask['outcome'], extra: Partial<ReportTask> = {}): ReportTask {
  return {
    task_id: task.task_id,
    node: task.node,
    branch: task.branch,
    title: task.spec_title,
    outcome,
    dispatched_at: task.dispatched_at,
    finished_at: task.finished_at,
    ...extra,
  };
}

/** What to tell the user about a task that needs them, from its stored row. */
export function attention(task: TaskRow, project: Pick<ProjectConfig, 'name' | 'main_branch'>): ReportTask {
  const paths = task.conflict_paths ? (JSON.parse(task.conflict_paths) as string[]) : undefined;
  const base = { reason: task.error ?? undefined, wip_branch: task.wip_branch ?? undefined };
  switch (task.state) {
    case 'conflicted':
      return describe(task, 'conflicted', {
        ...base,
        conflict_paths: paths,
        next_step: `main was left as it was; resolve by hand with: git checkout ${project.main_branch} && git merge ${task.branch}`,
      });
    case 'rejected':
      return describe(task, 'rejected', { ...base, next_step: 'nothing from this result was merged; inspect the node and dispatch again' });
    default:
      return describe(task, task.state === 'timeout' ? 'timeout' : 'failed', {
        ...base,
        next_step: `read agent.log of ${project.name} task ${task.task_id} on ${task.node}, then dispatch again`,
      });
  }
}

/** Asks each node about its open tasks and collects the finished ones. Nodes are handled in parallel. */
async function collectAll(session: Session, project: ProjectConfig, tasks: ReportTask[], unreachable: RunReport['unreachable']): Promise<void> {
  const { store, config } = session;
  const open = store.listTasks(project.name, ['dispatched']);
  const byNode = new Map<string, TaskRow[]>();
  for (const t of open) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  const limit = pLimit(4);
  await Promise.all(
    [...byNode].map(([nodeName, nodeTasks]) =>
      limit(async () => {
        const at = { project: project.name, node: nodeName };
        try {
          const node = getNode(config, nodeName);
          await withNode(session.connect, node, async (t) => {
            const reports = await reportTasks(t, node, project.name, nodeTasks.map((x) => x.task_id));
            for (const task of nodeTasks) {
              const report = reports.find((r) => r.task_id === task.task_id);
              await settle(session, project, task, report, async (result) =>
                collectTask({ project, node, task, result, transport: t, maxBytes: config.maxResultBytes }), tasks);
            }
          });
        } catch (error) {
          unreachable.push({ node: nodeName, error: errorMessage(error) });
          session.log({ ...at, level: 'warn', kind: 'node_unreachable', message: `could not ask ${nodeName} about its tasks: ${errorMessage(error)}` });
        }
      }),
    ),
  );
}

/** Moves one task on from what its node said. */
async function settle(
  session: Session,
  project: ProjectConfig,
  task: TaskRow,
  report: TaskReport | undefined,
  collect: (result: NonNullable<TaskReport['result']>) => ReturnType<typeof collectTask>,
  tasks: ReportTask[],
): Promise<void> {
  const { store } = session;
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  const state = report?.status?.state;
  if (!report || !report.exists || !state) {
    const why = report?.error ?? 'the task directory is missing on the node';
    store.updateTask(project.name, task.task_id, { state: 'failed', error: why, finished_at: store.timestamp() });
    session.log({ ...at, level: 'error', kind: 'task_lost', message: `${task.task_id}: ${why}` });
    tasks.push(attention(store.getTask(project.name, task.task_id)!, project));
    return;
  }
  if (state !== task.node_state) store.updateTask(project.name, task.task_id, { node_state: state });
  if (!['done', 'empty', 'failed', 'timeout'].includes(state)) return;
  const finished_at = report.status?.finished_at ?? store.timestamp();
  if (state === 'empty') {
    store.updateTask(project.name, task.task_id, { state: 'empty', finished_at });
    session.log({ ...at, level: 'info', kind: 'empty', message: `${task.task_id} on ${task.node}: the agent changed nothing` });
    tasks.push(describe(store.getTask(project.name, task.task_id)!, 'empty'));
    return;
  }
  let wipBranch: string | undefined;
  if (report.result) {
    const outcome = await collect(report.result);
    if (outcome.kind === 'rejected') {
      store.updateTask(project.name, task.task_id, { state: 'rejected', error: outcome.reason, finished_at });
      session.log({ ...at, level: 'error', kind: 'rejected', message: `${task.task_id} on ${task.node} rejected: ${outcome.reason}` });
      tasks.push(attention(store.getTask(project.name, task.task_id)!, project));
      return;
    }
    const fields = { result_head: outcome.head, result_commits: outcome.commits, changed_paths: JSON.stringify(outcome.paths), finished_at, collected_at: store.timestamp() };
    if (!outcome.wip) {
      store.updateTask(project.name, task.task_id, { ...fields, state: 'collected' });
      session.log({
        ...at,
        level: 'info',
        kind: 'collected',
        message: `collected ${task.task_id} from ${task.node}: ${outcome.commits} commit(s), ${outcome.paths.length} path(s) on ${outcome.branch}`,
        data: { head: outcome.head, paths: outcome.paths },
      });
      return;
    }
    wipBranch = outcome.branch;
    store.updateTask(project.name, task.task_id, { ...fields, wip_branch: wipBranch });
  }
  const why = report.status?.error ?? `the agent ended as ${state}`;
  store.updateTask(project.name, task.task_id, { state: state === 'timeout' ? 'timeout' : 'failed', error: why, finished_at });
  session.log({ ...at, level: 'error', kind: state, message: `${task.task_id} on ${task.node} ${state}: ${why}${wipBranch ? ` (work in progress on ${wipBranch})` : ''}` });
  tasks.push(attention(store.getTask(project.name, task.task_id)!, project));
}

/** Merges collected tasks into main in dispatch order; conflicts and refusals leave main as it was. */
async function mergeAll(session: Session, project: ProjectConfig, mainRef: string, tasks: ReportTask[], anyOrder: boolean): Promise<void> {
  const { store } = session;
  const env = await mergeIdentity(project.repo_local);
  // In dispatch order: a task waits while one dispatched before it is still running.
  const firstRunning = anyOrder ? undefined : store.listTasks(project.name, OPEN_STATES)[0];
  for (const task of store.listTasks(project.name, ['collected'])) {
    const at = { project: project.name, task_id: task.task_id, node: task.node };
    const paths = task.changed_paths ? (JSON.parse(task.changed_paths) as string[]) : [];
    if (firstRunning && firstRunning.seq < task.seq) {
      const reason = `waiting for ${firstRunning.task_id} (dispatched earlier, on ${firstRunning.node}) to finish: tasks merge in dispatch order`;
      tasks.push(describe(task, 'waiting', { reason, commits: task.result_commits ?? undefined, changed_paths: paths, next_step: 'run pull-bundles again later, or with --any-order' }));
      continue;
    }
    const outcome = await mergeIntoMain({
      repo: project.repo_local,
      mainRef,
      head: task.result_head!,
      message: `Merge ${task.branch}\n\ntask/${task.task_id}: ${task.spec_title}\nNode: ${task.node}\n`,
      env,
    });
    if (outcome.kind === 'merged') {
      store.updateTask(project.name, task.task_id, { state: 'merged', merge_commit: outcome.commit, merged_at: store.timestamp() });
      session.log({ ...at, level: 'info', kind: 'merged', message: `merged ${task.task_id} (${task.branch}) into ${project.main_branch} as ${outcome.commit.slice(0, 12)}`, data: { commit: outcome.commit } });
      tasks.push(describe(store.getTask(project.name, task.task_id)!, 'merged', { commits: task.result_commits ?? undefined, changed_paths: paths, merge_commit: outcome.commit }));
    } else if (outcome.kind === 'conflicted') {
      store.updateTask(project.name, task.task_id, { state: 'conflicted', conflict_paths: JSON.stringify(outcome.paths), error: outcome.messages.join('; ') || null });
      session.log({ ...at, level: 'warn', kind: 'conflicted', message: `${task.task_id} (${task.branch}) conflicts with ${project.main_branch} in ${outcome.paths.join(', ')}; not merged`, data: { paths: outcome.paths, messages: outcome.messages } });
      tasks.push({ ...attention(store.getTask(project.name, task.task_id)!, project), commits: task.result_commits ?? undefined, changed_paths: paths });
    } else {
      session.log({ ...at, level: 'warn', kind: 'merge_waiting', message: `${task.task_id}: ${outcome.reason}` });
      tasks.push(describe(task, 'waiting', { reason: outcome.reason, commits: task.result_commits ?? undefined, changed_paths: paths, next_step: 'run pull-bundles again once the checkout is clean' }));
    }
  }
}

export function exitCodeFor(report: Pick<RunReport, 'tasks' | 'pending' | 'outstanding' | 'unreachable'>): number {
  const needsAttention = (t: ReportTask) => ['conflicted', 'failed', 'timeout', 'rejected'].includes(t.outcome);
  if (report.tasks.some(needsAttention) || report.outstanding.length > 0) return EXIT.attention;
  if (report.unreachable.length > 0) return EXIT.ssh;
  if (report.pending.length > 0 || report.tasks.some((t) => t.outcome === 'waiting')) return EXIT.pending;
  return EXIT.ok;
}

async function pullOnce(session: Session, project: ProjectConfig, mainRef: string, tasks: ReportTask[], unreachable: RunReport['unreachable'], anyOrder: boolean): Promise<void> {
  await collectAll(session, project, tasks, unreachable);
  await mergeAll(session, project, mainRef, tasks, anyOrder);
}

export async function pullBundles(ctx: Context, options: PullOptions): Promise<RunReport> {
  const session = await openSession(ctx);
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  try {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    const mainRef = `refs/heads/${project.main_branch}`;
    const release = await acquireLock(join(ctx.configDir, 'locks', `${project.name}.lock`), `project ${project.name}`);
    try {
      const started_at = ctx.now().toISOString();
      const main_before = await checkRepo(project, mainRef);
      const tasks: ReportTask[] = [];
      let unreachable: RunReport['unreachable'] = [];
      const deadline = Date.now() + (options.timeout ?? Infinity) * 1000;
      for (;;) {
        unreachable = [];
        const waitingBefore = new Set(tasks.filter((t) => t.outcome === 'waiting').map((t) => t.task_id));
        for (let i = tasks.length - 1; i >= 0; i--) if (waitingBefore.has(tasks[i]!.task_id)) tasks.splice(i, 1);
        await pullOnce(session, project, mainRef, tasks, unreachable, options.anyOrder ?? false);
        // Waiting is for tasks still running on nodes; a merge waiting for a clean checkout needs the user.
        const running = store.listTasks(project.name, ['dispatched']);
        if (!options.wait || running.length === 0 || Date.now() >= deadline) break;
        await sleep((options.interval ?? 5) * 1000);
      }
      const touched = new Set(tasks.map((t) => t.task_id));
      const report: RunReport = {
        project: project.name,
        started_at,
        finished_at: ctx.now().toISOString(),
        main_ref: mainRef,
        main_before,
        main_after: (await checkRepo(project, mainRef)),
        tasks,
        pending: store.listTasks(project.name, ['dispatched', 'dispatching']).map((t) => ({ task_id: t.task_id, node: t.node, node_state: t.node_state })),
        outstanding: store.listTasks(project.name, ATTENTION_STATES).filter((t) => !touched.has(t.task_id)).map((t) => attention(t, project)),
        unreachable,
        exit_code: 0,
      };
      report.exit_code = exitCodeFor(report);
      const dir = join(ctx.configDir, 'reports', project.name);
      await mkdir(dir, { recursive: true });
      const stamp = started_at.replace(/[:.]/g, '-');
      report.report_path = join(dir, `${stamp}-merge_report.md`);
      const text = renderReport(report);
      await writeFileAtomic(report.report_path, text);
      await writeFileAtomic(join(dir, 'merge_report.md'), text);
      session.log({ project: project.name, level: 'info', kind: 'pull_done', message: `report written to ${report.report_path}`, data: { exit_code: report.exit_code } });
      return report;
    } finally {
      await release();
    }
  } finally {
    session.close();
  }
}
