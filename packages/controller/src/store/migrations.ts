/** The store's schema, one step per version (`PRAGMA user_version`); a step is never edited once released. */
export const MIGRATIONS = [
  `CREATE TABLE tasks (
     project TEXT NOT NULL,
     task_id TEXT NOT NULL,
     node TEXT NOT NULL,
     branch TEXT NOT NULL,
     seq INTEGER NOT NULL,
     base_ref TEXT NOT NULL,
     base_commit TEXT NOT NULL,
     spec_title TEXT NOT NULL,
     spec_sha256 TEXT NOT NULL,
     state TEXT NOT NULL,
     node_state TEXT,
     result_head TEXT,
     result_commits INTEGER,
     changed_paths TEXT,
     wip_branch TEXT,
     merge_commit TEXT,
     conflict_paths TEXT,
     error TEXT,
     created_at TEXT NOT NULL,
     dispatched_at TEXT,
     finished_at TEXT,
     collected_at TEXT,
     merged_at TEXT,
     PRIMARY KEY (project, task_id)
   );
   CREATE INDEX tasks_by_state ON tasks (project, state);
   CREATE TABLE events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at TEXT NOT NULL,
     project TEXT NOT NULL,
     task_id TEXT,
     node TEXT,
     kind TEXT NOT NULL,
     message TEXT NOT NULL,
     data TEXT
   );
   CREATE INDEX events_by_task ON events (project, task_id);`,
  `ALTER TABLE tasks ADD COLUMN spec_text TEXT;
   ALTER TABLE tasks ADD COLUMN spec_files TEXT;
   ALTER TABLE tasks ADD COLUMN resolves TEXT;
   ALTER TABLE tasks ADD COLUMN merge_head TEXT;
   ALTER TABLE tasks ADD COLUMN resolved_by TEXT;
   ALTER TABLE tasks ADD COLUMN verify_log TEXT;`,
  `ALTER TABLE tasks ADD COLUMN dispatch_pid INTEGER;
   ALTER TABLE tasks ADD COLUMN last_seen_at TEXT;
   ALTER TABLE tasks ADD COLUMN retry_of TEXT;`,
  `ALTER TABLE tasks ADD COLUMN withheld TEXT;`,
  `CREATE TABLE locks (name TEXT PRIMARY KEY, pid INTEGER NOT NULL, at TEXT NOT NULL);`,
  `ALTER TABLE tasks ADD COLUMN cleaned_at TEXT;`,
  `ALTER TABLE tasks ADD COLUMN downgraded TEXT;`,
];
