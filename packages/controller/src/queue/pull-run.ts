import { performance } from 'node:perf_hooks';
import { gitOps } from '@gsync/core';
import type { ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { recoverDispatching } from '../dispatch/recover.js';
import { exitCodeFor } from '../lifecycle/decisions.js';
import { ATTENTION_STATES, AWAITED_STATES, PENDING_STATES } from '../lifecycle/states.js';
import type { ReportTask, RunReport } from '../report/report.js';
import { attention } from '../report/task-entry.js';
import { checkReportsDir, writeRunReport } from '../report/write.js';
import { checkRepo } from '../repo.js';
import { scratchName, sweepProject } from '../result/quarantine.js';
import { withProjectLock } from '../store/lock.js';
import { collectAll } from './collect-all.js';
import { forecastConflicts, forecastTasks, mergeForecasts, type Forecast } from './forecast.js';
import { mergeQueue } from './merge-queue.js';
import { testGateConfinement } from './test-gate.js';
import { waitForChange } from './watch.js';
import { Waiting, type WaitingTask } from './waiting.js';
import { NodeLinks } from '../ssh/links.js';

/** How long one long poll may last; the node answers sooner when a task needs a look. */
const LONG_POLL_SECONDS = 30;
/** Rounds never follow each other closer than this, whatever the nodes say. */
const MIN_ROUND_GAP_MS = 200;

export interface PullOptions {
  project: string;
  wait?: boolean;
  /** Seconds between polls with --wait. */
  interval?: number;
  /** Give up waiting after this many seconds. */
  timeout?: number;
  /** Merge each task as soon as it is collected, instead of strictly in dispatch order. */
  anyOrder?: boolean;
  /** Collect (fetch, check, keep on its branch) without merging anything: the forecast then sees every finished task. */
  noMerge?: boolean;
  sleep?: (ms: number) => Promise<void>;
  /** With --wait: told which tasks it waits for, where, since when, and their agents' last log lines, as that changes. */
  onWaiting?: (tasks: readonly WaitingTask[]) => void;
}

interface RunState {
  timings: NonNullable<RunReport['timings']>;
  tasks: ReportTask[];
  unreachable: RunReport['unreachable'];
  forecast?: Forecast;
}

/**
 * One pull of a project: rounds of collect, forecast and merge, each under the
 * project's lock (so a dispatch can slip in while --wait sleeps), until nothing is
 * running or waiting is over; then the report.
 */
export async function runPull(session: Session, project: ProjectConfig, options: PullOptions): Promise<RunReport> {
  const { store, ctx } = session;
  const mainRef = `refs/heads/${project.main_branch}`;
  const started_at = ctx.now().toISOString();
  const main_before = await checkRepo(project, mainRef);
  await checkReportsDir(ctx.configDir, project.name);
  if (project.verify_command) await testGateConfinement(session.config, project, ctx.env);
  const run: RunState = { tasks: [], unreachable: [], timings: { collect_seconds: 0, forecast_seconds: 0, merge_seconds: 0 } };
  const links = new NodeLinks(session.connect);
  try {
    await pullRounds(session, project, options, mainRef, run, links);
  } finally {
    await links.closeAll();
  }
  // A conflict whose resolution merged later in this same run needs nobody.
  for (const t of run.tasks) {
    const row = t.outcome === 'conflicted' ? store.getTask(project.name, t.task_id) : undefined;
    if (row?.state === 'resolved')
      Object.assign(t, { outcome: 'resolved', next_step: undefined, reason: `resolved by ${row.resolved_by}, merged in this run` });
  }
  const touched = new Set(run.tasks.map((t) => t.task_id));
  const report: RunReport = {
    project: project.name,
    started_at,
    finished_at: ctx.now().toISOString(),
    main_ref: mainRef,
    main_before,
    main_after: await checkRepo(project, mainRef),
    tasks: run.tasks,
    pending: store
      .listTasks(project.name, PENDING_STATES)
      .map((t) => ({ task_id: t.task_id, node: t.node, node_state: t.node_state, ...(t.state === 'cancelling' ? { cancelling: true as const } : {}) })),
    outstanding: store
      .listTasks(project.name, ATTENTION_STATES)
      .filter((t) => !touched.has(t.task_id))
      .map((t) => attention(t, project)),
    unreachable: run.unreachable,
    ...(run.forecast ? { forecast: run.forecast } : {}),
    ...(options.noMerge ? { unmerged: store.listTasks(project.name, ['collected']).map((t) => ({ task_id: t.task_id, node: t.node, branch: t.branch })) } : {}),
    timings: run.timings,
    exit_code: 0,
  };
  report.exit_code = exitCodeFor(report);
  report.report_path = await writeRunReport(ctx.configDir, report);
  session.log({
    project: project.name,
    level: 'info',
    kind: 'pull_done',
    message: `report written to ${report.report_path}`,
    data: { exit_code: report.exit_code },
  });
  return report;
}

/**
 * One round of collecting without merging, and no report (for `conflicts`): finished
 * results are fetched, checked and kept on their task branches, as a pull would.
 */
export async function collectFinished(session: Session, project: ProjectConfig): Promise<Pick<RunState, 'tasks' | 'unreachable'>> {
  const run: RunState = { tasks: [], unreachable: [], timings: { collect_seconds: 0, forecast_seconds: 0, merge_seconds: 0 } };
  const links = new NodeLinks(session.connect);
  try {
    await pullRounds(session, project, { project: project.name, noMerge: true }, `refs/heads/${project.main_branch}`, run, links);
  } finally {
    await links.closeAll();
  }
  return run;
}

/**
 * Rounds under the lock until nothing runs (or --timeout): between them, the nodes are
 * long-polled over the run's kept links, and polled every interval where that fails.
 */
async function pullRounds(session: Session, project: ProjectConfig, options: PullOptions, mainRef: string, run: RunState, links: NodeLinks): Promise<void> {
  const { store, ctx } = session;
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const waiting = options.onWaiting ? new Waiting(options.onWaiting) : undefined;
  // The sooner of the pull's --timeout and the command's.
  const deadline = Math.min(ctx.now().getTime() + (options.timeout ?? Infinity) * 1000, ctx.deadline ?? Infinity);
  for (let round = 0; ; round++) {
    const roundStart = performance.now();
    run.unreachable = [];
    // A task that waited in the last round is looked at again in this one.
    run.tasks = run.tasks.filter((t) => t.outcome !== 'waiting');
    await withProjectLock(store, project.name, ctx.pid, async () => {
      // Under the lock nothing of this project is being collected: what is in its gsync folders is left over.
      const gitDir = await gitOps.gitDir(project.repo_local);
      const scratch = scratchName(ctx.configDir, project.name);
      await sweepProject(gitDir, scratch);
      if (round === 0) await recoverDispatching(session, project);
      try {
        await pullRound(session, project, mainRef, run, options, links);
      } finally {
        await sweepProject(gitDir, scratch);
      }
    });
    // Waiting is for tasks still running on nodes; a merge waiting for a clean checkout needs the user.
    const left = deadline - ctx.now().getTime();
    if (!options.wait || store.listTasks(project.name, AWAITED_STATES).length === 0 || left <= 0) break;
    const interval = (options.interval ?? 5) * 1000;
    // Each node answers as soon as a task needs a look; a node that cannot be asked so is polled every interval.
    const waited = await waitForChange(session, project, links, Math.min(Math.max(interval / 1000, LONG_POLL_SECONDS), left / 1000), waiting);
    // A node that answers at once every time still gets a round no more often than MIN_ROUND_GAP_MS.
    const pause = waited === 'unavailable' ? interval : Math.max(0, Math.min(interval, MIN_ROUND_GAP_MS) - (performance.now() - roundStart));
    await sleep(Math.max(0, Math.min(pause, deadline - ctx.now().getTime())));
    // Out of time: what still runs is reported as running (exit 4), not asked about past the deadline.
    if (deadline - ctx.now().getTime() <= 0) break;
  }
}

async function pullRound(session: Session, project: ProjectConfig, mainRef: string, run: RunState, options: PullOptions, links: NodeLinks): Promise<void> {
  const t0 = performance.now();
  await collectAll(session, project, run.tasks, run.unreachable, links);
  const t1 = performance.now();
  const f = await forecastCollected(session, project, mainRef);
  if (f) run.forecast = run.forecast ? mergeForecasts(run.forecast, f) : f;
  const t2 = performance.now();
  if (!options.noMerge) await mergeQueue(session, project, mainRef, run.tasks, options.anyOrder ?? false);
  const t3 = performance.now();
  run.timings.collect_seconds += (t1 - t0) / 1000;
  run.timings.forecast_seconds += (t2 - t1) / 1000;
  run.timings.merge_seconds += (t3 - t2) / 1000;
}

/** Conflicts among the collected tasks, before any of them merges. */
async function forecastCollected(session: Session, project: ProjectConfig, mainRef: string): Promise<Forecast | undefined> {
  const collected = session.store.listTasks(project.name, ['collected']);
  const main = await gitOps.resolveCommit(project.repo_local, mainRef);
  if (!main || collected.length === 0) return undefined;
  const f = await forecastConflicts(project.repo_local, main, forecastTasks(collected));
  if (f.with_main.length + f.pairs.length > 0) {
    const what = [...f.with_main.map((m) => `${m.task_id} with main`), ...f.pairs.map((p) => `${p.a} with ${p.b}`)].join(', ');
    session.log({ project: project.name, level: 'warn', kind: 'forecast', message: `conflicts foreseen: ${what}`, data: f });
  }
  return f;
}
