import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TaskReport, TaskResult } from '@gsync/core';
import {
  ATTENTION_STATES,
  AWAITED_STATES,
  CANCELLABLE_STATES,
  DISMISSABLE_STATES,
  EXIT,
  OPEN_STATES,
  PENDING_STATES,
  RETRYABLE_STATES,
  Store,
  TASK_STATES,
  TRANSITIONS,
  canTransition,
  cancelRefusal,
  cancelledStep,
  dismissRefusal,
  exitCodeFor,
  finishStep,
  lostStep,
  mergeTurn,
  readAnswer,
  staleSince,
  type ReportTask,
  type TaskState,
} from '@gsync/controller';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';

afterAll(cleanupTempDirs);

const at = '2025-01-02T03:04:05.000Z';
const task = { task_id: 'S01', node: 'gpu-1' };

function status(state: string, extra: object = {}) {
  return { protocol: 1 as const, state: state as never, updated_at: at, history: [], ...extra };
}

function result(wip = false): TaskResult {
  return {
    protocol: 1,
    project: 'p',
    task_id: 'S01',
    node: 'gpu-1',
    branch: 'task/p-S01-gpu-1',
    base: 'a'.repeat(40),
    head: 'b'.repeat(40),
    commits: 1,
    changed_paths: ['x.py'],
    bundle: { name: 'result.bundle', size: 10, sha256: 'c'.repeat(64) },
    wip,
    agent_exit_code: wip ? 1 : 0,
    finished_at: at,
  };
}

describe('the transition table', () => {
  it('names every state, and every move leads to a known state', () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...TASK_STATES].sort());
    for (const targets of Object.values(TRANSITIONS)) for (const to of targets) expect(TASK_STATES).toContain(to);
  });

  it('lets merged, empty, resolved and retried tasks go nowhere, and nothing go back to dispatching', () => {
    for (const end of ['merged', 'empty', 'resolved', 'retried'] as TaskState[]) expect(TRANSITIONS[end]).toEqual([]);
    for (const from of TASK_STATES) expect(canTransition(from, 'dispatching')).toBe(false);
  });

  it('allows exactly the moves of a task journey', () => {
    expect(canTransition('dispatching', 'dispatched')).toBe(true);
    expect(canTransition('dispatched', 'collected')).toBe(true);
    expect(canTransition('collected', 'merged')).toBe(true);
    expect(canTransition('conflicted', 'resolved')).toBe(true);
    expect(canTransition('stale', 'dispatched')).toBe(true);
    expect(canTransition('dispatched', 'merged')).toBe(false);
    expect(canTransition('merged', 'collected')).toBe(false);
    expect(canTransition('conflicted', 'retried')).toBe(false);
  });

  it('only retries what may be sent again, and asks attention of what the user must handle', () => {
    for (const s of RETRYABLE_STATES) expect(canTransition(s, 'retried')).toBe(true);
    expect(OPEN_STATES).toEqual(['dispatching', 'dispatched']);
    expect(ATTENTION_STATES).not.toContain('merged');
  });
});

