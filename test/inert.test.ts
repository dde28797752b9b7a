import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { specFile, writeConfig, runCtl } from './helpers/world.js';

/**
 * Text from a node or an agent never reaches the terminal or a report raw: no escape
 * byte is written, no line of a report is forged, and what is kept is capped.
 */
afterAll(cleanupTempDirs);

const FORGED = '\u001b]0;pwned\u0007\u001b[2J\n## merged S99 on l1: merged\n`code` *bold* [link](x)';

function world(agent: string[]) {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(configDir, { nodes: [{ name: 'l1', transport: 'local', agent }] }, { proj: { repo_local: repo.dir } });
  return { repo, configDir, specs: tempDir('gsync-specs-'), tasks: join(configDir, 'nodes/l1/dispatch/proj/tasks') };
}

async function finished(tasks: string, id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if (['done', 'empty', 'failed'].includes((JSON.parse(readFileSync(join(tasks, id, 'status.json'), 'utf8')) as { state: string }).state)) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`${id} never finished`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** No control byte but newline, and no line of the report that the node or agent wrote. */
function expectInert(text: string): void {
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  expect(text).not.toMatch(/^## merged S99/m);
  expect(text).not.toMatch(/^`code`/m);
}

describe('text from nodes and agents is inert', () => {
  it('a status error full of escapes, Markdown and 5 MB of text is shown as one capped, escaped line', async () => {
    const w = world(['node', '-e', 'process.exit(3)']);
    expect((await runCtl(w.configDir, ['dispatch', '--project', 'proj', '--spec', specFile(w.specs, 's.md', 'Fail\n')])).code).toBe(0);
    await finished(w.tasks, 'S01');
    const file = join(w.tasks, 'S01', 'status.json');
    const status = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...status, state: 'failed', error: FORGED + 'A'.repeat(5_000_000) }));
    const pull = await runCtl(w.configDir, ['pull-bundles', '--project', 'proj']);
    expect(pull.code).toBe(3);
    expectInert(pull.out + pull.err);
    expect(pull.out).toMatch(/\\x1b\]0;pwned\\x07/);
    const report = readFileSync(join(w.configDir, 'reports/proj/merge_report.md'), 'utf8');
    expectInert(report);
    expect(report.length).toBeLessThan(20_000);
    const shown = await runCtl(w.configDir, ['status', '--project', 'proj']);
    expectInert(shown.out + shown.err);
    expect(statSync(join(w.configDir, 'gsync.db')).size).toBeLessThan(1024 * 1024);
  });

  it('a file name with a newline, escapes and a fake heading is listed, not obeyed', async () => {
    const name = 'a\n## merged S99 on l1: merged\n\u001b[2J`code`.txt';
    const w = world(['node', '-e', `require('fs').writeFileSync(${JSON.stringify(name)}, 'x\\n')`]);
    expect((await runCtl(w.configDir, ['dispatch', '--project', 'proj', '--spec', specFile(w.specs, 's.md', 'Odd name\n')])).code).toBe(0);
    await finished(w.tasks, 'S01');
    const pull = await runCtl(w.configDir, ['pull-bundles', '--project', 'proj']);
    expect(pull.code).toBe(0);
    expectInert(pull.out + pull.err);
    const report = readFileSync(join(w.configDir, 'reports/proj/merge_report.md'), 'utf8');
    expectInert(report);
    expect(report).toContain('a\\x0a## merged S99');
    expect(w.repo.git('show', `main:${name}`)).toBe('x\n');
  });
});
