import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';

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
  /**
   * At most this many bytes of output reach the log; the rest is read and dropped. Without
   * it the command writes to the log file directly (and may outlive this process).
   */
  maxLogBytes?: number;
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

/** True while any process of the group led by `pgid` exists (a zombie not yet reaped counts). */
export function groupAlive(pgid: number | undefined | null): boolean {
  if (!pgid) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stops a whole process group as a timeout does: SIGTERM to all of it, SIGKILL after
 * `graceMs` to whatever is left. Says whether the group is gone (an orphan may take
 * a moment to be reaped).
 */
export async function stopGroup(pgid: number, graceMs: number): Promise<boolean> {
  killGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await pause(50);
  if (!groupAlive(pgid)) return true;
  killGroup(pgid, 'SIGKILL');
  for (let i = 0; i < 60 && groupAlive(pgid); i++) await pause(50);
  return !groupAlive(pgid);
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
      stdio: options.maxLogBytes === undefined ? ['ignore', log, log] : ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let logged = 0;
    const cap = options.maxLogBytes ?? Infinity;
    const copy = (chunk: Buffer): void => {
      if (logged >= cap) return;
      const part = chunk.subarray(0, cap - logged);
      writeSync(log, part);
      logged += part.length;
      if (logged >= cap) writeSync(log, `\n[gsync: the output went on past ${cap} bytes; the rest was not kept]\n`);
    };
    const outputs = [child.stdout, child.stderr].filter((s): s is Readable => !!s);
    for (const s of outputs) s.on('data', copy);
    const finish = (run: GroupRun): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killer);
      if (child.pid) killGroup(child.pid, 'SIGKILL');
      // What is still in the pipes is read before the log closes (briefly: the group is dead).
      const drained = outputs.map((s) => new Promise((done) => (s.readableEnded || s.destroyed ? done(undefined) : s.once('close', done))));
      void Promise.race([Promise.all(drained), new Promise((done) => setTimeout(done, 2000))]).then(() => {
        for (const s of outputs) s.destroy();
        closeSync(log);
        resolve(run);
      });
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
