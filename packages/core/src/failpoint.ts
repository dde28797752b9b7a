/**
 * Crash points for fault-injection tests: when GSYNC_FAILPOINT names this point,
 * the process kills itself with SIGKILL right here, as a power cut or an OOM
 * kill would. Unset (always, outside tests), this is one string comparison.
 */
export function failpoint(name: string): void {
  const wanted = process.env.GSYNC_FAILPOINT;
  if (wanted && wanted === name) process.kill(process.pid, 'SIGKILL');
}
