import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main, type Context, type ProgressEvent } from '@gsync/controller';
import { NODE_TOOL, capture, tempDir } from './git-repo.js';

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

/** `gsync-ctl` in this process, as a user runs it (no colour, no ssh-agent): its exit code and what it printed. */
export async function runCtl(configDir: string, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const [out, err] = [capture(), capture()];
  const io = {
    env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '', ...env },
    stdout: out.stream,
    stderr: err.stream,
    nodeToolPath: NODE_TOOL,
    pid: process.pid,
  };
  const code = await main(['--config-dir', configDir, ...argv], io);
  return { code, out: out.text(), err: err.text() };
}
