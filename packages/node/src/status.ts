import { readFile } from 'node:fs/promises';
import { PROTOCOL_VERSION, TaskStatus, writeJsonAtomic, type NodeState } from '@gsync/core';

export async function readStatus(path: string): Promise<TaskStatus | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  return TaskStatus.parse(JSON.parse(text));
}

/** Moves the task's state machine one step and records when; every step is one atomic write. */
export async function setState(
  path: string,
  state: NodeState,
  fields: Partial<Omit<TaskStatus, 'state' | 'history' | 'protocol'>> = {},
  now: () => Date = () => new Date(),
): Promise<TaskStatus> {
  const previous = await readStatus(path);
  const at = now().toISOString();
  const next: TaskStatus = {
    ...(previous ?? {}),
    ...fields,
    protocol: PROTOCOL_VERSION,
    state,
    updated_at: at,
    history: [...(previous?.history ?? []), { state, at }],
  };
  await writeJsonAtomic(path, next);
  return next;
}
