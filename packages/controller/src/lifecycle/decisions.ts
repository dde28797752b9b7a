import { inert, inertJson, isFinal, type NodeState, type TaskReport, type TaskResult } from '@gsync/core';
import { EXIT } from '../exit-codes.js';
import type { RunReport } from '../report/report.js';
import type { TaskFields, TaskRow } from '../store/store.js';
import { ATTENTION_STATES, CANCELLABLE_STATES, DISMISSABLE_STATES, type TaskState } from './states.js';

/**
 * What the lifecycle decides, as plain functions over data: what a node's answer
 * means for a task, when a task has gone stale, which task may merge next, and the
 * exit code of a run. No git, no SSH, no SQLite here.
 */

export type Withheld = { path: string; rule: string }[];

/** A node's answer about one task, read. */
export type Answer =
  | { kind: 'lost'; reason: string }
  | { kind: 'running'; nodeState: NodeState }
  | {
      kind: 'finished';
      nodeState: 'done' | 'empty' | 'failed' | 'timeout';
      finishedAt: string | undefined;
      withheld: Withheld;
      result: TaskResult | undefined;
      error: string | undefined;
    };

export function readAnswer(report: TaskReport | undefined): Answer {
  const state = report?.status?.state;
  if (!report?.exists || !state) return { kind: 'lost', reason: report?.error ? inert(report.error, 2000) : 'the task directory is missing on the node' };
  if (!isFinal(state)) return { kind: 'running', nodeState: state };
  return {
    kind: 'finished',
    nodeState: state as 'done' | 'empty' | 'failed' | 'timeout',
    finishedAt: report.status?.finished_at === undefined ? undefined : inert(report.status.finished_at, 64),
    // What the node says is kept as text to show: one line each, capped, never raw.
    withheld: (report.result?.withheld ?? report.status?.withheld ?? []).slice(0, 1000).map((w) => ({ path: inert(w.path, 1000), rule: inert(w.rule, 200) })),
    result: report.result ?? undefined,
    error: report.status?.error === undefined ? undefined : inert(report.status.error, 2000),
  };
}

/** What bringing a finished result home gave. */
export type Collected =
  | { kind: 'collected'; head: string; commits: number; paths: string[]; branch: string; wip: boolean }
  | { kind: 'rejected'; reason: string };

export interface StepEvent {
  level: 'info' | 'warn' | 'error';
  kind: string;
  message: string;
  data?: unknown;
}

/** One move of a task: the state it goes to, the fields written with it, and the event that says so. */
export interface Step {
  to: TaskState;
  fields: TaskFields;
  event: StepEvent;
}

type Named = Pick<TaskRow, 'task_id' | 'node'>;

export function lostStep(task: Named, reason: string, now: string): Step {
  return { to: 'failed', fields: { error: reason, finished_at: now }, event: { level: 'error', kind: 'task_lost', message: `${task.task_id}: ${reason}` } };
}

/**
 * Where a finished task goes, from the node's answer and (when it sent a result)
 * what collecting that result gave: collected, empty, rejected, or failed/timeout
 * (with its work in progress kept on a -wip branch when there was any).
 */
export function finishStep(task: Named, answer: Extract<Answer, { kind: 'finished' }>, collected: Collected | undefined, now: string): Step {
  const finished_at = answer.finishedAt ?? now;
  const on = `${task.task_id} on ${task.node}`;
  const kept = answer.withheld.length > 0 && (answer.nodeState === 'empty' || (collected?.kind === 'collected' && !collected.wip));
  if (kept) {
    // Part (or all) of the work stayed on the node: never a clean merge, never "empty"; the user decides.
    const held = answer.withheld.map((w) => `${w.path} (${w.rule})`).join(', ');
    const rest = collected?.kind === 'collected' ? `the rest is on ${collected.branch}, not merged` : 'nothing else changed';
    const why = `${answer.withheld.length} file(s) kept on the node as secrets: ${held}; ${rest}`;
    const fields: TaskFields =
      collected?.kind === 'collected'
        ? { result_head: collected.head, result_commits: collected.commits, changed_paths: inertJson(collected.paths), collected_at: now }
        : {};
    return {
      to: 'withheld',
      fields: { ...fields, finished_at, error: why },
      event: { level: 'warn', kind: 'withheld_not_merged', message: `${on}: ${why}`, data: { withheld: answer.withheld } },
    };
  }
  if (answer.nodeState === 'empty') {
    return { to: 'empty', fields: { finished_at }, event: { level: 'info', kind: 'empty', message: `${on}: the agent changed nothing` } };
  }
  if (collected?.kind === 'rejected') {
    // A reason may quote what the result carried (ref names, capabilities): kept inert and capped.
    const reason = inert(collected.reason, 2000);
    return {
      to: 'rejected',
      fields: { error: reason, finished_at },
      event: { level: 'error', kind: 'rejected', message: `${on} rejected: ${reason}` },
    };
  }
  const resultFields: TaskFields = collected
    ? { result_head: collected.head, result_commits: collected.commits, changed_paths: inertJson(collected.paths), finished_at, collected_at: now }
    : {};
  if (collected && !collected.wip) {
    return {
      to: 'collected',
      fields: resultFields,
      event: {
        level: 'info',
        kind: 'collected',
        message: `collected ${task.task_id} from ${task.node}: ${collected.commits} commit(s), ${collected.paths.length} path(s) on ${collected.branch}`,
        data: { head: collected.head, paths: collected.paths },
      },
    };
  }
  const wip = collected?.branch;
  const why = answer.error ?? `the agent ended as ${answer.nodeState}`;
  return {
    to: answer.nodeState === 'timeout' ? 'timeout' : 'failed',
    fields: { ...resultFields, ...(wip ? { wip_branch: wip } : {}), error: why, finished_at },
    event: { level: 'error', kind: answer.nodeState, message: `${on} ${answer.nodeState}: ${why}${wip ? ` (work in progress on ${wip})` : ''}` },
  };
}

