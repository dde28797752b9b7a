import { createReadStream } from 'node:fs';
import type { Pack } from 'tar-stream';

/**
 * Adds the file at `path` to `tar` as `name`: exactly `size` bytes, as the header says,
 * even if the file grows or changes meanwhile, so the tar stays well-formed.
 */
export function addFileEntry(tar: Pack, name: string, path: string, size: number, mode: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const entry = tar.entry({ name, size, mode }, (error) => (error ? reject(error) : resolve()));
    if (size > 0)
      createReadStream(path, { end: size - 1 })
        .on('error', reject)
        .pipe(entry);
    else entry.end();
  });
}
