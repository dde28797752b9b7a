import { isFinal } from '@gsync/core';
import type { TaskTail } from '../node-api/tail.js';
import type { TaskRow } from '../store/store.js';

/** A task `pull --wait` waits for, as shown while it waits. */
export interface WaitingTask {
  task_id: string;
  node: string;
  /** The state on the node (running, queued, ...), as last heard. */
  state: string | null;
  /** When its run started on the node, or, before that, when it was dispatched. */
  since: string | null;
  /** The last line of its agent's log (raw: escaped where it is shown). */
  line: string;
}

/**
 * What `pull --wait` knows of the tasks it waits for, told to `show` whenever it
 * changes: the store says which tasks and where, the nodes' wait answers say how far
 * each is. Only the tasks waited for now are kept, one line each.
 */
export class Waiting {
  private tasks = new Map<string, WaitingTask>();

  constructor(private readonly show: (tasks: readonly WaitingTask[]) => void) {}

  /** The tasks waited for in this round; what their nodes said before is kept. */
  set(rows: readonly Pick<TaskRow, 'task_id' | 'node' | 'node_state' | 'dispatched_at'>[]): void {
    const before = this.tasks;
    this.tasks = new Map(
      rows.map((r) => {
        const known = before.get(r.task_id);
        const fresh = { task_id: r.task_id, node: r.node, state: r.node_state, since: r.dispatched_at, line: '' };
        return [r.task_id, known?.node === r.node ? known : fresh];
      }),
    );
    this.show([...this.tasks.values()]);
  }

  tails(tails: readonly TaskTail[]): void {
    for (const tail of tails) {
      const task = this.tasks.get(tail.task_id);
      if (!task) continue;
      // Ended: no longer waited for; the round that follows collects it.
      if (tail.state && isFinal(tail.state)) {
        this.tasks.delete(tail.task_id);
        continue;
      }
      task.state = tail.state ?? task.state;
      task.since = tail.started_at ?? task.since;
      task.line = tail.line;
    }
    this.show([...this.tasks.values()]);
  }
}
