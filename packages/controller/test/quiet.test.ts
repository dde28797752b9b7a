import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '@gsync/controller';
import { AGENTS, NODE_TOOL, capture, cleanupTempDirs, gitRepo, tempDir } from '../../../test/helpers/git-repo.js';

afterAll(cleanupTempDirs);

/** A dispatch to a local node, whose projects.json has a field gsync does not know (a warning). */
async function dispatch(...flags: string[]) {
  const repo = gitRepo();
  const configDir = tempDir('gsync-config-');
  writeFileSync(join(configDir, 'nodes.json'), JSON.stringify({ nodes: [{ name: 'l1', transport: 'local', agent: ['node', join(AGENTS, 'noop.mjs')] }] }));
  writeFileSync(join(configDir, 'projects.json'), JSON.stringify({ proj: { repo_local: repo.dir, colour: 'blue' } }));
  const spec = join(tempDir('gsync-specs-'), 'one.md');
  writeFileSync(spec, '# one\n');
  const [out, err] = [capture(), capture()];
  const io = { env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, stdout: out.stream, stderr: err.stream, nodeToolPath: NODE_TOOL, pid: process.pid };
  const code = await main(['--config-dir', configDir, ...flags, 'dispatch', '--project', 'proj', '--spec', spec], io);
  await finished(join(configDir, 'nodes/l1/dispatch/proj/tasks/S01/status.json'));
  return { code, out: out.text(), err: err.text() };
}

/** The task runs on after dispatch returns: its temp dirs go only once it is done writing. */
async function finished(statusFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((JSON.parse(readFileSync(statusFile, 'utf8')) as { finished_at?: string }).finished_at) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('--quiet', () => {
  it('without it, progress lines go to stderr', async () => {
    const r = await dispatch();
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^· dispatched S01 to l1/m);
  });

  for (const flag of ['--quiet', '-q']) {
    it(`${flag} keeps the result and the warning, and drops the progress lines`, async () => {
      const r = await dispatch(flag);
      expect(r.code).toBe(0);
      expect(r.out).toBe('dispatched S01 to l1 on branch task/proj-S01-l1\n');
      expect(r.err).toMatch(/^! .*projects\.json: proj\.colour: unknown field, ignored$/m);
      expect(r.err).not.toMatch(/^·/m);
    });
  }
});
