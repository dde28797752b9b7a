import { stat } from 'node:fs/promises';

/** Whether `path` is a folder (following a link); false when it is anything else or not there. */
export function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
