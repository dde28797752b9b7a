import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GitError, ProtocolError, spawnGit } from '@gsync/core';

/**
 * A result's objects are checked before any of them enters the repository:
 * `index-pack --strict` writes the result's pack into a quarantine object
 * directory (the repository's objects visible through alternates), every
 * object is fsck'd on the way, then the changes are inspected there. Only a
 * result that passes has its pack moved into the repository.
 */
export interface Quarantine {
  dir: string;
  objects: string;
  /** Environment that makes git see the quarantined objects as well as the repository's. */
  env: Record<string, string>;
}

/**
 * The folder name of one controller's downloads and quarantines for one project: per
 * project, so a project's run (under its lock) may clear its own without touching
 * another's, and per store (config dir), so two controllers sharing a repository never
 * clear each other's in-flight results.
 */
export function scratchName(configDir: string, project: string): string {
  return `${project}.${createHash('sha256').update(resolve(configDir)).digest('hex').slice(0, 12)}`;
}

/** Where one controller keeps a project's quarantines (see scratchName). */
export function quarantineRoot(gitDir: string, project: string): string {
  return join(gitDir, 'gsync', 'quarantine', project);
}

/** Where a project's results are downloaded to before they are checked. */
export function incomingDir(gitDir: string, project: string): string {
  return join(gitDir, 'gsync', 'incoming', project);
}

/** A new, empty quarantine for one result. */
export async function openQuarantine(gitDir: string, project: string): Promise<Quarantine> {
  const dir = join(quarantineRoot(gitDir, project), randomBytes(6).toString('hex'));
  const objects = join(dir, 'objects');
  await mkdir(join(objects, 'pack'), { recursive: true });
  return { dir, objects, env: { GIT_OBJECT_DIRECTORY: objects, GIT_ALTERNATE_OBJECT_DIRECTORIES: join(gitDir, 'objects'), GIT_QUARANTINE_PATH: objects } };
}

/** Indexes the pack stored in `file` from `offset` (a bundle's pack follows its header) into `q`, strictly. */
export async function indexPackStrict(repo: string, q: Quarantine, file: string, offset: number): Promise<void> {
  const run = spawnGit(repo, ['index-pack', '--strict', '--fix-thin', '--stdin'], { env: q.env, input: createReadStream(file, { start: offset }) });
  run.stdout.resume();
  try {
    await run.done;
  } catch (error) {
    if (!(error instanceof GitError)) throw error;
    const lines = error.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('fatal: index-pack failed'));
    const detail = lines.find((l) => l.startsWith('error:')) ?? lines.at(-1) ?? `index-pack exited with ${error.exitCode}`;
    throw new ProtocolError(`the result's objects failed the strict check: ${detail.replace(/^(error|fatal): /, '')}`);
  }
}

export async function dropQuarantine(q: Quarantine): Promise<void> {
  await rm(q.dir, { recursive: true, force: true });
}

/** Moves the checked pack into the repository: the .pack first, the .idx (what makes git see it) last. */
export async function adoptQuarantine(gitDir: string, q: Quarantine): Promise<void> {
  const from = join(q.objects, 'pack');
  const to = join(gitDir, 'objects', 'pack');
  await mkdir(to, { recursive: true });
  const files = (await readdir(from)).filter((f) => /^pack-[0-9a-f]+\.(pack|rev|idx)$/.test(f));
  const order = (f: string) => (f.endsWith('.pack') ? 0 : f.endsWith('.rev') ? 1 : 2);
  for (const f of files.sort((a, b) => order(a) - order(b))) await rename(join(from, f), join(to, f));
}

/**
 * Removes what a project's collection leaves in the repository's gsync folder (quarantines
 * and downloads of a crashed run, empty folders of a finished one). Call it holding the
 * project's lock, when none of its results is being collected.
 */
export async function sweepProject(gitDir: string, project: string): Promise<void> {
  for (const dir of [quarantineRoot(gitDir, project), incomingDir(gitDir, project)]) {
    await rm(dir, { recursive: true, force: true });
    await rmdir(dirname(dir)).catch(() => undefined);
  }
}
