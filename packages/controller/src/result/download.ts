import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ProtocolError, tempPathFor } from '@gsync/core';

/** Counts and hashes what passes, and stops the stream past `limit` bytes. */
class Meter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      done(new ProtocolError(`more than the announced ${this.limit} bytes arrived`));
      return;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Downloads into a `.partial` file beside `dest`, checking size and sha256
 * against what was announced; `dest` appears only when both match.
 */
export async function downloadVerified(
  dest: string,
  expected: { size: number; sha256: string },
  fetch: (out: NodeJS.WritableStream & import('node:stream').Writable) => Promise<void>,
): Promise<void> {
  const partial = `${tempPathFor(dest)}.partial`;
  const meter = new Meter(expected.size);
  const file = createWriteStream(partial, { mode: 0o600 });
  const written = pipeline(meter, file);
  // A transfer that fails also fails the pipeline; that rejection is expected, not unhandled.
  written.catch(() => undefined);
  try {
    await fetch(meter).finally(() => meter.end());
    await written;
    if (meter.bytes !== expected.size) throw new ProtocolError(`got ${meter.bytes} bytes, expected ${expected.size}: the transfer was cut short`);
    if (meter.digest() !== expected.sha256) throw new ProtocolError('the sha256 of what arrived does not match result.json');
    await rename(partial, dest);
  } catch (error) {
    meter.destroy();
    await rm(partial, { force: true });
    throw error;
  }
}
