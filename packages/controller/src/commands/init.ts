import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, createFileAtomic } from '@gsync/core';
import { NODES_TEMPLATE, PROJECTS_TEMPLATE } from '../config/templates.js';
import type { Context } from '../context.js';

export interface InitResult {
  dir: string;
  /** What this run made: the config dir when it was new, and each file. */
  created: string[];
  /** Files that were there already, left exactly as they were. */
  kept: string[];
}

/** A config dir to start from: nodes.json and projects.json full of commented examples. Never overwrites. */
export async function init(ctx: Context): Promise<InitResult> {
  const dir = ctx.configDir;
  const created: string[] = [];
  const kept: string[] = [];
  try {
    // Only this user reads what the store and reports hold.
    if ((await mkdir(dir, { recursive: true, mode: 0o700 })) !== undefined) {
      await chmod(dir, 0o700);
      created.push(dir);
    }
  } catch (error) {
    throw new ConfigError(dir, '', `cannot create the config dir: ${(error as NodeJS.ErrnoException).code ?? error}`, { cause: error });
  }
  for (const [name, text] of [
    ['nodes.json', NODES_TEMPLATE],
    ['projects.json', PROJECTS_TEMPLATE],
  ] as const) {
    const file = join(dir, name);
    try {
      ((await createFileAtomic(file, text, { mode: 0o600 })) ? created : kept).push(file);
    } catch (error) {
      throw new ConfigError(file, '', `cannot write: ${(error as NodeJS.ErrnoException).code ?? error}`, { cause: error });
    }
  }
  return { dir, created, kept };
}
