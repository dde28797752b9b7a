import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type * as z from 'zod/mini';
import { ConfigError, UsageError, describeZodError, writeFileAtomic } from '@gsync/core';
import { loadConfig } from './load.js';
import type { Config } from './schema.js';

/** Changing one config file from the command line, with the same checks the loader makes. */

export type ConfigFileName = 'nodes' | 'projects';

/**
 * Rewrites `nodes.json` or `projects.json` with what `change` makes of its text. The config
 * must load before (an edit never buries an error already there) and after, with the new text
 * in place of the old, before anything is written; then the file is replaced whole, keeping
 * its mode. A symlinked file is written where it points.
 */
export async function editConfigFile(
  where: { dir: string; home: string },
  name: ConfigFileName,
  change: (config: Config, text: string) => string,
  check: (config: Config) => void = () => {},
): Promise<string> {
  const file = join(where.dir, `${name}.json`);
  // A missing file is the loader's error to report, with its hint.
  const target = await realpath(file).catch(() => file);
  const text = await readFile(target, 'utf8').catch(() => undefined);
  const config = await loadConfig({ ...where, texts: text === undefined ? {} : { [name]: text } });
  const next = change(config, text ?? '');
  try {
    check(await loadConfig({ ...where, texts: { [name]: next } }));
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(error.file, error.field, error.reason, { hint: 'nothing was written', cause: error });
    throw error;
  }
  const { mode } = await stat(target);
  await writeFileAtomic(target, next, { mode: mode & 0o7777 });
  return file;
}

/** The flag a field comes from: `identity_file` is `--identity-file`, `repo_local` is `--repo`. */
export function flagOf(field: string): string {
  return field === 'repo_local' ? '--repo' : `--${field.replaceAll('_', '-')}`;
}

/** Refuses an entry the loader would refuse, in the words of the flags it came from. */
export function checkEntry(schema: z.ZodMiniType, entry: Record<string, unknown>, command: string): void {
  const parsed = schema.safeParse(entry);
  if (parsed.success) return;
  const { path, message } = describeZodError(parsed.error);
  const field = path.split('.')[0] ?? '';
  const value = entry[field];
  const problem =
    typeof value === 'number' && Number.isNaN(value) ? 'is not a number' : `${JSON.stringify(value)}: ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
  throw new UsageError(`${flagOf(field)} ${problem}`, {
    hint: `gsync-ctl ${command} --help says what each flag takes`,
  });
}

/** A path typed on the command line, made absolute from where it was typed (`~/` is left for the loader). */
export function typedPath(path: string | undefined, cwd: string): string | undefined {
  if (path === undefined || path === '' || path === '~' || path.startsWith('~/') || isAbsolute(path)) return path;
  return resolve(cwd, path);
}

/** An entry without the fields not given, so the file keeps only what was asked for. */
export function given<T extends Record<string, unknown>>(entry: T): Partial<T> {
  return Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined)) as Partial<T>;
}
