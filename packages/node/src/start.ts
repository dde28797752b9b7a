import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { taskPaths } from './paths.js';
import { isRunning } from './run.js';
import { readStatus } from './status.js';

export interface StartResult {
  started: boolean;
  pid?: number;
  state: string;
}

/**
 * Starts `gsync-node run` in a new session, detached from the caller, so the
 * controller may hang up: its stdio goes to node.log, not to the SSH channel.
 */
export async function startTask(dir: string, self: string, env: NodeJS.ProcessEnv): Promise<StartResult> {
  const paths = taskPaths(dir);
  const status = await readStatus(paths.status);
  if (!status) throw new Error(`no task at ${paths.dir}`);
  if (status.state !== 'received' || (await isRunning(paths))) return { started: false, state: status.state };
  const log = openSync(paths.nodeLog, 'a');
  try {
    const child = spawn(process.execPath, [self, 'run', '--task-dir', paths.dir], {
      detached: true,
      stdio: ['ignore', log, log],
      env,
      cwd: paths.dir,
    });
    child.unref();
    return { started: true, pid: child.pid, state: status.state };
  } finally {
    closeSync(log);
  }
}
