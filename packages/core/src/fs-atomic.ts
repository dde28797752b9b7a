import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Temp name beside the target, so the rename stays on one filesystem. */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Writes a file so that a reader sees the old content or the new, never half of it. */
export async function writeFileAtomic(path: string, data: string | Buffer, options: { mode?: number } = {}): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeTemp(tmp, data, options.mode);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Creates a file whole, or not at all when the path exists: a hard link, unlike a rename,
 * never replaces what is there. Returns false when it was there.
 */
export async function createFileAtomic(path: string, data: string | Buffer, options: { mode?: number } = {}): Promise<boolean> {
  const tmp = tempPathFor(path);
  try {
    await writeTemp(tmp, data, options.mode);
    await link(tmp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(tmp, { force: true });
  }
}

async function writeTemp(tmp: string, data: string | Buffer, mode: number | undefined): Promise<void> {
  await writeFile(tmp, data, { flag: 'wx', mode: mode ?? 0o666 });
  // The umask narrows the mode at creation; a mode asked for is meant exactly.
  if (mode !== undefined) await chmod(tmp, mode);
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** The bytes of a file, or of everything under a folder (links counted as themselves, never followed); 0 when absent. */
export async function treeBytes(path: string): Promise<number> {
  const s = await lstat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) total += await treeBytes(join(path, name));
  return total;
}
