import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type NodeState, type TaskStatus } from '@gsync/core';
import { START_GRACE_MS, holdsSlot, planStarts, type QueueEntry } from '../src/queue-plan.js';

const NOW = Date.parse('2025-01-02T03:00:00.000Z');
const at = (msAgo: number) => new Date(NOW - msAgo).toISOString();

function entry(dir: string, state: NodeState, fields: Partial<TaskStatus> = {}, queuedMsAgo = 1000): QueueEntry {
  const history = [{ state: 'queued' as const, at: at(queuedMsAgo) }, ...(state === 'queued' ? [] : [{ state, at: at(10) }])];
  return { dir, status: { protocol: PROTOCOL_VERSION, state, updated_at: at(10), history, ...fields } };
}

const alive = (pids: number[]) => (pid: number | undefined) => pid !== undefined && pids.includes(pid);

describe('the node queue, as decisions', () => {
  it('counts a slot for a run just started, a live runner, or a live agent; never for queued, finished or dead work', () => {
    const live = alive([11, 22]);
    expect(holdsSlot(entry('a', 'received', { started_at: at(10) }).status, NOW, live)).toBe(true);
    expect(holdsSlot(entry('a', 'received', { started_at: at(10), updated_at: at(START_GRACE_MS + 1) }).status, NOW, live)).toBe(false);
    expect(holdsSlot(entry('a', 'received').status, NOW, live)).toBe(false);
    expect(holdsSlot(entry('a', 'running', { pid: 11 }).status, NOW, live)).toBe(true);
    // A runner killed while its agent lives on: the agent still takes the slot.
    expect(holdsSlot(entry('a', 'running', { pid: 99, agent_pid: 22 }).status, NOW, live)).toBe(true);
    expect(holdsSlot(entry('a', 'running', { pid: 99, agent_pid: 98 }).status, NOW, live)).toBe(false);
    expect(holdsSlot(entry('a', 'queued').status, NOW, live)).toBe(false);
    expect(holdsSlot(entry('a', 'done', { pid: 11 }).status, NOW, live)).toBe(false);
  });

  it('starts the oldest queued tasks into the free slots, ties by dir, and keeps the rest in order', () => {
    const entries = [
      entry('/w/p/tasks/S04', 'queued', {}, 100),
      entry('/w/p/tasks/S03', 'queued', {}, 300),
      entry('/w/q/tasks/S01', 'running', { pid: 11 }),
      entry('/w/p/tasks/S02', 'queued', {}, 300),
      entry('/w/p/tasks/S05', 'queued', {}, 200),
    ];
    const plan = planStarts(entries, 3, NOW, alive([11]));
    expect(plan.start.map((e) => e.dir)).toEqual(['/w/p/tasks/S02', '/w/p/tasks/S03']);
    expect(plan.waiting.map((e) => e.dir)).toEqual(['/w/p/tasks/S05', '/w/p/tasks/S04']);
    expect(planStarts(entries, 1, NOW, alive([11])).start).toEqual([]);
    expect(planStarts(entries, Number.POSITIVE_INFINITY, NOW, alive([11])).waiting).toEqual([]);
  });
});
