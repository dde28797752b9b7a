import pLimit from 'p-limit';
import { gitOps } from '@gsync/core';
import type { TaskRow } from '../store/store.js';

export interface ForecastTask {
  task_id: string;
  head: string;
  /** Paths the task changed against its base (no rename detection: a rename lists both names). */
  paths: readonly string[];
}

export interface Forecast {
  main: string;
  /** Tasks that would not merge cleanly into main as it is now. */
  with_main: { task_id: string; paths: string[] }[];
  /** Pairs that merge cleanly into main one by one but conflict with each other. */
  pairs: { a: string; b: string; paths: string[] }[];
  /** Pairs whose changed paths overlap, so merge-tree was run for them. */
  pairs_checked: number;
  pairs_total: number;
}

function ancestors(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Pairs of tasks that can conflict at all: those that changed the same path, or
 * where one changed a path the other uses as a directory. Two tasks that touched
 * disjoint paths always merge cleanly, so merge-tree runs only for these.
 */
export function overlappingPairs(tasks: readonly Pick<ForecastTask, 'paths'>[]): [number, number][] {
  const byPath = new Map<string, Set<number>>();
  const byDir = new Map<string, Set<number>>();
  const add = (map: Map<string, Set<number>>, key: string, i: number) => map.set(key, (map.get(key) ?? new Set()).add(i));
  tasks.forEach((t, i) => {
    for (const p of t.paths) {
      add(byPath, p, i);
      for (const d of ancestors(p)) add(byDir, d, i);
    }
  });
  const pairs = new Set<string>();
  tasks.forEach((t, i) => {
    for (const p of t.paths) {
      const others = [...(byPath.get(p) ?? []), ...(byDir.get(p) ?? []), ...ancestors(p).flatMap((d) => [...(byPath.get(d) ?? [])])];
      for (const j of others) if (j !== i) pairs.add(i < j ? `${i},${j}` : `${j},${i}`);
    }
  });
  return [...pairs].map((k) => k.split(',').map(Number) as [number, number]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
}

/**
 * Which tasks conflict with main, and which pairs conflict with each other once
 * both are on top of main (each is merged into main in memory, then the two
 * merges are merged: merge-tree of the two merge commits, whose base is main).
 * Writes objects, moves no ref.
 */
export async function forecastConflicts(repo: string, main: string, tasks: readonly ForecastTask[], parallel = 2): Promise<Forecast> {
  const limit = pLimit(parallel);
  const env = {
    GIT_AUTHOR_NAME: 'gsync',
    GIT_AUTHOR_EMAIL: 'gsync@localhost',
    GIT_COMMITTER_NAME: 'gsync',
    GIT_COMMITTER_EMAIL: 'gsync@localhost',
    GIT_AUTHOR_DATE: '@0 +0000',
    GIT_COMMITTER_DATE: '@0 +0000',
  };
  const onMain = await Promise.all(
    tasks.map((t) =>
      limit(async () => {
        if (await gitOps.isAncestor(repo, t.head, main)) return { task: t, commit: main, conflicts: [] as string[] };
        const m = await gitOps.mergeTree(repo, main, t.head);
        if (!m.clean) return { task: t, commit: undefined, conflicts: m.conflicts };
        return { task: t, commit: await gitOps.commitTree(repo, m.tree, [main, t.head], 'gsync forecast', env), conflicts: [] };
      }),
    ),
  );
  const clean = onMain.filter((x) => x.commit !== undefined && x.commit !== main);
  const candidates = overlappingPairs(clean.map((x) => x.task));
  const pairs = await Promise.all(
    candidates.map(([i, j]) =>
      limit(async () => {
        const a = clean[i]!;
        const b = clean[j]!;
        const m = await gitOps.mergeTree(repo, a.commit!, b.commit!);
        return m.clean ? undefined : { a: a.task.task_id, b: b.task.task_id, paths: m.conflicts };
      }),
    ),
  );
  return {
    main,
    with_main: onMain.filter((x) => x.conflicts.length > 0).map((x) => ({ task_id: x.task.task_id, paths: x.conflicts })),
    pairs: pairs.filter((p) => p !== undefined),
    pairs_checked: candidates.length,
    pairs_total: (clean.length * (clean.length - 1)) / 2,
  };
}

/** The forecast's view of collected tasks: head and changed paths, from their rows. */
export function forecastTasks(rows: readonly Pick<TaskRow, 'task_id' | 'result_head' | 'changed_paths'>[]): ForecastTask[] {
  return rows.map((t) => ({ task_id: t.task_id, head: t.result_head!, paths: t.changed_paths ? (JSON.parse(t.changed_paths) as string[]) : [] }));
}

/** With --wait a run forecasts once per round; the report keeps everything any round foresaw. */
export function mergeForecasts(a: Forecast, b: Forecast): Forecast {
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

/** What `conflicts` reports: the forecast, and the tasks already known to conflict. */
export interface ConflictsResult extends Forecast {
  project: string;
  main_branch: string;
  /** The collected tasks the forecast looked at, in dispatch order. */
  tasks: string[];
  /** Tasks already known to conflict (from an earlier pull), with their paths. */
  conflicted: { task_id: string; paths: string[]; resolved_by: string | null }[];
  /** Finished tasks this very call collected from their nodes (not with --offline). */
  collected_now: string[];
  /** Tasks still running on their nodes: not in the forecast until they finish. */
  running: { task_id: string; node: string }[];
  /** Nodes that could not be asked: their finished tasks are not in the forecast. */
  unreachable: { node: string; error: string }[];
}
