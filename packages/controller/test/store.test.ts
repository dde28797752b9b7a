import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';
import { ATTENTION_STATES, MIGRATIONS, OPEN_STATES, Store, canTransition, type TaskState } from '@gsync/controller';

const open: Store[] = [];
afterEach(() => {
  for (const s of open.splice(0)) if (s.db.open) s.close();
});
afterAll(cleanupTempDirs);

const BASE = 'a'.repeat(40);

/** A clock that starts at a fixed time and moves one second per reading. */
function clock(start = Date.UTC(2025, 0, 2, 3, 4, 5)) {
  let t = start;
  return () => {
    t += 1000;
    return new Date(t - 1000);
  };
}

function openStore(file: string, now = clock()): Store {
  const store = new Store(file, now);
  open.push(store);
  return store;
}

/** A task as a test needs it: inserted (so `dispatching`), then put in `state` directly, as a journey would have left it. */
function seedTask(store: Store, project: string, taskId: string, node: string, state: TaskState): void {
  store.insertTask(newTask(project, taskId, node));
  store.db.prepare('UPDATE tasks SET state = ? WHERE project = ? AND task_id = ?').run(state, project, taskId);
}

function newTask(project: string, taskId: string, node = 'n1') {
  return {
    project,
    task_id: taskId,
    node,
    branch: `task/${project}-${taskId}-${node}`,
    base_ref: 'refs/heads/main',
    base_commit: BASE,
    spec_title: `Title ${taskId}`,
    spec_sha256: 'f'.repeat(64),
  };
}

const userVersion = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
};

const columns = (db: Database.Database, table: string) =>
  (db.prepare(`SELECT name FROM pragma_table_info('${table}') ORDER BY cid`).all() as { name: string }[]).map((c) => c.name);

/** The first migration as gsync 0.1.0 shipped it: a database made by that version. */
const V1_SCHEMA = `CREATE TABLE tasks (
     project TEXT NOT NULL, task_id TEXT NOT NULL, node TEXT NOT NULL, branch TEXT NOT NULL, seq INTEGER NOT NULL,
     base_ref TEXT NOT NULL, base_commit TEXT NOT NULL, spec_title TEXT NOT NULL, spec_sha256 TEXT NOT NULL,
     state TEXT NOT NULL, node_state TEXT, result_head TEXT, result_commits INTEGER, changed_paths TEXT,
     wip_branch TEXT, merge_commit TEXT, conflict_paths TEXT, error TEXT, created_at TEXT NOT NULL,
     dispatched_at TEXT, finished_at TEXT, collected_at TEXT, merged_at TEXT,
     PRIMARY KEY (project, task_id)
   );
   CREATE INDEX tasks_by_state ON tasks (project, state);
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, project TEXT NOT NULL, task_id TEXT, node TEXT,
     kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT
   );
   CREATE INDEX events_by_task ON events (project, task_id);`;

