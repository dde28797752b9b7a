import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pLimit from 'p-limit';
import { ZERO_OID, checkName, errorMessage, failpoint, gitOps, writeFileAtomic, type TaskReport } from '@gsync/core';
import { collectTask } from '../collect.js';
import { conflictHandler, getNode, getProject, secretPolicy, type ProjectConfig } from '../config.js';
import { isTransient, withNodeRetrying } from '../connect.js';
import { openSession, type Context, type Session } from '../context.js';
import { LOCK_WAIT_MS, acquireLock } from '../lock.js';
import { forecastConflicts, type Forecast } from '../forecast.js';
import { sweepProject } from '../inspect-result.js';
import { recoverDispatching } from '../recover.js';
import { advanceMain, mergeIdentity, planMerge } from '../merge.js';
import { conflictPicture, dispatchResolution, resolutionSpec, resolutionSpecPath, resolveCommand } from '../resolution.js';
import { runVerify } from '../verify.js';
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
  const withheld = task.withheld ? (JSON.parse(task.withheld) as ReportTask['withheld']) : undefined;
  return {
    ...(withheld && withheld.length > 0 ? { withheld } : {}),
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
        ...(task.resolved_by ? { resolution_task: task.resolved_by } : {}),
        next_step: `main was left as it was; have an agent resolve it with \`${resolveCommand(project.name, task.task_id)}\`, or by hand: git checkout ${project.main_branch} && git merge ${task.branch}`,
      });
    case 'stale':
      return describe(task, 'stale', {
        ...base,
        next_step: `wait for ${task.node} to come back (pull again), or send the spec to another node with \`gsync-ctl retry --project ${project.name} --task ${task.task_id}\``,
      });
    case 'rejected':
      return describe(task, 'rejected', {
        ...base,
        next_step: task.verify_log
          ? `nothing was merged; the branch ${task.branch} is kept: read ${task.verify_log}, fix and dispatch again`
          : 'nothing from this result was merged; inspect the node and dispatch again',
      });
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
  const open = store.listTasks(project.name, ['dispatched', 'stale']);
  const byNode = new Map<string, TaskRow[]>();
  for (const t of open) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  const limit = pLimit(4);
  await Promise.all(
    [...byNode].map(([nodeName, nodeTasks]) =>
      limit(async () => {
        const at = { project: project.name, node: nodeName };
        try {
          const node = getNode(config, nodeName);
          const retrying = (error: unknown, attempt: number, delayMs: number) =>
            session.log({ ...at, level: 'warn', kind: 'transfer_retry', message: `${nodeName}: ${errorMessage(error)}; trying again in ${delayMs / 1000} s (${attempt}/${config.transferRetries})` });
          await withNodeRetrying(session.connect, node, config.transferRetries, retrying, async (t) => {
            // Tasks settled by an earlier attempt are done; ask only about the rest.
            const left = nodeTasks.map((x) => store.getTask(project.name, x.task_id)!).filter((x) => x.state === 'dispatched' || x.state === 'stale');
            const reports = await reportTasks(t, node, project.name, left.map((x) => x.task_id));
            for (const task of left) {
              const report = reports.find((r) => r.task_id === task.task_id);
              await settle(session, project, task, report, async (result) => {
                try {
                  return await collectTask({ project, node, task, result, transport: t, maxBytes: config.maxResultBytes, limits: config.limits, policy: secretPolicy(config, project) });
                } catch (error) {
                  // A broken link is tried again; anything else this result did is its own fault, not the node's.
                  if (isTransient(error)) throw error;
                  return { kind: 'rejected', reason: `the result could not be checked: ${errorMessage(error).split('\n')[0]}` };
                }
              }, tasks);
            }
          });
        } catch (error) {
          unreachable.push({ node: nodeName, error: errorMessage(error) });
          markStale(session, project, nodeName, nodeTasks, errorMessage(error), tasks);
          session.log({ ...at, level: 'warn', kind: 'node_unreachable', message: `could not ask ${nodeName} about its tasks: ${errorMessage(error)}` });
        }
      }),
    ),
  );
}

