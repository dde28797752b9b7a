import { UsageError } from './errors.js';

/**
 * Project names, node names and task ids become path components on both sides
 * and one component of a git ref, so they are held to one strict pattern:
 * letters, digits, `.`, `_`, `-`; starting and ending with a letter or digit;
 * no `..`; never ending in `.lock`; at most 64 characters.
 */
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;

export type NameKind = 'project' | 'node' | 'task id';

const EXAMPLES: Record<NameKind, string> = { project: '"web" or "api-v2"', node: '"gpu-1" or "vm.eu"', 'task id': '"S01" or "fix-login"' };

export function nameProblem(value: string): string | undefined {
  if (value.length === 0) return 'is empty';
  if (value.length > 64) return `is ${value.length} characters long (64 at most)`;
  if (!NAME.test(value)) return 'may hold only letters, digits, ".", "_" and "-", and must start and end with a letter or digit';
  if (value.includes('..')) return 'may not contain ".."';
  if (value.endsWith('.lock')) return 'may not end in ".lock"';
  return undefined;
}

export function isValidName(value: string): boolean {
  return nameProblem(value) === undefined;
}

export function checkName(kind: NameKind, value: string): string {
  const problem = nameProblem(value);
  if (problem) {
    throw new UsageError(`${kind} ${JSON.stringify(value)} ${problem}`, {
      hint: `choose a ${kind} like ${EXAMPLES[kind]}`,
    });
  }
  return value;
}

/** The branch a task's work lives on, on the node and on the controller. */
export function taskBranch(project: string, taskId: string, node: string, prefix = 'task/'): string {
  return `${prefix}${project}-${taskId}-${node}`;
}

/** The quarantine ref a result bundle is fetched into before anything else moves. */
export function incomingRef(project: string, taskId: string, node: string): string {
  return `refs/gsync/incoming/${project}/${taskId}-${node}`;
}

/** Task ids the controller picks by itself: S01, S02, ... S99, S100. */
export function nextTaskId(existing: readonly string[]): string {
  let max = 0;
  for (const id of existing) {
    const m = /^S(\d+)$/.exec(id);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return `S${String(max + 1).padStart(2, '0')}`;
}