describe('Store on a real SQLite file', () => {
  it('creates the file and its folder, in WAL mode, migrated to the latest schema', () => {
    const file = join(tempDir('gsync-store-'), 'state', 'nested', 'gsync.db');
    const store = openStore(file);
    expect(existsSync(file)).toBe(true);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    const version = store.db.pragma('user_version', { simple: true }) as number;
    expect(version).toBeGreaterThanOrEqual(1);
    expect(columns(store.db, 'tasks')).toEqual(expect.arrayContaining(['project', 'task_id', 'seq', 'state', 'merge_commit', 'conflict_paths']));
    expect(columns(store.db, 'events')).toEqual(['id', 'at', 'project', 'task_id', 'node', 'kind', 'message', 'data']);
  });

  it('keeps tasks and events across a reopen, without migrating again', () => {
    const file = join(tempDir('gsync-store-'), 'gsync.db');
    const first = openStore(file);
    const version = first.db.pragma('user_version', { simple: true }) as number;
    first.insertTask(newTask('proj', 'S01'));
    first.moveTask(
      'proj',
      'S01',
      'dispatched',
      { dispatched_at: '2025-01-02T03:05:00.000Z' },
      { node: 'n1', kind: 'dispatched', message: 'sent to n1', data: { bytes: 123 } },
      canTransition,
    );
    first.close();
    expect(userVersion(file)).toBe(version);

    const second = openStore(file);
    expect(second.db.pragma('user_version', { simple: true })).toBe(version);
    expect(second.getTask('proj', 'S01')).toMatchObject({ state: 'dispatched', seq: 1, dispatched_at: '2025-01-02T03:05:00.000Z' });
    expect(second.events('proj')).toEqual([
      { id: 1, at: '2025-01-02T03:04:06.000Z', project: 'proj', task_id: 'S01', node: 'n1', kind: 'dispatched', message: 'sent to n1', data: '{"bytes":123}' },
    ]);
    second.insertTask(newTask('proj', 'S02'));
    expect(second.getTask('proj', 'S02')!.seq).toBe(2);
  });

  it('upgrades a database made by the first schema, keeping its rows', () => {
    const file = join(tempDir('gsync-store-'), 'gsync.db');
    const old = new Database(file);
    old.exec(V1_SCHEMA);
    old
      .prepare(
        `INSERT INTO tasks (project, task_id, node, branch, seq, base_ref, base_commit, spec_title, spec_sha256, state, created_at, merge_commit)
         VALUES ('proj', 'S01', 'n1', 'task/proj-S01-n1', 1, 'refs/heads/main', ?, 'Old task', ?, 'merged', '2024-12-31T00:00:00.000Z', ?)`,
      )
      .run(BASE, 'f'.repeat(64), 'c'.repeat(40));
    old.prepare(`INSERT INTO events (at, project, kind, message) VALUES ('2024-12-31T00:00:01.000Z', 'proj', 'merged', 'old')`).run();
    old.pragma('user_version = 1');
    old.close();

    const fresh = openStore(join(tempDir('gsync-store-'), 'fresh.db'));
    const upgraded = openStore(file);
    expect(upgraded.db.pragma('user_version', { simple: true })).toBe(fresh.db.pragma('user_version', { simple: true }));
    expect(columns(upgraded.db, 'tasks')).toEqual(columns(fresh.db, 'tasks'));
    expect(upgraded.getTask('proj', 'S01')).toMatchObject({ spec_title: 'Old task', state: 'merged', merge_commit: 'c'.repeat(40), seq: 1 });
    expect(upgraded.events('proj').map((e) => e.message)).toEqual(['old']);
    expect(upgraded.insertTask(newTask('proj', 'S02')).seq).toBe(2);
  });
});

describe('tasks', () => {
  it('inserts a task with its own timestamp, the next seq of its project and nulls for what is not known yet', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    const row = store.insertTask(newTask('proj', 'S01'));
    expect(row).toMatchObject({
      ...newTask('proj', 'S01'),
      seq: 1,
      created_at: '2025-01-02T03:04:05.000Z',
      node_state: null,
      result_head: null,
      merge_commit: null,
      dispatched_at: null,
    });
    expect(store.insertTask(newTask('proj', 'S02')).seq).toBe(2);
    expect(store.insertTask(newTask('other', 'S01')).seq).toBe(1);
  });

  it('refuses a second task with the same id in a project', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    store.insertTask(newTask('proj', 'S01'));
    expect(() => store.insertTask(newTask('proj', 'S01', 'n2'))).toThrow(/UNIQUE constraint failed/);
    expect(store.listTasks('proj')).toHaveLength(1);
  });

  it('lists in dispatch order, filters by state, and counts open tasks per node across projects', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    seedTask(store, 'proj', 'S03', 'n1', 'dispatched');
    seedTask(store, 'proj', 'S01', 'n2', 'conflicted');
    seedTask(store, 'proj', 'S02', 'n1', 'merged');
    seedTask(store, 'other', 'S01', 'n1', 'dispatching');
    seedTask(store, 'other', 'S02', 'n2', 'failed');
    expect(store.listTasks('proj').map((t) => t.task_id)).toEqual(['S03', 'S01', 'S02']);
    expect(store.listTasks('proj', ATTENTION_STATES).map((t) => t.task_id)).toEqual(['S01']);
    expect(store.listTasks('other', OPEN_STATES).map((t) => t.task_id)).toEqual(['S01']);
    expect(store.taskIds('proj').sort()).toEqual(['S01', 'S02', 'S03']);
    expect(store.openTasksByNode()).toEqual(new Map([['n1', 2]]));
    expect(store.listTasks('nobody')).toEqual([]);
  });

  it('updates only the fields given, of only the task named', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    store.insertTask(newTask('proj', 'S01'));
    store.insertTask(newTask('proj', 'S02'));
    store.updateTask('proj', 'S01', { conflict_paths: JSON.stringify(['a.txt']), error: 'it\'s "quoted"; DROP TABLE tasks' });
    store.updateTask('proj', 'S01', {});
    expect(store.getTask('proj', 'S01')).toMatchObject({
      state: 'dispatching',
      conflict_paths: '["a.txt"]',
      error: 'it\'s "quoted"; DROP TABLE tasks',
      branch: 'task/proj-S01-n1',
    });
    expect(store.getTask('proj', 'S02')).toMatchObject({ state: 'dispatching', conflict_paths: null, error: null });
  });

  it('deletes a task', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    store.insertTask(newTask('proj', 'S01'));
    store.deleteTask('proj', 'S01');
    expect(store.getTask('proj', 'S01')).toBeUndefined();
  });
});

