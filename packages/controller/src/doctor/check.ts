import { GsyncError, errorMessage, inert } from '@gsync/core';

/** One check's verdict on one node. `ok` with a `fix` works, but could be better (no git: tasks go as files). */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export const ok = (name: string, detail: string, fix?: string): Check => ({ name, ok: true, detail, ...(fix ? { fix } : {}) });
export const problem = (name: string, detail: string, fix?: string): Check => ({ name, ok: false, detail, ...(fix ? { fix } : {}) });

/** An error as a check's line: its message without the node's name (the line has it), and its hint as the fix. */
export function failed(name: string, error: unknown, fix?: string): Check {
  const detail = inert(errorMessage(error).replace(/^node [^:]+: /, ''), 500);
  return problem(name, detail, (error instanceof GsyncError && error.hint) || fix);
}
