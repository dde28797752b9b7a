// Makes a git repository with a realistic, large history, fast, with `git fast-import`:
// COMMITS commits over FILES files (source-like text, each commit rewriting a few files),
// about MB megabytes of new content in all. Deterministic for a given size.
//   tsx scripts/make-history.ts DIR [--commits N] [--files N] [--mb N]
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface HistoryOptions {
  commits: number;
  files: number;
  megabytes: number;
}

/** Pseudo-random but deterministic text lines (xorshift), like source code that does not compress to nothing. */
function* lines(seed: string): Generator<string> {
  let x = createHash('sha256').update(seed).digest().readUInt32LE(0) || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (;;) {
    const a = next().toString(36);
    const b = next().toString(16);
    const c = next().toString(36);
    yield `    value_${a} = compute("${b}${c}", ${next() % 1000}, ${next() % 97})  # ${next().toString(36)}`;
  }
}

function fileText(path: string, version: number, bytes: number): Buffer {
  const out: string[] = [`# ${path} (version ${version})`, `def run_${version}():`];
  let size = 0;
  for (const line of lines(`${path}@${version}`)) {
    out.push(line);
    size += line.length + 1;
    if (size >= bytes) break;
  }
  return Buffer.from(`${out.join('\n')}\n`);
}

/** Writes the history into a new repository at `dir` with `main` checked out. */
export async function makeHistory(dir: string, o: HistoryOptions): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const git = (args: string[]) => spawn('git', args, { cwd: dir, stdio: ['pipe', 'inherit', 'inherit'] });
  await new Promise((resolve, reject) => git(['init', '-q', '-b', 'main']).on('close', resolve).on('error', reject));
  const fi = git(['fast-import', '--quiet', '--done']);
  const input = fi.stdin!;
  const done = new Promise<void>((resolve, reject) => fi.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`fast-import exited ${code}`)))));
  const write = (chunk: string | Buffer) => (input.write(chunk) ? Promise.resolve() : new Promise<void>((r) => input.once('drain', () => r())));
  const perCommit = Math.max(1, Math.round((o.megabytes * 1024 * 1024) / o.commits));
  const filesPerCommit = 3;
  const paths = Array.from({ length: o.files }, (_, i) => `src/pkg${i % 40}/mod${Math.floor(i / 40)}/file${i}.py`);
  const versions = new Array<number>(o.files).fill(0);
  const t0 = Date.UTC(2020, 0, 1) / 1000;
  for (let c = 0; c < o.commits; c++) {
    const header = [
      `commit refs/heads/main`,
      `author Dev ${c % 17} <dev${c % 17}@example.invalid> ${t0 + c * 600} +0000`,
      `committer Dev ${c % 17} <dev${c % 17}@example.invalid> ${t0 + c * 600} +0000`,
    ];
    const message = `change ${c}: rework ${c % 97}\n`;
    await write(`${header.join('\n')}\ndata ${Buffer.byteLength(message)}\n${message}`);
    // The first commit adds every file; later ones rewrite a few, spread over the tree.
    const touched = c === 0 ? paths.map((_, i) => i) : Array.from({ length: filesPerCommit }, (_, k) => (c * 7919 + k * 104729) % o.files);
    const bytes = c === 0 ? 1024 : Math.round(perCommit / filesPerCommit);
    for (const i of touched) {
      versions[i]! += 1;
      const data = fileText(paths[i]!, versions[i]!, bytes);
      await write(`M 100644 inline ${paths[i]}\ndata ${data.length}\n`);
      await write(data);
      await write('\n');
    }
    await write('\n');
  }
  await write('done\n');
  input.end();
  await done;
  await new Promise((resolve, reject) => git(['checkout', '-q', '-f', 'main']).on('close', resolve).on('error', reject));
}

if (process.argv[1]?.endsWith('make-history.ts')) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { commits: { type: 'string' }, files: { type: 'string' }, mb: { type: 'string' } },
  });
  const dir = positionals[0];
  if (!dir) throw new Error('usage: tsx scripts/make-history.ts DIR [--commits N] [--files N] [--mb N]');
  await makeHistory(dir, { commits: Number(values.commits ?? 20000), files: Number(values.files ?? 3000), megabytes: Number(values.mb ?? 300) });
}