describe('events', () => {
  it('records events in order, per project and per task, with their data as JSON', () => {
    const store = openStore(join(tempDir('gsync-store-'), 'gsync.db'));
    store.addEvent({ project: 'proj', task_id: 'S01', node: 'n1', kind: 'dispatched', message: 'one' });
    store.addEvent({ project: 'proj', kind: 'pull', message: 'two', data: { merged: ['S01'], unicode: '项目' } });
    store.addEvent({ project: 'other', task_id: 'S01', kind: 'dispatched', message: 'elsewhere' });
    store.addEvent({ project: 'proj', task_id: 'S01', kind: 'merged', message: 'three', data: null });
    expect(store.events('proj').map((e) => e.message)).toEqual(['one', 'two', 'three']);
    expect(store.events('proj', 'S01').map((e) => e.message)).toEqual(['one', 'three']);
    const [one, two, three] = store.events('proj');
    expect(one).toMatchObject({ task_id: 'S01', node: 'n1', data: null, at: '2025-01-02T03:04:05.000Z' });
    expect(two).toMatchObject({ task_id: null, node: null, at: '2025-01-02T03:04:06.000Z' });
    expect(JSON.parse(two!.data!)).toEqual({ merged: ['S01'], unicode: '项目' });
    expect(three!.data).toBe('null');
  });
});

describe('schema upgrades', () => {
  /** sha256 (first 16 hex) of every migration step released so far: a released step is never edited, moved or removed. */
  const RELEASED = ['2cfd648c6397149e', '90100076df097c45', 'eb85646ec224e072', 'a478365d26273570', '8ac9750fa7cb0c8f'];

  it('released steps stay exactly as they were released, in their place; new ones only follow them', () => {
    const hashes = MIGRATIONS.map((step) => createHash('sha256').update(step).digest('hex').slice(0, 16));
    expect(hashes.slice(0, RELEASED.length)).toEqual(RELEASED);
  });

  it('a store made by an older gsync-ctl is upgraded in place, its tasks kept', () => {
    const file = join(tempDir('gsync-store-'), 'gsync.db');
    const old = new Database(file);
    for (const step of MIGRATIONS.slice(0, RELEASED.length)) old.exec(step);
    old.pragma(`user_version = ${RELEASED.length}`);
    old
      .prepare(
        "INSERT INTO tasks (project, task_id, node, branch, seq, base_ref, base_commit, spec_title, spec_sha256, state, created_at) VALUES ('p', 'S01', 'n', 'task/p-S01-n', 1, 'refs/heads/main', ?, 't', ?, 'merged', '2025-01-01T00:00:00.000Z')",
      )
      .run(BASE, 'b'.repeat(64));
    old.close();
    const store = openStore(file);
    expect(store.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const row = store.getTask('p', 'S01')!;
    expect(row).toMatchObject({ state: 'merged', cleaned_at: null, downgraded: null });
  });
});
