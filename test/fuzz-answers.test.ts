import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, NODE_TOOL, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, writeConfig } from './helpers/world.js';

/**
 * A fuzzer for what a node answers: the real answer of one gsync-node command (accept's
 * hello, collect, report) truncated, bit-flipped, inflated, replaced by random bytes or by
 * a report full of control characters and Markdown. Whatever comes back, the controller
 * never exits 1, never writes a control byte, and never moves main for it.
 */
afterAll(cleanupTempDirs);

/**
 * A node_bin that answers `command` with the bytes of the file in GSYNC_FUZZ_ANSWER (exit
 * GSYNC_FUZZ_CODE) and runs the real gsync-node otherwise; fuzzing `report`, it plays a
 * gsync-node without `collect`, so that the controller asks with `report`.
 */
function fuzzingNodeBin(command: string): string {
  const bin = join(tempDir('gsync-bin-'), 'node-fuzz.mjs');
  writeFileSync(
    bin,
    `#!${process.execPath}
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
const args = process.argv.slice(2);
if (${JSON.stringify(command)} === 'report' && args[1] === 'collect') {
  process.stderr.write('gsync-node: unknown command "collect"\\n');
  process.exitCode = 2;
} else if (args[1] === ${JSON.stringify(command)} && process.env.GSYNC_FUZZ_ANSWER) {
  process.stdout.write(readFileSync(process.env.GSYNC_FUZZ_ANSWER));
  process.exitCode = Number(process.env.GSYNC_FUZZ_CODE ?? 0);
} else {
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
`,
  );
  chmodSync(bin, 0o755);
  return bin;
}

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const HOSTILE_TEXT = fc.constantFrom('\u001b]0;pwned\u0007', '\u001b[2J', '\n## merged S99\n', '`x`', '\u202eevil', '\r\rover', '\u0000');

/** A report that follows the protocol's shape, with hostile text wherever a string goes. */
const hostileReport = fc
  .record({ error: fc.array(HOSTILE_TEXT, { maxLength: 5 }).map((a) => a.join('')), state: fc.constantFrom('done', 'failed', 'running', 'weird\u001b') })
  .map(({ error, state }) =>
    JSON.stringify([
      {
        task_id: 'S01',
        exists: true,
        status: { protocol: 1, state, updated_at: error, error, history: [{ state: 'done', at: error }], withheld: [{ path: error, rule: error }] },
        result: null,
        error,
      },
    ]),
  );

function mutate(real: Buffer): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.integer({ min: 0, max: Math.max(real.length - 1, 0) }).map((k) => real.subarray(0, k)),
    fc.tuple(fc.integer({ min: 0, max: Math.max(real.length - 1, 0) }), fc.integer({ min: 1, max: 255 })).map(([k, x]) => {
      const copy = Buffer.from(real);
      copy[k] = (copy[k] ?? 0) ^ x;
      return copy;
    }),
    fc.uint8Array({ maxLength: 4096 }).map((junk) => Buffer.concat([real, Buffer.from(junk)])),
    fc.uint8Array({ maxLength: 4096 }).map((bytes) => Buffer.from(bytes)),
    hostileReport.map((text) => Buffer.from(text)),
  );
}

/** A task finished on its node, not yet pulled; and the real answer of `command` about it. */
async function finishedTask(command: string) {
  const repo = gitRepo({ 'README.md': 'hello\n' });
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      nodes: [
        {
          name: 'l1',
          transport: 'local',
          node_bin: fuzzingNodeBin(command),
          answer_timeout_seconds: 5,
          agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'],
        },
      ],
    },
    { proj: { repo_local: repo.dir } },
  );
  expect((await runCtl(configDir, ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'A\n\nwrite a.txt a\n')])).code).toBe(
    0,
  );
  const home = join(configDir, 'nodes/l1');
  const deadline = Date.now() + 60_000;
  while ((JSON.parse(readFileSync(join(home, 'dispatch/proj/tasks/S01/status.json'), 'utf8')) as { state: string }).state !== 'done') {
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
  const args = [NODE_TOOL, command, '--work-root', '~/dispatch', '--project', 'proj', '--task', 'S01'];
  return { repo, configDir, real: execFileSync(process.execPath, args, { cwd: home, env: { ...process.env, HOME: home } }) };
}

describe('fuzzed node answers', () => {
  for (const command of ['collect', 'report']) {
    it(`${command}: the controller never exits 1, never prints a control byte, never moves main for a bad answer`, async () => {
      const sample = await finishedTask(command);
      await fc.assert(
        fc.asyncProperty(mutate(sample.real), fc.constantFrom(0, 1, 2), async (bytes, code) => {
          // Each answer meets a task that is still waiting to be collected.
          const { repo, configDir } = await finishedTask(command);
          const answer = join(tempDir('gsync-fuzz-'), 'answer');
          writeFileSync(answer, bytes);
          const before = repo.head('main');
          process.env.GSYNC_FUZZ_ANSWER = answer;
          process.env.GSYNC_FUZZ_CODE = String(code);
          let r: Awaited<ReturnType<typeof runCtl>>;
          try {
            r = await runCtl(configDir, ['pull-bundles', '--project', 'proj']);
          } finally {
            delete process.env.GSYNC_FUZZ_ANSWER;
            delete process.env.GSYNC_FUZZ_CODE;
          }
          expect(r.code, r.err).not.toBe(1);
          expect(r.out + r.err).not.toMatch(CONTROL);
          // Only the task's own, checked work may ever reach main.
          if (repo.head('main') !== before) expect(repo.git('show', 'main:a.txt')).toBe('a\n');
        }),
        { numRuns: Number(process.env.FUZZ_RUNS ?? 8) },
      );
    }, 300_000);
  }
});
