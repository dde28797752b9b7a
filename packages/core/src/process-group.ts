import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface GroupRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  error?: string;
}

export interface GroupRunOptions {
  argv: readonly string[];
  cwd: string;
  logFile: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  killGraceMs: number;
  onStart?: (pid: number) => void | Promise<void>;
}

/** True while a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number | undefined | null): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Runs a command (an agent, a verify command) without a shell, in its own
 * process group, stdout and stderr appended to `logFile`. On timeout the whole
 * group gets SIGTERM, then SIGKILL after the grace period; whatever the
 * command left running in its group is killed when it exits.
 */
export function runInProcessGroup(options: GroupRunOptions): Promise<GroupRun> {
  const [command, ...args] = options.argv;
  if (!command) return Promise.resolve({ exitCode: null, signal: null, timedOut: false, error: 'empty command' });
  const log = openSync(options.logFile, 'a');
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', log, log],
      detached: true,
    });
    const finish = (run: GroupRun): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killer);
      if (child.pid) killGroup(child.pid, 'SIGKILL');
      closeSync(log);
      resolve(run);
    };
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      if (!child.pid) return;
      killGroup(child.pid, 'SIGTERM');
      killer = setTimeout(() => child.pid && killGroup(child.pid, 'SIGKILL'), options.killGraceMs);
    }, options.timeoutMs);
    child.on('spawn', () => {
      if (child.pid) void options.onStart?.(child.pid);
    });
    child.on('error', (error) => finish({ exitCode: null, signal: null, timedOut, error: error.message }));
    child.on('exit', (exitCode, signal) => finish({ exitCode, signal, timedOut }));
  });
}
