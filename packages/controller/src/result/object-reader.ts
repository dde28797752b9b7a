import { ProtocolError, git, spawnGit, type GitProcess } from '@gsync/core';

export interface GitObject {
  type: string;
  data: Buffer;
}

/** One `git cat-file --batch` process answering object reads in turn, for walking trees object by object. */
export class ObjectReader {
  private readonly run: GitProcess;
  private buffer = Buffer.alloc(0);
  private waiting: { resolve: (o: GitObject | undefined) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | undefined;

  constructor(repo: string, env: Record<string, string>) {
    this.run = spawnGit(repo, ['cat-file', '--batch'], { env });
    this.run.stdout.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.drain();
    });
    const fail = (e: Error) => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.run.done.then(
      ({ stopped }) => stopped || fail(new ProtocolError("git cat-file ended early while reading the result's trees")),
      (error: Error) => fail(error),
    );
  }

  private drain(): void {
    while (this.waiting.length > 0) {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) return;
      const header = this.buffer.subarray(0, nl).toString('latin1');
      if (header.endsWith(' missing')) {
        this.buffer = this.buffer.subarray(nl + 1);
        this.waiting.shift()!.resolve(undefined);
        continue;
      }
      const [, type = '', size = '0'] = header.split(' ');
      const end = nl + 1 + Number(size);
      if (this.buffer.length < end + 1) return;
      const data = Buffer.from(this.buffer.subarray(nl + 1, end));
      this.buffer = this.buffer.subarray(end + 1);
      this.waiting.shift()!.resolve({ type, data });
    }
  }

  read(oid: string): Promise<GitObject | undefined> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.run.stdin.write(`${oid}\n`);
    });
  }

  close(): void {
    this.run.stop();
  }
}

/** Reads the given blobs (each small) through one `cat-file --batch`. */
export async function readBlobs(repo: string, env: Record<string, string>, oids: readonly string[]): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  if (oids.length === 0) return out;
  const r = await git(repo, ['cat-file', '--batch'], { input: `${oids.join('\n')}\n`, env, encoding: 'buffer' });
  const data = r.stdoutBuffer!;
  let at = 0;
  for (const oid of oids) {
    const nl = data.indexOf(0x0a, at);
    const [, type, size] = data.subarray(at, nl).toString('latin1').split(' ');
    if (type !== 'blob') throw new ProtocolError(`object ${oid} is not a blob`);
    const start = nl + 1;
    out.set(oid, data.subarray(start, start + Number(size)));
    at = start + Number(size) + 1;
  }
  return out;
}

/** The size of each blob; anything that is not a blob counts as too large to be one. */
export async function blobSizes(repo: string, env: Record<string, string>, oids: readonly string[]): Promise<Map<string, number>> {
  const unique = [...new Set(oids)];
  const sizes = new Map<string, number>();
  if (unique.length === 0) return sizes;
  const r = await git(repo, ['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize)'], { input: `${unique.join('\n')}\n`, env });
  for (const line of r.stdout.split('\n')) {
    const [oid, type, size] = line.split(' ');
    if (oid && type) sizes.set(oid, type === 'blob' ? Number(size) : Number.MAX_SAFE_INTEGER);
  }
  return sizes;
}