describe('cancel and dismiss', () => {
  it('cancels only what may still run, through cancelling, and never to a merge', () => {
    expect(CANCELLABLE_STATES).toEqual(['dispatched', 'stale']);
    for (const s of CANCELLABLE_STATES) expect(canTransition(s, 'cancelling')).toBe(true);
    expect(TRANSITIONS.cancelling).toEqual(['cancelled']);
    expect(TRANSITIONS.cancelled).toEqual(['retried']);
    for (const s of TASK_STATES) if (!CANCELLABLE_STATES.includes(s)) expect(canTransition(s, 'cancelling')).toBe(false);
    // Asked about until its work is back, waited for, counted as pending; never a merge turn or a node's load.
    expect(AWAITED_STATES).toContain('cancelling');
    expect(PENDING_STATES).toContain('cancelling');
    expect(OPEN_STATES).not.toContain('cancelling');
    expect(ATTENTION_STATES).not.toContain('cancelled');
  });

  it('dismisses what needs the user and has ended, and lets it be retried', () => {
    expect([...DISMISSABLE_STATES].sort()).toEqual(['collected', 'conflicted', 'failed', 'rejected', 'timeout', 'withheld']);
    for (const s of DISMISSABLE_STATES) expect(canTransition(s, 'dismissed')).toBe(true);
    for (const s of TASK_STATES) if (!DISMISSABLE_STATES.includes(s)) expect(canTransition(s, 'dismissed')).toBe(false);
    expect(TRANSITIONS.dismissed).toEqual(['retried']);
    expect(RETRYABLE_STATES).toEqual(expect.arrayContaining(['dismissed', 'cancelled']));
    expect(ATTENTION_STATES).not.toContain('dismissed');
  });

  it('says in one line why a task cannot be cancelled or dismissed, and nothing when it can (or already is)', () => {
    const t = (state: TaskState) => ({ task_id: 'S01', state });
    for (const s of ['dispatched', 'stale', 'cancelling', 'cancelled'] as TaskState[]) expect(cancelRefusal(t(s))).toBeUndefined();
    expect(cancelRefusal(t('merged'))).toBe('task S01 has already ended (merged): there is nothing to cancel');
    expect(cancelRefusal(t('failed'))).toBe('task S01 has already ended (failed): there is nothing to cancel');
    expect(cancelRefusal(t('dispatching'))).toMatch(/^task S01 was never dispatched/);
    for (const s of [...DISMISSABLE_STATES, 'dismissed' as TaskState]) expect(dismissRefusal(t(s))).toBeUndefined();
    for (const s of ['dispatching', 'dispatched', 'stale', 'cancelling'] as TaskState[])
      expect(dismissRefusal(t(s))).toMatch(/still running .*cancel it first/);
    expect(dismissRefusal(t('merged'))).toBe('task S01 is merged: it needs no attention, there is nothing to dismiss');
    for (const s of TASK_STATES) expect(/\n/.test(cancelRefusal(t(s)) ?? '') || /\n/.test(dismissRefusal(t(s)) ?? '')).toBe(false);
  });

  it('a cancelled task ends cancelled whatever its node says, its work on -wip only', () => {
    const done = readAnswer({ task_id: 'S01', exists: true, status: status('done', { finished_at: at }), result: result() });
    if (done.kind !== 'finished') throw new Error('expected finished');
    const wip = { kind: 'collected' as const, head: 'b'.repeat(40), commits: 1, paths: ['x.py'], branch: 'task/p-S01-gpu-1-wip', wip: true };
    expect(cancelledStep(task, done, wip, 'now')).toMatchObject({
      to: 'cancelled',
      fields: { wip_branch: 'task/p-S01-gpu-1-wip', result_head: 'b'.repeat(40), finished_at: at, collected_at: 'now' },
      event: { kind: 'cancel_settled', message: 'S01 on gpu-1 cancelled; its work so far is on task/p-S01-gpu-1-wip, not merged' },
    });
    // Never an error field: the reason given to cancel stays the task's error.
    expect(cancelledStep(task, done, wip, 'now').fields).not.toHaveProperty('error');
    expect(cancelledStep(task, done, { kind: 'rejected', reason: 'bad\u001b[2J' }, 'now')).toMatchObject({
      to: 'cancelled',
      fields: { finished_at: at },
      event: { level: 'warn', message: expect.not.stringContaining('\u001b') },
    });
    const queued = { ...done, nodeState: 'failed' as const, error: 'cancelled before it started', result: undefined };
    expect(cancelledStep(task, queued, undefined, 'now')).toMatchObject({
      to: 'cancelled',
      fields: { finished_at: at },
      event: { message: 'S01 on gpu-1 cancelled; no work came back (cancelled before it started)' },
    });
    expect(cancelledStep(task, { kind: 'lost', reason: 'gone' }, undefined, 'now')).toMatchObject({
      to: 'cancelled',
      fields: { finished_at: 'now' },
      event: { level: 'warn', message: 'S01 on gpu-1 cancelled; nothing came back: gone' },
    });
  });
});

