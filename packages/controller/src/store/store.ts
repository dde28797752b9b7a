import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, UsageError } from '@gsync/core/errors';
import { inertJson } from '@gsync/core/inert';
import { MIGRATIONS } from './migrations.js';
import { OPEN_STATES, type TaskState } from '../lifecycle/states.js';

/** better-sqlite3 is CommonJS: required, not imported, it skips the ESM wrapper's parse of its sources on every start. */
const openSqlite = () => createRequire(import.meta.url)('better-sqlite3') as typeof Database;

/** The controller's record of every task and every step (SQLite, WAL). The states and their moves live in lifecycle/. */
export interface TaskRow {
  project: string;
  task_id: string;
  node: string;
  branch: string;
  seq: number;
  base_ref: string;
  base_commit: string;
  spec_title: string;
  spec_sha256: string;
  state: TaskState;
  node_state: string | null;
  result_head: string | null;
  result_commits: number | null;
  changed_paths: string | null;
  wip_branch: string | null;
  merge_commit: string | null;
  conflict_paths: string | null;
  error: string | null;
  created_at: string;
  dispatched_at: string | null;
  finished_at: string | null;
  collected_at: string | null;
  merged_at: string | null;
  /** The spec as dispatched: what a conflict resolution tells the next agent. */
  spec_text: string | null;
  /** Paths the spec named (JSON list), for the overlap warning at dispatch. */
  spec_files: string | null;
  /** For a resolution task: the conflicted task it resolves, and that task's head it merges. */
  resolves: string | null;
  merge_head: string | null;
  /** For a conflicted task: the task dispatched to resolve it. */
  resolved_by: string | null;
  verify_log: string | null;
  /** The gsync-ctl process sending the task while it is `dispatching`: a dead one means an interrupted dispatch. */
  dispatch_pid: number | null;
  /** When the node last answered about this task. */
  last_seen_at: string | null;
  /** When cleanup removed what the task left (its merged branch, refs, reports, node dir). */
  cleaned_at: string | null;
  /** Plan A: why this task's code or result travelled as a bundle instead of through the shared remote. */
  downgraded: string | null;
  /** For a task made by `retry`: the task it replaces. */
  retry_of: string | null;
  /** Files the node refused to commit as secrets (JSON list of {path, rule}); they stayed on the node. */
  withheld: string | null;
}

export type NewTask = Pick<TaskRow, 'project' | 'task_id' | 'node' | 'branch' | 'base_ref' | 'base_commit' | 'spec_title' | 'spec_sha256'> &
  Partial<Pick<TaskRow, 'spec_text' | 'spec_files' | 'resolves' | 'merge_head' | 'dispatch_pid' | 'retry_of'>>;

/** Tasks grouped by the node they went to, in the order given. */
export function tasksByNode<T extends Pick<TaskRow, 'node'>>(tasks: readonly T[]): Map<string, T[]> {
  const byNode = new Map<string, T[]>();
  for (const t of tasks) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  return byNode;
}

/** Fields of a task that change with its journey; its state changes only through lifecycle's `transition()`. */
export type TaskFields = Partial<Omit<TaskRow, 'project' | 'task_id' | 'seq' | 'state'>>;

export interface NewEvent {
  project: string;
  task_id?: string | null;
  node?: string | null;
  kind: string;
  message: string;
  data?: unknown;
}

export interface EventRow {
  id: number;
  at: string;
  project: string;
  task_id: string | null;
  node: string | null;
  kind: string;
  message: string;
  data: string | null;
}

function untilNotBusy<T>(fn: () => T, timeoutMs = 15_000): T {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return fn();
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (!code.startsWith('SQLITE_BUSY') && !code.startsWith('SQLITE_LOCKED')) throw error;
      if (performance.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20 + Math.random() * 30);
    }
  }
}

export class Store {
  readonly db: Database.Database;
  private readonly now: () => Date;

