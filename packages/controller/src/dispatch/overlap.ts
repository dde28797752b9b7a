import { OPEN_STATES } from '../lifecycle/states.js';
import type { Store } from '../store/store.js';

/** Running tasks of the project that were given some of the same files: a warning, not a refusal. */
export function overlapWarnings(store: Store, project: string, files: readonly string[]): string[] {
  if (files.length === 0) return [];
  const mine = new Set(files);
  const warnings: string[] = [];
  for (const t of store.listTasks(project, OPEN_STATES)) {
    const theirs = t.spec_files ? (JSON.parse(t.spec_files) as string[]) : [];
    const shared = theirs.filter((f) => mine.has(f));
    if (shared.length > 0) {
      warnings.push(`${t.task_id} (running on ${t.node}) was also given ${shared.join(', ')}; the two may conflict when they merge`);
    }
  }
  return warnings;
}
