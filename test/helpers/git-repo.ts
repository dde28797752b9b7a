import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NODE_TOOL = join(ROOT, 'packages/node/dist/gsync-node.mjs');
export const AGENTS = join(ROOT, 'fixtures/agents');

const dirs: string[] = [];

/** A temp dir removed by cleanupTempDirs() (call it in afterAll/afterEach). */
export function tempDir(prefix = 'gsync-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface GitRepo {
  dir: string;
  git(...args: string[]): string;
  write(path: string, text: string): void;
  commitAll(message: string): string;
  head(ref?: string): string;
}

/** A real git repository in a temp dir, with an identity and one initial commit of `files`. */
export function gitRepo(files: Record<string, string> = { 'README.md': 'hello\n' }, branch = 'main'): GitRepo {
  const dir = tempDir('gsync-repo-');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const repo: GitRepo = {
    dir,
    git,
    write(path, text) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    },
    commitAll(message) {
      git('add', '-A');
      git('commit', '-q', '-m', message);
      return repo.head();
    },
    head(ref = 'HEAD') {
      return git('rev-parse', ref).trim();
    },
  };
  git('init', '-q', '-b', branch);
  git('config', 'user.name', 'Test User');
  git('config', 'user.email', 'test@example.invalid');
  for (const [path, text] of Object.entries(files)) repo.write(path, text);
  repo.commitAll('initial');
  return repo;
}

/** A stream that keeps what is written to it, for a CLI's stdout or stderr in a test. */
export function capture(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  const parts: Buffer[] = [];
  stream.on('data', (c: Buffer) => parts.push(c));
  return { stream, text: () => Buffer.concat(parts).toString('utf8') };
}