/**
 * Where a cancelled task goes once its node has stopped it (or lost it): `cancelled`,
 * whatever the agent got to. What it had done comes back only as a -wip branch, never
 * to merge; the task's error stays the reason it was cancelled for.
 */
export function cancelledStep(task: Named, answer: Exclude<Answer, { kind: 'running' }>, collected: Collected | undefined, now: string): Step {
  const on = `${task.task_id} on ${task.node} cancelled`;
  if (answer.kind === 'lost') {
    return {
      to: 'cancelled',
      fields: { finished_at: now },
      event: { level: 'warn', kind: 'cancel_settled', message: `${on}; nothing came back: ${answer.reason}` },
    };
  }
  const finished_at = answer.finishedAt ?? now;
  if (collected?.kind === 'collected') {
    return {
      to: 'cancelled',
      fields: {
        result_head: collected.head,
        result_commits: collected.commits,
        changed_paths: inertJson(collected.paths),
        wip_branch: collected.branch,
        finished_at,
        collected_at: now,
      },
      event: {
        level: 'info',
        kind: 'cancel_settled',
        message: `${on}; its work so far is on ${collected.branch}, not merged`,
        data: { head: collected.head, paths: collected.paths },
      },
    };
  }
  if (collected?.kind === 'rejected') {
    const reason = inert(collected.reason, 2000);
    return {
      to: 'cancelled',
      fields: { finished_at },
      event: { level: 'warn', kind: 'cancel_settled', message: `${on}; what it had done was refused: ${reason}` },
    };
  }
  const node = answer.error ?? `it ended ${answer.nodeState}`;
  return { to: 'cancelled', fields: { finished_at }, event: { level: 'info', kind: 'cancel_settled', message: `${on}; no work came back (${node})` } };
}

/** Why `cancel` refuses a task in this state; undefined when it may be cancelled, or already is. */
export function cancelRefusal(task: Pick<TaskRow, 'task_id' | 'state'>): string | undefined {
  if (CANCELLABLE_STATES.includes(task.state) || task.state === 'cancelling' || task.state === 'cancelled') return undefined;
  if (task.state === 'dispatching') return `task ${task.task_id} was never dispatched (its dispatch did not finish): nothing runs to cancel`;
  return `task ${task.task_id} has already ended (${task.state}): there is nothing to cancel`;
}

/** Why `dismiss` refuses a task in this state; undefined when it may be set aside, or already is. */
export function dismissRefusal(task: Pick<TaskRow, 'task_id' | 'state'>): string | undefined {
  if (DISMISSABLE_STATES.includes(task.state) || task.state === 'dismissed') return undefined;
  if (['dispatching', 'dispatched', 'stale', 'cancelling'].includes(task.state))
    return `task ${task.task_id} is still running (${task.state}): cancel it first, or wait for it to end`;
  return `task ${task.task_id} is ${task.state}: it needs no attention, there is nothing to dismiss`;
}

/** When a dispatched task's node has not answered for `limitMs`: since when, else undefined. */
export function staleSince(task: Pick<TaskRow, 'state' | 'last_seen_at' | 'dispatched_at' | 'created_at'>, now: Date, limitMs: number): string | undefined {
  if (task.state !== 'dispatched') return undefined;
  const since = task.last_seen_at ?? task.dispatched_at ?? task.created_at;
  return now.getTime() - Date.parse(since) >= limitMs ? since : undefined;
}

/**
 * Whether a collected task may merge now. In dispatch order, a task waits while one
 * dispatched before it is still running; with `anyOrder` nothing waits. Returns why it waits.
 */
export function mergeTurn(task: Pick<TaskRow, 'seq'>, firstOpen: Pick<TaskRow, 'seq' | 'task_id' | 'node'> | undefined, anyOrder: boolean): string | undefined {
  if (anyOrder || !firstOpen || firstOpen.seq >= task.seq) return undefined;
  return `waiting for ${firstOpen.task_id} (dispatched earlier, on ${firstOpen.node}) to finish: tasks merge in dispatch order`;
}

/** Outcomes are named after the states they report. */
const NEEDS_ATTENTION: readonly string[] = ATTENTION_STATES;

/** The exit code of a pull: attention beats an unreachable node, which beats work still pending. */
export function exitCodeFor(report: Pick<RunReport, 'tasks' | 'pending' | 'outstanding' | 'unreachable'>): number {
  if (report.tasks.some((t) => NEEDS_ATTENTION.includes(t.outcome)) || report.outstanding.length > 0) return EXIT.attention;
  if (report.unreachable.length > 0) return EXIT.ssh;
  if (report.pending.length > 0 || report.tasks.some((t) => t.outcome === 'waiting')) return EXIT.pending;
  return EXIT.ok;
}