describe('what a node answer means', () => {
  it("a missing answer or task dir is a lost task, with the node's reason when it gave one", () => {
    expect(readAnswer(undefined)).toEqual({ kind: 'lost', reason: 'the task directory is missing on the node' });
    const gone: TaskReport = { task_id: 'S01', exists: false, status: null, result: null, error: 'no such task' };
    expect(readAnswer(gone)).toEqual({ kind: 'lost', reason: 'no such task' });
    expect(lostStep(task, 'gone', at)).toMatchObject({ to: 'failed', fields: { error: 'gone', finished_at: at }, event: { kind: 'task_lost' } });
  });

  it('a running state is only news of the node state', () => {
    for (const s of ['received', 'preparing', 'running', 'committing', 'bundling']) {
      expect(readAnswer({ task_id: 'S01', exists: true, status: status(s), result: null })).toEqual({ kind: 'running', nodeState: s });
    }
  });

  it('withheld files are read from the result, else from the status', () => {
    const withheld = [{ path: '.env', rule: 'env file' }];
    const a = readAnswer({ task_id: 'S01', exists: true, status: status('empty', { withheld }), result: null });
    expect(a).toMatchObject({ kind: 'finished', nodeState: 'empty', withheld });
  });

  it('a finished task goes to collected, empty, rejected, failed or timeout', () => {
    const done = readAnswer({ task_id: 'S01', exists: true, status: status('done', { finished_at: at }), result: result() });
    if (done.kind !== 'finished') throw new Error('expected finished');
    const collected = { kind: 'collected' as const, head: 'b'.repeat(40), commits: 1, paths: ['x.py'], branch: 'task/p-S01-gpu-1', wip: false };
    expect(finishStep(task, done, collected, 'now')).toMatchObject({
      to: 'collected',
      fields: { result_head: 'b'.repeat(40), result_commits: 1, changed_paths: '["x.py"]', finished_at: at, collected_at: 'now' },
    });
    expect(finishStep(task, done, { kind: 'rejected', reason: 'bad' }, 'now')).toMatchObject({ to: 'rejected', fields: { error: 'bad', finished_at: at } });
    expect(finishStep(task, { ...done, nodeState: 'empty' }, undefined, 'now')).toMatchObject({ to: 'empty' });

    const failed = { ...done, nodeState: 'failed' as const, error: 'agent exited with 1', result: result(true) };
    const wip = finishStep(task, failed, { ...collected, branch: 'task/p-S01-gpu-1-wip', wip: true }, 'now');
    expect(wip).toMatchObject({ to: 'failed', fields: { wip_branch: 'task/p-S01-gpu-1-wip', error: 'agent exited with 1', result_head: 'b'.repeat(40) } });
    expect(wip.event.message).toContain('work in progress on task/p-S01-gpu-1-wip');

    const timeout = finishStep(task, { ...done, nodeState: 'timeout', error: undefined, result: undefined }, undefined, 'now');
    expect(timeout).toMatchObject({ to: 'timeout', fields: { error: 'the agent ended as timeout', finished_at: at } });
  });
});