  constructor(file: string, now: () => Date = () => new Date()) {
    this.now = now;
    try {
      mkdirSync(dirname(file), { recursive: true });
      this.db = new (openSqlite())(file);
      // SQLite opens a file it may not write read-only without a word, and fails at the first write.
      try {
        accessSync(file, constants.W_OK);
      } catch {
        throw Object.assign(new Error(`${file} is read-only`), { code: 'SQLITE_READONLY' });
      }
      this.db.pragma('busy_timeout = 10000');
      // Switching a new file to WAL takes an exclusive lock without waiting on the busy
      // handler: a controller opening the store while another creates it tries again.
      untilNotBusy(() => this.db.pragma('journal_mode = WAL'));
      this.db.pragma('foreign_keys = ON');
      untilNotBusy(() => this.migrate());
    } catch (error) {
      const code = String((error as { code?: string }).code ?? '');
      if (!/^(SQLITE_CANTOPEN|SQLITE_READONLY|SQLITE_PERM|SQLITE_AUTH|EACCES|EPERM|EROFS)/.test(code)) throw error;
      throw new ConfigError(file, '', `cannot open the store (${code}): the config dir and the store in it must be writable by this user`, {
        hint: 'fix the permissions of the config dir, or point --config-dir / GSYNC_HOME at a writable folder',
        cause: error,
      });
    }
  }

  /** Under a write lock, so two controllers opening a new store at once do not both migrate it. */
  private migrate(): void {
    this.db
      .transaction(() => {
        const version = this.db.pragma('user_version', { simple: true }) as number;
        for (let v = version; v < MIGRATIONS.length; v++) {
          this.db.exec(MIGRATIONS[v]!);
          this.db.pragma(`user_version = ${v + 1}`);
        }
      })
      .immediate();
  }

  close(): void {
    this.db.close();
  }

  timestamp(): string {
    return this.now().toISOString();
  }

  /** A new task starts `dispatching`: the row is the reservation of its id. */
  insertTask(row: NewTask): TaskRow {
    // IMMEDIATE: it reads then writes, and a deferred transaction that another writer
    // overtook between the two fails at once (SQLITE_BUSY_SNAPSHOT) instead of waiting.
    const insert = this.db.transaction(() => {
      const seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM tasks WHERE project = ?').get(row.project) as { n: number }).n;
      this.db
        .prepare(
          `INSERT INTO tasks (project, task_id, node, branch, seq, base_ref, base_commit, spec_title, spec_sha256, state, created_at,
                              spec_text, spec_files, resolves, merge_head, dispatch_pid, retry_of)
           VALUES (@project, @task_id, @node, @branch, @seq, @base_ref, @base_commit, @spec_title, @spec_sha256, @state, @created_at,
                   @spec_text, @spec_files, @resolves, @merge_head, @dispatch_pid, @retry_of)`,
        )
        .run({
          spec_text: null,
          spec_files: null,
          resolves: null,
          merge_head: null,
          dispatch_pid: null,
          retry_of: null,
          ...row,
          state: 'dispatching',
          seq,
          created_at: this.timestamp(),
        });
      return this.getTask(row.project, row.task_id)!;
    });
    return untilNotBusy(() => insert.immediate());
  }

  /** Takes the named lock for `pid` unless a live process holds it; returns that process's pid when it does. */
  tryLock(name: string, pid: number, alive: (pid: number) => boolean): number | undefined {
    return untilNotBusy(() =>
      this.db
        .transaction((): number | undefined => {
          const row = this.db.prepare('SELECT pid FROM locks WHERE name = ?').get(name) as { pid: number } | undefined;
          if (row && row.pid !== pid && alive(row.pid)) return row.pid;
          this.db.prepare('INSERT OR REPLACE INTO locks (name, pid, at) VALUES (?, ?, ?)').run(name, pid, this.timestamp());
          return undefined;
        })
        .immediate(),
    );
  }

  unlock(name: string, pid: number): void {
    this.db.prepare('DELETE FROM locks WHERE name = ? AND pid = ?').run(name, pid);
  }

  /** The task a command names; none is bad input (exit 2), said in one line with where to look. */
  taskNamed(project: string, taskId: string): TaskRow {
    const task = this.getTask(project, taskId);
    if (!task) throw new UsageError(`no task ${taskId} in project ${project}`, { hint: `gsync-ctl status --project ${project} lists its tasks` });
    return task;
  }

