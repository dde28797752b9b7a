import { join } from 'node:path';
import { ZERO_OID, failpoint, gitOps, incomingRef, inert, inertJson } from '@gsync/core';
import type { ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { mergeTurn } from '../lifecycle/decisions.js';
import { OPEN_STATES } from '../lifecycle/states.js';
import { transition } from '../lifecycle/transition.js';
import type { ReportTask } from '../report/report.js';
import { attention, describe } from '../report/task-entry.js';
import type { TaskRow } from '../store/store.js';
import { handleConflict } from './conflict.js';
import { advanceMain, mergeIdentity, planMerge, type MergeOutcome, type MergePlan } from './merge.js';
import { pastDeadline } from '../ssh/connect.js';
import { deleteRemoteBranch } from '../carrier/remote.js';
import { runTestGate, testGateConfinement } from './test-gate.js';

function seconds(from: string | null, to: string | null): number | undefined {
  if (!from || !to) return undefined;
  return (Date.parse(to) - Date.parse(from)) / 1000;
}

function testGateLogPath(configDir: string, project: string, taskId: string): string {
  return join(configDir, 'reports', project, taskId, 'verify.log');
}

/**
 * Merges collected tasks into main in dispatch order. Each merge is made as a commit
 * no branch points to; with a verify_command it goes through the test gate in a
 * throw-away checkout first; only then does main move, by compare-and-swap.
 * Conflicts, refusals and failed tests leave main as it was, and the next task is
 * tried on top of it.
 */
export async function mergeQueue(session: Session, project: ProjectConfig, mainRef: string, tasks: ReportTask[], anyOrder: boolean): Promise<void> {
  const { store } = session;
  const env = await mergeIdentity(project.repo_local);
  const firstOpen = store.listTasks(project.name, OPEN_STATES)[0];
  for (const task of store.listTasks(project.name, ['collected'])) {
    const facts: Partial<ReportTask> = {
      commits: task.result_commits ?? undefined,
      changed_paths: task.changed_paths ? (JSON.parse(task.changed_paths) as string[]) : [],
      run_seconds: seconds(task.dispatched_at, task.finished_at),
      ...(task.resolves ? { resolves: task.resolves } : {}),
    };
    const waitFor = pastDeadline(session.connect) ? "gsync-ctl's --timeout passed before its turn" : mergeTurn(task, firstOpen, anyOrder);
    if (waitFor) {
      tasks.push(describe(task, 'waiting', { ...facts, reason: waitFor, next_step: 'run pull-bundles again later, or with --any-order' }));
      continue;
    }
    const plan = await planMerge({
      repo: project.repo_local,
      mainRef,
      head: task.result_head!,
      message: `Merge ${task.branch}\n\ntask/${task.task_id}: ${task.spec_title}\nNode: ${task.node}\n`,
      env,
    });
    tasks.push(await mergeOne(session, project, mainRef, task, plan, facts));
  }
}

/** Takes one task's merge plan through conflict handling, the test gate and the move of main; returns its report entry. */
async function mergeOne(
  session: Session,
  project: ProjectConfig,
  mainRef: string,
  task: TaskRow,
  plan: MergePlan,
  facts: Partial<ReportTask>,
): Promise<ReportTask> {
  const { store } = session;
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  if (plan.kind === 'blocked') {
    session.log({ ...at, level: 'warn', kind: 'merge_waiting', message: `${task.task_id}: ${plan.reason}` });
    return describe(task, 'waiting', { ...facts, reason: plan.reason, next_step: 'run pull-bundles again' });
  }
  if (plan.kind === 'conflicted') {
    const row = transition(
      session,
      task,
      'conflicted',
      { conflict_paths: inertJson(plan.paths), error: plan.messages.join('; ') || null },
      {
        level: 'warn',
        kind: 'conflicted',
        message: `${task.task_id} (${task.branch}) conflicts with ${project.main_branch} in ${plan.paths.join(', ')}; not merged`,
        data: { paths: plan.paths, messages: plan.messages },
      },
    );
    const resolution = await handleConflict(session, project, row);
    return { ...attention(store.getTask(project.name, task.task_id)!, project), ...facts, ...resolution };
  }
  let verify: ReportTask['verify'];
  if (plan.kind === 'ready' && project.verify_command) {
    const gate = await testGate(session, project, task, plan.commit);
    verify = gate.verify;
    if (gate.cutShort)
      return describe(task, 'waiting', { ...facts, reason: gate.verify.reason, next_step: 'run pull-bundles again (its test gate runs again)', verify });
    if (!gate.passed) return { ...attention(gate.row, project), ...facts, verify };
  }
  const outcome =
    plan.kind === 'already'
      ? ({ kind: 'merged', commit: plan.commit, already: true } as MergeOutcome)
      : await advanceMain(
          project.repo_local,
          mainRef,
          plan.main,
          plan.commit,
          join(session.ctx.configDir, 'reports', project.name, task.task_id, 'saved-during-merge'),
        );
  failpoint('pull:after-advance');
  const gated = verify ? { verify } : {};
  if (outcome.kind !== 'merged') {
    const reason = outcome.kind === 'blocked' ? outcome.reason : 'main changed';
    session.log({ ...at, level: 'warn', kind: 'merge_waiting', message: `${task.task_id}: ${reason}` });
    return describe(task, 'waiting', { ...facts, reason, next_step: 'run pull-bundles again once the checkout is clean', ...gated });
  }
  const row = transition(
    session,
    task,
    'merged',
    { merge_commit: outcome.commit, merged_at: store.timestamp() },
    {
      level: 'info',
      kind: 'merged',
      message: `merged ${task.task_id} (${task.branch}) into ${project.main_branch} as ${outcome.commit.slice(0, 12)}`,
      data: { commit: outcome.commit },
    },
  );
  if (session.config.git.auto_cleanup_branches) await dropMergedBranch(session, project, task, outcome.commit, task.result_head);
  if (task.resolves) {
    const resolved = store.getTask(project.name, task.resolves)!;
    transition(
      session,
      resolved,
      'resolved',
      { resolved_by: task.task_id },
      { level: 'info', kind: 'resolved', message: `${task.resolves}'s conflict was resolved by ${task.task_id}, now merged` },
    );
  }
  if (outcome.edits) {
    const { kept, aside } = outcome.edits;
    session.log({
      ...at,
      level: 'warn',
      kind: 'edits_during_merge',
      message: `${task.task_id}: saves made in the checkout while it was updated were kept: ${[
        ...(kept.length > 0
          ? [
              `${kept.length} file(s) hold your version (git diff shows it against the merged ${project.main_branch}): ${kept
                .slice(0, 10)
                .map((p) => inert(p))
                .join(', ')}${kept.length > 10 ? ', ...' : ''}`,
            ]
          : []),
        ...aside.map((a) => `${inert(a.path)} saved at ${inert(a.saved)}`),
      ].join('; ')}`,
      data: outcome.edits,
    });
  }
  return describe(row, 'merged', { ...facts, merge_commit: outcome.commit, ...gated, ...(outcome.edits ? { edits_during_merge: outcome.edits } : {}) });
}

/**
 * auto_cleanup_branches: the task branch and gsync's incoming ref go right after the
 * merge, each only if it still points where it did (its commit is now in main).
 */
async function dropMergedBranch(session: Session, project: ProjectConfig, task: TaskRow, merge: string, head: string | null): Promise<void> {
  const repo = project.repo_local;
  // Plan A: the branch on the shared remote goes too, if it is still at the merged head.
  if (project.sync_mode === 'git') {
    const failed = await deleteRemoteBranch(project, task.branch, [head ?? merge, task.base_commit]);
    if (failed && failed !== 'not there')
      session.log({
        project: project.name,
        task_id: task.task_id,
        level: 'warn',
        kind: 'remote_branch_kept',
        message: `${task.branch} stays on the shared remote: ${inert(failed, 300)}`,
      });
  }
  const checkedOut = new Set((await gitOps.listWorktrees(repo)).map((w) => w.branch));
  for (const ref of [`refs/heads/${task.branch}`, incomingRef(project.name, task.task_id, task.node)]) {
    const oid = await gitOps.resolveCommit(repo, ref);
    if (!oid || checkedOut.has(ref) || !(await gitOps.isAncestor(repo, oid, merge))) continue;
    await gitOps.git(repo, ['update-ref', '-d', ref, oid]).catch(() => undefined);
  }
  session.log({
    project: project.name,
    task_id: task.task_id,
    level: 'info',
    kind: 'branch_deleted',
    message: `${task.branch} deleted after its merge (auto_cleanup_branches)`,
  });
}

/** Runs verify_command on the merge commit (kept reachable by the staging ref meanwhile); a failure rejects the task. */
async function testGate(
  session: Session,
  project: ProjectConfig,
  task: TaskRow,
  commit: string,
): Promise<{ passed: boolean; cutShort?: boolean; row: TaskRow; verify: NonNullable<ReportTask['verify']> }> {
  const { store, ctx } = session;
  const repo = project.repo_local;
  const at = { project: project.name, task_id: task.task_id, node: task.node };
  const stagingRef = `refs/gsync/staging/${project.name}`;
  const log = testGateLogPath(ctx.configDir, project.name, task.task_id);
  const current = await gitOps.resolveCommit(repo, stagingRef);
  await gitOps.updateRef(repo, stagingRef, commit, current ?? ZERO_OID, `gsync: verify ${task.task_id}`);
  session.log({
    ...at,
    level: 'info',
    kind: 'verify_started',
    message: `testing ${task.task_id} merged into ${project.main_branch}: ${project.verify_command!.join(' ')}`,
    data: { commit },
  });
  const confinement = await testGateConfinement(session.config, project, ctx.env);
  // The command's --timeout cuts the gate short; that judges nothing, the task is tested again next time.
  const left = ctx.deadline === undefined ? Infinity : Math.max(0.001, (ctx.deadline - Date.now()) / 1000);
  const cut = left < project.verify_timeout_seconds;
  const v = await runTestGate({
    repo,
    commit,
    argv: project.verify_command!,
    timeoutSeconds: Math.min(project.verify_timeout_seconds, left),
    logFile: log,
    env: ctx.env,
    confinement,
  });
  const verify = { passed: v.passed, reason: v.reason, seconds: v.seconds, log, tail: v.tail };
  store.updateTask(project.name, task.task_id, { verify_log: log });
  if (v.timedOut && cut) {
    const reason = "gsync-ctl's --timeout passed while its test gate ran; not judged";
    session.log({ ...at, level: 'warn', kind: 'verify_cut_short', message: `${task.task_id}: ${reason}` });
    return { passed: false, cutShort: true, row: task, verify: { ...verify, reason } };
  }
  if (!v.passed) {
    const reason = `the merged tree failed the test gate: ${v.reason}`;
    const row = transition(
      session,
      task,
      'rejected',
      { error: reason },
      {
        level: 'error',
        kind: 'verify_failed',
        message: `${task.task_id} rejected: ${reason}`,
        data: { exit_code: v.exitCode, timed_out: v.timedOut, tail: v.tail, log },
      },
    );
    return { passed: false, row, verify };
  }
  failpoint('pull:after-verify');
  session.log({ ...at, level: 'info', kind: 'verify_passed', message: `${task.task_id} passed the test gate in ${v.seconds.toFixed(1)} s` });
  return { passed: true, row: store.getTask(project.name, task.task_id)!, verify };
}