/** Tasks on a node that has not answered for stale_after_seconds become `stale`: no longer waited for, ready for `retry`. */
function markStale(session: Session, project: ProjectConfig, nodeName: string, nodeTasks: readonly TaskRow[], why: string, tasks: ReportTask[]): void {
  const { store, config } = session;
  const node = config.nodes.find((n) => n.name === nodeName);
  const limit = (node?.stale_after_seconds ?? config.staleAfterSeconds) * 1000;
  for (const task of nodeTasks) {
    if (task.state !== 'dispatched') continue;
    const since = task.last_seen_at ?? task.dispatched_at ?? task.created_at;
    if (Date.now() - Date.parse(since) < limit) continue;
    const error = `${nodeName} has not answered since ${since} (${why})`;
    store.updateTask(project.name, task.task_id, { state: 'stale', error });
    session.log({ project: project.name, task_id: task.task_id, node: nodeName, level: 'warn', kind: 'stale', message: `${task.task_id} is stale: ${error}` });
    tasks.push(attention(store.getTask(project.name, task.task_id)!, project));
  }
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
  store.updateTask(project.name, task.task_id, { node_state: state, last_seen_at: store.timestamp(), ...(task.state === 'stale' ? { state: 'dispatched', error: null } : {}) });
  if (task.state === 'stale') session.log({ ...at, level: 'info', kind: 'answering_again', message: `${task.task_id}: ${task.node} answers again (${state})` });
  if (!['done', 'empty', 'failed', 'timeout'].includes(state)) return;
  const finished_at = report.status?.finished_at ?? store.timestamp();
  const withheld = report.result?.withheld ?? report.status?.withheld ?? [];
  if (withheld.length > 0) {
    store.updateTask(project.name, task.task_id, { withheld: JSON.stringify(withheld) });
    session.log({ ...at, level: 'warn', kind: 'withheld', message: `${task.task_id}: ${task.node} kept ${withheld.length} file(s) out of the result as secrets: ${withheld.map((w) => `${w.path} (${w.rule})`).join(', ')}`, data: { withheld } });
  }
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

function seconds(from: string | null, to: string | null): number | undefined {
  if (!from || !to) return undefined;
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

function verifyLogPath(configDir: string, project: string, taskId: string): string {
  return join(configDir, 'reports', project, taskId, 'verify.log');
}

/** After a conflict: the resolution spec, and with a conflict_handler, the task that resolves it. */
async function handleConflict(ctx: Context, session: Session, project: ProjectConfig, task: TaskRow): Promise<Partial<ReportTask>> {
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  const handler = conflictHandler(session.config, project);
  // A resolution that conflicts again goes to the user, not round the loop.
  if (handler && !task.resolves) {
    try {
      const r = await dispatchResolution(ctx, session, project, task);
      return { resolution_spec: r.spec_path, resolution_task: r.task_id, next_step: `${r.task_id} on ${r.node} resolves it with the conflict handler; run pull-bundles again to merge it` };
    } catch (error) {
      session.log({ ...at, level: 'error', kind: 'resolution_failed', message: `could not dispatch a resolution of ${task.task_id}: ${errorMessage(error)}` });
    }
  }
  const picture = await conflictPicture(session, project, task);
  if (!picture) return {};
  const specPath = resolutionSpecPath(ctx.configDir, project.name, task.task_id);
  await mkdir(dirname(specPath), { recursive: true });
  await writeFileAtomic(specPath, resolutionSpec(picture));
  session.log({ ...at, level: 'info', kind: 'resolution_spec', message: `wrote ${specPath}`, data: { path: specPath } });
  return { resolution_spec: specPath };
}

/**
 * Merges collected tasks into main in dispatch order. Each merge is made as a commit
 * no branch points to; with a verify_command it is tested in a throw-away checkout
 * first; only then does main move, by compare-and-swap. Conflicts, refusals and
 * failed tests leave main as it was, and the next task is tried on top of it.
 */
async function mergeAll(ctx: Context, session: Session, project: ProjectConfig, mainRef: string, tasks: ReportTask[], anyOrder: boolean): Promise<void> {
  const { store } = session;
  const repo = project.repo_local;
  const env = await mergeIdentity(repo);
  const stagingRef = `refs/gsync/staging/${project.name}`;
  // In dispatch order: a task waits while one dispatched before it is still running.
  const firstRunning = anyOrder ? undefined : store.listTasks(project.name, OPEN_STATES)[0];
  for (const task of store.listTasks(project.name, ['collected'])) {
    const at = { project: project.name, task_id: task.task_id, node: task.node };
    const paths = task.changed_paths ? (JSON.parse(task.changed_paths) as string[]) : [];
    const facts: Partial<ReportTask> = {
      commits: task.result_commits ?? undefined,
      changed_paths: paths,
      run_seconds: seconds(task.dispatched_at, task.finished_at),
      ...(task.resolves ? { resolves: task.resolves } : {}),
    };
    if (firstRunning && firstRunning.seq < task.seq) {
      const reason = `waiting for ${firstRunning.task_id} (dispatched earlier, on ${firstRunning.node}) to finish: tasks merge in dispatch order`;
      tasks.push(describe(task, 'waiting', { ...facts, reason, next_step: 'run pull-bundles again later, or with --any-order' }));
      continue;
    }
    const plan = await planMerge({
      repo,
      mainRef,
      head: task.result_head!,
      message: `Merge ${task.branch}\n\ntask/${task.task_id}: ${task.spec_title}\nNode: ${task.node}\n`,
      env,
    });
    if (plan.kind === 'blocked') {
      session.log({ ...at, level: 'warn', kind: 'merge_waiting', message: `${task.task_id}: ${plan.reason}` });
      tasks.push(describe(task, 'waiting', { ...facts, reason: plan.reason, next_step: 'run pull-bundles again' }));
      continue;
    }
    if (plan.kind === 'conflicted') {
      store.updateTask(project.name, task.task_id, { state: 'conflicted', conflict_paths: JSON.stringify(plan.paths), error: plan.messages.join('; ') || null });
      session.log({ ...at, level: 'warn', kind: 'conflicted', message: `${task.task_id} (${task.branch}) conflicts with ${project.main_branch} in ${plan.paths.join(', ')}; not merged`, data: { paths: plan.paths, messages: plan.messages } });
      const resolution = await handleConflict(ctx, session, project, store.getTask(project.name, task.task_id)!);
      tasks.push({ ...attention(store.getTask(project.name, task.task_id)!, project), ...facts, ...resolution });
      continue;
    }
    let verify: ReportTask['verify'];
    if (plan.kind === 'ready' && project.verify_command) {
      const log = verifyLogPath(ctx.configDir, project.name, task.task_id);
      const current = await gitOps.resolveCommit(repo, stagingRef);
      await gitOps.updateRef(repo, stagingRef, plan.commit, current ?? ZERO_OID, `gsync: verify ${task.task_id}`);
      session.log({ ...at, level: 'info', kind: 'verify_started', message: `testing ${task.task_id} merged into ${project.main_branch}: ${project.verify_command.join(' ')}`, data: { commit: plan.commit } });
      const v = await runVerify({ repo, commit: plan.commit, argv: project.verify_command, timeoutSeconds: project.verify_timeout_seconds, logFile: log, env: ctx.env });
      verify = { passed: v.passed, reason: v.reason, seconds: v.seconds, log, tail: v.tail };
      store.updateTask(project.name, task.task_id, { verify_log: log });
      if (!v.passed) {
        const reason = `the merged tree failed the test gate: ${v.reason}`;
        store.updateTask(project.name, task.task_id, { state: 'rejected', error: reason });
        session.log({ ...at, level: 'error', kind: 'verify_failed', message: `${task.task_id} rejected: ${reason}`, data: { exit_code: v.exitCode, timed_out: v.timedOut, tail: v.tail, log } });
        tasks.push({ ...attention(store.getTask(project.name, task.task_id)!, project), ...facts, verify });
        continue;
      }
      failpoint('pull:after-verify');
      session.log({ ...at, level: 'info', kind: 'verify_passed', message: `${task.task_id} passed the test gate in ${v.seconds.toFixed(1)} s` });
    }
    const outcome = plan.kind === 'already' ? ({ kind: 'merged', commit: plan.commit, already: true } as const) : await advanceMain(repo, mainRef, plan.main, plan.commit);
    failpoint('pull:after-advance');
    if (outcome.kind === 'merged') {
      store.updateTask(project.name, task.task_id, { state: 'merged', merge_commit: outcome.commit, merged_at: store.timestamp() });
      session.log({ ...at, level: 'info', kind: 'merged', message: `merged ${task.task_id} (${task.branch}) into ${project.main_branch} as ${outcome.commit.slice(0, 12)}`, data: { commit: outcome.commit } });
      if (task.resolves) {
        store.updateTask(project.name, task.resolves, { state: 'resolved', resolved_by: task.task_id });
        session.log({ project: project.name, task_id: task.resolves, level: 'info', kind: 'resolved', message: `${task.resolves}'s conflict was resolved by ${task.task_id}, now merged` });
      }
      tasks.push(describe(store.getTask(project.name, task.task_id)!, 'merged', { ...facts, merge_commit: outcome.commit, ...(verify ? { verify } : {}) }));
    } else {
      const reason = outcome.kind === 'blocked' ? outcome.reason : 'main changed';
      session.log({ ...at, level: 'warn', kind: 'merge_waiting', message: `${task.task_id}: ${reason}` });
      tasks.push(describe(task, 'waiting', { ...facts, reason, next_step: 'run pull-bundles again once the checkout is clean', ...(verify ? { verify } : {}) }));
    }
  }
}

/** Conflicts among the collected tasks, before any of them merges. */
async function forecast(session: Session, project: ProjectConfig, mainRef: string): Promise<Forecast | undefined> {
  const collected = session.store.listTasks(project.name, ['collected']);
  const main = await gitOps.resolveCommit(project.repo_local, mainRef);
  if (!main || collected.length === 0) return undefined;
  const f = await forecastConflicts(
    project.repo_local,
    main,
    collected.map((t) => ({ task_id: t.task_id, head: t.result_head!, paths: t.changed_paths ? (JSON.parse(t.changed_paths) as string[]) : [] })),
  );
  if (f.with_main.length + f.pairs.length > 0) {
    const what = [...f.with_main.map((m) => `${m.task_id} with main`), ...f.pairs.map((p) => `${p.a} with ${p.b}`)].join(', ');
    session.log({ project: project.name, level: 'warn', kind: 'forecast', message: `conflicts foreseen: ${what}`, data: f });
  }
  return f;
}

export function exitCodeFor(report: Pick<RunReport, 'tasks' | 'pending' | 'outstanding' | 'unreachable'>): number {
  const needsAttention = (t: ReportTask) => ['conflicted', 'failed', 'timeout', 'rejected', 'stale'].includes(t.outcome);
  if (report.tasks.some(needsAttention) || report.outstanding.length > 0) return EXIT.attention;
  if (report.unreachable.length > 0) return EXIT.ssh;
  if (report.pending.length > 0 || report.tasks.some((t) => t.outcome === 'waiting')) return EXIT.pending;
  return EXIT.ok;
}

async function pullOnce(ctx: Context, session: Session, project: ProjectConfig, mainRef: string, run: RunState, anyOrder: boolean): Promise<void> {
  const t0 = performance.now();
  await collectAll(session, project, run.tasks, run.unreachable);
  const t1 = performance.now();
  const f = await forecast(session, project, mainRef);
  if (f) run.forecast = run.forecast ? mergeForecasts(run.forecast, f) : f;
  const t2 = performance.now();
  await mergeAll(ctx, session, project, mainRef, run.tasks, anyOrder);
  const t3 = performance.now();
  run.timings.collect_seconds += (t1 - t0) / 1000;
  run.timings.forecast_seconds += (t2 - t1) / 1000;
  run.timings.merge_seconds += (t3 - t2) / 1000;
}

/** With --wait a run forecasts once per round; the report keeps everything any round foresaw. */
function mergeForecasts(a: Forecast, b: Forecast): Forecast {
  const withMain = new Map([...a.with_main, ...b.with_main].map((m) => [m.task_id, m]));
  const pairs = new Map([...a.pairs, ...b.pairs].map((p) => [`${p.a} ${p.b}`, p]));
  return {
    main: b.main,
    with_main: [...withMain.values()],
    pairs: [...pairs.values()],
    pairs_checked: a.pairs_checked + b.pairs_checked,
    pairs_total: a.pairs_total + b.pairs_total,
  };
}

/** What a crashed run may have left in the repository's gsync folder: quarantines and partial downloads. */
async function sweepLeftovers(project: ProjectConfig): Promise<void> {
  await sweepProject(await gitOps.gitDir(project.repo_local), project.name);
}

interface RunState {
  timings: NonNullable<RunReport['timings']>;
  tasks: ReportTask[];
  unreachable: RunReport['unreachable'];
  forecast?: Forecast;
}

export async function pullBundles(ctx: Context, options: PullOptions): Promise<RunReport> {
  const session = await openSession(ctx);
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  try {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    const mainRef = `refs/heads/${project.main_branch}`;
    // The lock is held for one round at a time, so a dispatch or resolve can slip in while --wait sleeps.
    const locked = async <T>(fn: () => Promise<T>): Promise<T> => {
      const release = await acquireLock(store, `project:${project.name}`, `project ${project.name}`, { waitMs: LOCK_WAIT_MS });
      try {
        return await fn();
      } finally {
        await release();
      }
    };
    const started_at = ctx.now().toISOString();
    const main_before = await checkRepo(project, mainRef);
    const run: RunState = { tasks: [], unreachable: [], timings: { collect_seconds: 0, forecast_seconds: 0, merge_seconds: 0 } };
    const { tasks } = run;
    const deadline = Date.now() + (options.timeout ?? Infinity) * 1000;
    let first = true;
    for (;;) {
      run.unreachable = [];
      const waitingBefore = new Set(tasks.filter((t) => t.outcome === 'waiting').map((t) => t.task_id));
      for (let i = tasks.length - 1; i >= 0; i--) if (waitingBefore.has(tasks[i]!.task_id)) tasks.splice(i, 1);
      await locked(async () => {
        // Under the lock nothing of this project is being collected: what is in its gsync folders is left over.
        await sweepLeftovers(project);
        if (first) await recoverDispatching(ctx, session, project);
        first = false;
        try {
          await pullOnce(ctx, session, project, mainRef, run, options.anyOrder ?? false);
        } finally {
          await sweepLeftovers(project);
        }
      });
      // Waiting is for tasks still running on nodes; a merge waiting for a clean checkout needs the user.
      const running = store.listTasks(project.name, ['dispatched']);
      if (!options.wait || running.length === 0 || Date.now() >= deadline) break;
      await sleep((options.interval ?? 5) * 1000);
    }
    // A conflict whose resolution merged later in this same run needs nobody.
    for (const t of tasks) {
      const row = t.outcome === 'conflicted' ? store.getTask(project.name, t.task_id) : undefined;
      if (row?.state === 'resolved') Object.assign(t, { outcome: 'resolved', next_step: undefined, reason: `resolved by ${row.resolved_by}, merged in this run` });
    }
    const touched = new Set(tasks.map((t) => t.task_id));
    const report: RunReport = {
      project: project.name,
      started_at,
      finished_at: ctx.now().toISOString(),
      main_ref: mainRef,
      main_before,
      main_after: await checkRepo(project, mainRef),
      tasks,
      pending: store.listTasks(project.name, ['dispatched', 'dispatching']).map((t) => ({ task_id: t.task_id, node: t.node, node_state: t.node_state })),
      outstanding: store.listTasks(project.name, ATTENTION_STATES).filter((t) => !touched.has(t.task_id)).map((t) => attention(t, project)),
      unreachable: run.unreachable,
      ...(run.forecast ? { forecast: run.forecast } : {}),
      timings: run.timings,
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
    session.close();
  }
}
