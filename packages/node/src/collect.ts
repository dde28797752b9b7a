import { stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pack } from 'tar-stream';
import { addFileEntry } from './tar-file.js';
import { COLLECT_REPORT, type TaskReport } from '@gsync/core';
import { taskDir, taskPaths } from './paths.js';
import { reportTasks } from './report.js';

export interface CollectOptions {
  workRoot: string;
  project: string;
  taskIds: readonly string[];
  out: Writable;
  /** Starts what the node's queue allows, once runs that died are finished (see reportTasks). */
  kick?: () => Promise<void>;
}

/** Tasks whose result file is worth sending: finished, with a result.json, and not on the shared remote already. */
function finished(reports: readonly TaskReport[]): TaskReport[] {
  return reports.filter((r) => r.result !== null && r.result.remote?.pushed !== true);
}

/** The result file of a task and its entry name: `<task_id>.bundle`, or in the scp mode `<task_id>.tar`. */
function resultEntry(dir: string, report: TaskReport): { path: string; name: string } {
  const paths = taskPaths(dir);
  return report.result?.files ? { path: paths.resultTree, name: `${report.task_id}.tar` } : { path: paths.resultBundle, name: `${report.task_id}.bundle` };
}

/**
 * One answer for a whole pull: a tar whose first entry is the report of every task
 * asked about, followed by `<task_id>.bundle` (`.tar` in the scp mode) for each finished one, so the controller
 * needs one process and one channel per node instead of one per file. A bundle that
 * cannot be read is left out; the controller then asks for it alone and sees why.
 */
export async function collectTasks(options: CollectOptions): Promise<void> {
  const reports = await reportTasks(options.workRoot, options.project, options.taskIds, options.kick);
  const tar = pack();
  const sent = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  tar.pipe(options.out, { end: false });
  tar.entry({ name: COLLECT_REPORT, mode: 0o644 }, Buffer.from(JSON.stringify(reports)));
  for (const report of finished(reports)) {
    const { path, name } = resultEntry(taskDir(options.workRoot, options.project, report.task_id), report);
    const size = await stat(path).then(
      (s) => (s.isFile() ? s.size : undefined),
      () => undefined,
    );
    if (size === undefined) continue;
    await addFileEntry(tar, name, path, size, 0o644);
  }
  tar.finalize();
  await sent;
}