  getTask(project: string, taskId: string): TaskRow | undefined {
    return this.db.prepare('SELECT * FROM tasks WHERE project = ? AND task_id = ?').get(project, taskId) as TaskRow | undefined;
  }

  listTasks(project: string, states?: readonly TaskState[]): TaskRow[] {
    const all = this.db.prepare('SELECT * FROM tasks WHERE project = ? ORDER BY seq').all(project) as TaskRow[];
    return states ? all.filter((t) => states.includes(t.state)) : all;
  }

  taskIds(project: string): string[] {
    return (this.db.prepare('SELECT task_id FROM tasks WHERE project = ?').all(project) as { task_id: string }[]).map((r) => r.task_id);
  }

  /** Open tasks per node, across projects: what "least busy" counts. */
  openTasksByNode(): Map<string, number> {
    const rows = this.db
      .prepare(`SELECT node, COUNT(*) AS n FROM tasks WHERE state IN (${OPEN_STATES.map(() => '?').join(', ')}) GROUP BY node`)
      .all(...OPEN_STATES) as { node: string; n: number }[];
    return new Map(rows.map((r) => [r.node, r.n]));
  }

  updateTask(project: string, taskId: string, fields: TaskFields): void {
    if ('state' in fields) throw new Error("a task's state changes only through transition()");
    this.writeFields(project, taskId, fields);
  }

  private writeFields(project: string, taskId: string, fields: TaskFields & { state?: TaskState }): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    const set = keys.map((k) => `${k} = @${k}`).join(', ');
    this.db.prepare(`UPDATE tasks SET ${set} WHERE project = @project_key AND task_id = @task_key`).run({
      ...fields,
      project_key: project,
      task_key: taskId,
    });
  }

  /**
   * Moves a task to `to` with its fields and its event, in one write transaction;
   * `allowed` says whether the move from the state it is in now is legal. Returns the row as written.
   */
  moveTask(
    project: string,
    taskId: string,
    to: TaskState,
    fields: TaskFields,
    event: Omit<NewEvent, 'project' | 'task_id'>,
    allowed: (from: TaskState, to: TaskState) => boolean,
  ): TaskRow {
    const move = this.db.transaction(() => {
      const row = this.getTask(project, taskId);
      if (!row) throw new Error(`task ${taskId} of ${project} does not exist`);
      if (!allowed(row.state, to)) throw new Error(`task ${taskId} of ${project} cannot go from ${row.state} to ${to}`);
      this.writeFields(project, taskId, { ...fields, state: to });
      this.addEvent({ ...event, project, task_id: taskId });
      return this.getTask(project, taskId)!;
    });
    return untilNotBusy(() => move.immediate());
  }

  deleteTask(project: string, taskId: string): void {
    this.db.prepare('DELETE FROM tasks WHERE project = ? AND task_id = ?').run(project, taskId);
  }

  addEvent(event: NewEvent): void {
    this.db
      .prepare('INSERT INTO events (at, project, task_id, node, kind, message, data) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(
        this.timestamp(),
        event.project,
        event.task_id ?? null,
        event.node ?? null,
        event.kind,
        event.message,
        event.data === undefined ? null : inertJson(event.data),
      );
  }

  /** Drops events older than `before` (an ISO time); returns how many. */
  dropEventsBefore(before: string): number {
    return untilNotBusy(() => this.db.prepare('DELETE FROM events WHERE at < ?').run(before).changes);
  }

  /** Gives the space of deleted rows back to the file system. */
  compact(): void {
    untilNotBusy(() => this.db.pragma('wal_checkpoint(TRUNCATE)'));
    untilNotBusy(() => this.db.exec('VACUUM'));
    untilNotBusy(() => this.db.pragma('wal_checkpoint(TRUNCATE)'));
  }

  events(project: string, taskId?: string): EventRow[] {
    if (taskId) {
      return this.db.prepare('SELECT * FROM events WHERE project = ? AND task_id = ? ORDER BY id').all(project, taskId) as EventRow[];
    }
    return this.db.prepare('SELECT * FROM events WHERE project = ? ORDER BY id').all(project) as EventRow[];
  }
}