describe('staleness, merge order and exit codes', () => {
  const base = { state: 'dispatched' as TaskState, last_seen_at: null, dispatched_at: '2025-01-01T00:00:00.000Z', created_at: '2025-01-01T00:00:00.000Z' };

  it('a dispatched task is stale once its node has been silent for the limit, counted from when it was last seen', () => {
    expect(staleSince(base, new Date('2025-01-01T01:00:00.000Z'), 3600_000)).toBe(base.dispatched_at);
    expect(staleSince(base, new Date('2025-01-01T00:59:59.000Z'), 3600_000)).toBeUndefined();
    expect(staleSince({ ...base, last_seen_at: '2025-01-01T00:30:00.000Z' }, new Date('2025-01-01T01:00:00.000Z'), 3600_000)).toBeUndefined();
    expect(staleSince({ ...base, state: 'collected' }, new Date('2030-01-01'), 1)).toBeUndefined();
  });

  it('a task waits for one dispatched before it, unless any order is allowed', () => {
    const first = { seq: 1, task_id: 'S01', node: 'n1' };
    expect(mergeTurn({ seq: 2 }, first, false)).toMatch(/waiting for S01/);
    expect(mergeTurn({ seq: 2 }, first, true)).toBeUndefined();
    expect(mergeTurn({ seq: 1 }, { seq: 3, task_id: 'S03', node: 'n1' }, false)).toBeUndefined();
    expect(mergeTurn({ seq: 1 }, undefined, false)).toBeUndefined();
  });

  it('attention beats an unreachable node, which beats pending work', () => {
    const t = (outcome: ReportTask['outcome']) => ({ outcome }) as ReportTask;
    const none = { tasks: [], pending: [], outstanding: [], unreachable: [] };
    expect(exitCodeFor(none)).toBe(EXIT.ok);
    expect(exitCodeFor({ ...none, tasks: [t('merged'), t('empty')] })).toBe(EXIT.ok);
    expect(exitCodeFor({ ...none, tasks: [t('waiting')] })).toBe(EXIT.pending);
    expect(exitCodeFor({ ...none, pending: [{ task_id: 'S1', node: 'n', node_state: null }], unreachable: [{ node: 'n', error: 'x' }] })).toBe(EXIT.ssh);
    expect(exitCodeFor({ ...none, tasks: [t('conflicted')], unreachable: [{ node: 'n', error: 'x' }] })).toBe(EXIT.attention);
    expect(exitCodeFor({ ...none, outstanding: [t('stale')] })).toBe(EXIT.attention);
    // A cancel is the user's own choice: nothing to attend to once its work is back, pending until then.
    expect(exitCodeFor({ ...none, tasks: [t('cancelled')] })).toBe(EXIT.ok);
    expect(exitCodeFor({ ...none, pending: [{ task_id: 'S1', node: 'n', node_state: 'running', cancelling: true }] })).toBe(EXIT.pending);
  });
});

describe('a state change in the store', () => {
  const newTask = {
    project: 'p',
    task_id: 'S01',
    node: 'n1',
    branch: 'task/p-S01-n1',
    base_ref: 'refs/heads/main',
    base_commit: 'a'.repeat(40),
    spec_title: 't',
    spec_sha256: 'f'.repeat(64),
  };

  it('is written with its event in one transaction, and a move the table forbids writes nothing', () => {
    const store = new Store(join(tempDir('gsync-life-'), 'gsync.db'));
    store.insertTask(newTask);
    expect(() => store.moveTask('p', 'S01', 'merged', { merge_commit: 'c'.repeat(40) }, { kind: 'merged', message: 'm' }, canTransition)).toThrow(
      /cannot go from dispatching to merged/,
    );
    expect(store.getTask('p', 'S01')).toMatchObject({ state: 'dispatching', merge_commit: null });
    expect(store.events('p')).toEqual([]);
    const row = store.moveTask('p', 'S01', 'dispatched', { node_state: 'running' }, { node: 'n1', kind: 'dispatched', message: 'sent' }, canTransition);
    expect(row).toMatchObject({ state: 'dispatched', node_state: 'running' });
    expect(store.events('p')).toMatchObject([{ task_id: 'S01', node: 'n1', kind: 'dispatched', message: 'sent' }]);
    store.close();
  });

  it('cannot be made by a plain field update', () => {
    const store = new Store(join(tempDir('gsync-life-'), 'gsync.db'));
    store.insertTask(newTask);
    expect(() => store.updateTask('p', 'S01', { state: 'merged' } as never)).toThrow(/only through transition/);
    expect(store.getTask('p', 'S01')!.state).toBe('dispatching');
    store.close();
  });
});
