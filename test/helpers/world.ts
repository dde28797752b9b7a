import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context, ProgressEvent } from '@gsync/controller';
import { NODE_TOOL, tempDir } from './git-repo.js';

export interface TestContext extends Context {
  events: ProgressEvent[];
}

/** A controller context for tests: a temp config dir and home, events captured. */
export function testContext(configDir: string, overrides: Partial<Context> = {}): TestContext {
  const events: ProgressEvent[] = [];
  return {
    configDir,
    home: tempDir('gsync-home-'),
    env: { ...process.env, SSH_AUTH_SOCK: '' },
    now: () => new Date(),
    pid: process.pid,
    nodeToolPath: NODE_TOOL,
    acceptNew: false,
    onEvent: (e) => events.push(e),
    events,
    ...overrides,
  };
}

export function writeConfig(dir: string, nodes: unknown, projects: unknown): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'nodes.json'), JSON.stringify(nodes, null, 2));
  writeFileSync(join(dir, 'projects.json'), JSON.stringify(projects, null, 2));
}

/** Writes a spec file for the edit agent (see fixtures/agents/edit.mjs) and returns its path. */
export function specFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
