import { existsSync } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, gitOps, isFinal, processAlive } from '@gsync/core';
import type { TaskPaths } from './paths.js';
import { START_GRACE_MS } from './queue-plan.js';
import { finishTask, readManifest } from './run.js';
import { readStatus, setState } from './status.js';

/**
 * Finishes a task whose `gsync-node run` was killed half way (power cut, OOM, kill -9):
 * its status is not final, and neither the runner nor the agent is alive. What the
 * agent left is committed and bundled; a run stopped before or during the agent
 * ends `failed` (its work as work in progress), one stopped after a successful agent
 * ends as it would have. Called by `report`, so a pull converges by itself.
 */
export async function recoverInterrupted(paths: TaskPaths, now: () => Date = () => new Date()): Promise<void> {
  const status = await readStatus(paths.status);
  // A queued task has no run yet: it waits for a slot, which is no failure.
  if (!status || isFinal(status.state) || status.state === 'queued') return;
  if (processAlive(status.pid) || processAlive(status.agent_pid)) return;
  // The queue writes `received` just before it starts the run: give the run time to show up.
  if (status.state === 'received' && Date.now() - Date.parse(status.updated_at) < START_GRACE_MS) return;
  const lockFile = join(paths.dir, '.recover.lock');
  let lock: FileHandle | undefined;
  try {
    lock = await open(lockFile, 'wx');
  } catch {
    // Another report is recovering it, or one died doing so: a stale lock older than a minute is taken over.
    const age = Date.now() - (await stat(lockFile).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age < START_GRACE_MS) return;
    await rm(lockFile, { force: true });
    // Two reports may both have found it stale: the one that loses this race leaves the task to the other.
    lock = await open(lockFile, 'wx').catch(() => undefined);
    if (!lock) return;
  }
  try {
    const manifest = await readManifest(paths);
    const where = status.state;
    // The checkout is whole once it has its .git (or in the scp mode, its snapshot of the base).
    const prepared = existsSync(manifest.tree ? paths.baseFiles : join(paths.repo, '.git'));
    if (where === 'received' || where === 'preparing' || !prepared) {
      await setState(
        paths.status,
        'failed',
        { finished_at: now().toISOString(), error: `gsync-node stopped before the agent ran (while ${where}); dispatch the task again` },
        now,
      );
      return;
    }
    const conflicted = manifest.tree ? (manifest.tree.conflicted ?? []) : (await gitOps.isMerging(paths.repo)) ? await gitOps.unmergedPaths(paths.repo) : [];
    // After a successful agent (committing, bundling) the task ends as it would have; otherwise as work in progress.
    const agentSucceeded = where !== 'running' && status.agent_exit_code === 0;
    await finishTask(
      paths,
      manifest,
      {
        exitCode: status.agent_exit_code ?? null,
        timedOut: false,
        conflicted,
        ...(agentSucceeded ? {} : { interrupted: `gsync-node was stopped while the agent ran; what it had done is kept as work in progress` }),
      },
      now,
    );
  } catch (error) {
    await setState(
      paths.status,
      'failed',
      { finished_at: now().toISOString(), error: `recovery after an interrupted run failed: ${errorMessage(error)}` },
      now,
    );
  } finally {
    await lock.close();
    await rm(lockFile, { force: true });
  }
}
