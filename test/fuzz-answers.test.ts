import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENTS, NODE_TOOL, ROOT, cleanupTempDirs, gitRepo, tempDir } from './helpers/git-repo.js';
import { runCtl, specFile, writeConfig } from './helpers/world.js';

/**
 * A fuzzer for what a node answers: the real answer of one gsync-node command (accept with
 * its hello, collect, report, send) truncated, bit-flipped, inflated, replaced by random
 * bytes or by an answer full of control characters and Markdown. Whatever comes back, the
 * controller never exits 1, never writes a control byte, and never moves main for it; and
 * an answer that never ends costs it no more than 200 MiB.
 */
afterAll(cleanupTempDirs);

/**
 * A node_bin that answers `command` with the bytes of the file in GSYNC_FUZZ_ANSWER (exit
 * GSYNC_FUZZ_CODE), or with the file in GSYNC_FUZZ_ENDLESS followed by `x` forever (on
 * stdout, or on stderr when GSYNC_FUZZ_STREAM says so), and runs the real gsync-node
 * otherwise (its last answer to `command` kept in GSYNC_FUZZ_TEE when set). Fuzzing
 * `report` or `send`, it plays a gsync-node without `collect`, so that the controller asks
 * with `report` and then `send`.
 */
function fuzzingNodeBin(command: string): string {
  const bin = join(tempDir('gsync-bin-'), 'node-fuzz.mjs');
  writeFileSync(
    bin,
    `#!${process.execPath}
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
const command = ${JSON.stringify(command)};
const args = process.argv.slice(2);
const env = process.env;
if ((command === 'report' || command === 'send') && args[1] === 'collect') {
  process.stderr.write('gsync-node: unknown command "collect"\\n');
  process.exitCode = 2;
} else if (command === 'send' && args[1] === 'report' && env.GSYNC_FUZZ_ANNOUNCE) {
  // The real report, announcing the size and sha256 of the bundle that send answers: what
  // stands between it and main is then the bundle's own checks, not the download's.
  const r = spawnSync(process.execPath, args, { stdio: ['inherit', 'pipe', 'inherit'] });
  const bundle = readFileSync(env.GSYNC_FUZZ_ANSWER);
  const reports = JSON.parse(r.stdout.toString('utf8'));
  for (const report of reports) {
    if (report.result) Object.assign(report.result.bundle, { size: bundle.length, sha256: createHash('sha256').update(bundle).digest('hex') });
  }
  process.stdout.write(JSON.stringify(reports) + '\\n');
  process.exitCode = r.status ?? 1;
} else if (args[1] === command && env.GSYNC_FUZZ_ANSWER) {
  let answer = readFileSync(env.GSYNC_FUZZ_ANSWER);
  // The answer is that of accept --hello: without --hello, accept says all but the hello line.
  if (command === 'accept' && !args.includes('--hello')) answer = answer.subarray(answer.indexOf(10) + 1);
  process.stdout.write(answer);
  process.exitCode = Number(env.GSYNC_FUZZ_CODE ?? 0);
  // The task tar is read, as gsync-node does; but a second at most: a stalled node is the idle bound's business.
  process.stdin.resume();
  setTimeout(() => process.exit(), 1000).unref();
} else if (args[1] === command && env.GSYNC_FUZZ_ENDLESS) {
  const out = env.GSYNC_FUZZ_STREAM === 'stderr' ? process.stderr : process.stdout;
  out.write(readFileSync(env.GSYNC_FUZZ_ENDLESS));
  const junk = Buffer.alloc(64 * 1024, 'x');
  const more = () => {
    while (out.write(junk));
    out.once('drain', more);
  };
  more();
} else if (args[1] === command && env.GSYNC_FUZZ_TEE) {
  // Streamed, not buffered: accept --hello says its hello before the controller sends the task.
  writeFileSync(env.GSYNC_FUZZ_TEE, '');
  const child = spawn(process.execPath, args, { stdio: ['inherit', 'pipe', 'inherit'] });
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    appendFileSync(env.GSYNC_FUZZ_TEE, chunk);
  });
  child.on('close', (code) => {
    process.exitCode = code ?? 1;
  });
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
const hostileText = fc.array(HOSTILE_TEXT, { maxLength: 5 }).map((a) => a.join(''));

/** A report that follows the protocol's shape, with hostile text wherever a string goes. */
const hostileReport = fc.record({ error: hostileText, state: fc.constantFrom('done', 'failed', 'running', 'weird\u001b') }).map(({ error, state }) =>
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

/**
 * The real hello (its sha256 and protocol kept, so that the controller goes on to send the
 * task) and an accept answer in the protocol's shape, with hostile text wherever a string goes.
 */
function hostileAccept(real: Buffer, text: string, state: string, needFull: boolean): string {
  const hello = JSON.parse(real.toString('utf8').split('\n')[0]!) as { hello: Record<string, unknown> };
  return [
    JSON.stringify({ hello: { ...hello.hello, version: text, node: text, git: `git ${text}` } }),
    JSON.stringify({ taskDir: text, created: true, ...(needFull ? { need_full: text } : {}), start: { started: true, pid: 1, state: `${state}${text}` } }),
    '',
  ].join('\n');
}

/**
 * How a real answer is spoiled: cut after `cut` bytes, one byte flipped, junk added, or
 * replaced by random bytes or hostile text. Positions are taken modulo the answer's length,
 * so that one mutation applies to each case's own real answer.
 */
type Mutation = { cut: number } | { flip: number; xor: number } | { junk: Uint8Array } | { bytes: Uint8Array } | { text: string };

function mutation(hostile?: fc.Arbitrary<string>): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: 1 << 16 });
  return fc.oneof(
    fc.record({ cut: at }),
    fc.record({ flip: at, xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ junk: fc.uint8Array({ maxLength: 4096 }) }),
    fc.record({ bytes: fc.uint8Array({ maxLength: 4096 }) }),
    ...(hostile ? [fc.record({ text: hostile })] : []),
  );
}

function spoil(real: Buffer, m: Mutation): Buffer {
  if ('cut' in m) return real.subarray(0, m.cut % Math.max(real.length, 1));
  if ('flip' in m) {
    const copy = Buffer.from(real);
    const k = m.flip % Math.max(real.length, 1);
    copy[k] = (copy[k] ?? 0) ^ m.xor;
    return copy;
  }
  if ('junk' in m) return Buffer.concat([real, m.junk]);
  return 'bytes' in m ? Buffer.from(m.bytes) : Buffer.from(m.text);
}

/** A project on one local node, l1, whose gsync-node is the fuzzing node_bin for `command`. */
function fuzzWorld(command: string) {
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
  return { repo, configDir, home: join(configDir, 'nodes/l1') };
}

const dispatchArgv = () => ['dispatch', '--project', 'proj', '--spec', specFile(tempDir('gsync-specs-'), 's.md', 'A\n\nwrite a.txt a\n')];

/** The environment that has the fuzzing node_bin answer `bytes` with exit code `code` (and `send`'s report announce them). */
function answering(bytes: Buffer, code: number, announce = false): NodeJS.ProcessEnv {
  const answer = join(tempDir('gsync-fuzz-'), 'answer');
  writeFileSync(answer, bytes);
  return { GSYNC_FUZZ_ANSWER: answer, GSYNC_FUZZ_CODE: String(code), ...(announce ? { GSYNC_FUZZ_ANNOUNCE: '1' } : {}) };
}

/** A task finished on its node, not yet pulled; and the real answer of `command` about it. */
async function finishedTask(command: string) {
  const world = fuzzWorld(command);
  expect((await runCtl(world.configDir, dispatchArgv())).code).toBe(0);
  const deadline = Date.now() + 60_000;
  while ((JSON.parse(readFileSync(join(world.home, 'dispatch/proj/tasks/S01/status.json'), 'utf8')) as { state: string }).state !== 'done') {
    if (Date.now() > deadline) throw new Error('S01 never finished');
    await new Promise((r) => setTimeout(r, 100));
  }
  const file = command === 'send' ? ['--file', 'result.bundle'] : [];
  const args = [NODE_TOOL, command, '--work-root', '~/dispatch', '--project', 'proj', '--task', 'S01', ...file];
  return { ...world, real: execFileSync(process.execPath, args, { cwd: world.home, env: { ...process.env, HOME: world.home } }) };
}

/** The real stdout of `accept --hello`: the hello line, then the accept answer. */
async function acceptAnswer(): Promise<Buffer> {
  const { configDir } = fuzzWorld('accept');
  const tee = join(tempDir('gsync-fuzz-'), 'accept');
  // The first dispatch installs gsync-node (so its accept has no --hello); the second asks with --hello.
  for (let i = 0; i < 2; i++) expect((await runCtl(configDir, dispatchArgv(), { GSYNC_FUZZ_TEE: tee })).code).toBe(0);
  const real = readFileSync(tee);
  expect(real.toString('utf8')).toMatch(/^\{"hello":.*\n\{"taskDir":.*\n$/);
  return real;
}

/** `gsync-ctl status` reads the store whatever a node said into it: never exit 1, never a control byte. */
async function expectSaneStatus(configDir: string): Promise<void> {
  const s = await runCtl(configDir, ['status', '--project', 'proj']);
  expect(s.code, s.err).not.toBe(1);
  expect(s.out + s.err).not.toMatch(CONTROL);
}

const runs = { numRuns: Number(process.env.FUZZ_RUNS ?? 8) };

describe('fuzzed node answers', () => {
  // report and send: a gsync-node without collect is asked with report, then send for each finished task.
  for (const command of ['collect', 'report', 'send']) {
    it(`${command}: the controller never exits 1, never prints a control byte, never moves main for a bad answer`, async () => {
      // A bundle sent is checked against the report's size and sha256; announced, it meets the checks of its contents.
      const announced = command === 'send' ? fc.boolean() : fc.constant(false);
      await fc.assert(
        fc.asyncProperty(mutation(command === 'send' ? undefined : hostileReport), fc.constantFrom(0, 1, 2), announced, async (m, code, announce) => {
          // Each answer meets a task that is still waiting to be collected: its own real answer, spoiled.
          const { repo, configDir, real } = await finishedTask(command);
          const before = repo.head('main');
          const r = await runCtl(configDir, ['pull-bundles', '--project', 'proj'], answering(spoil(real, m), code, announce));
          expect(r.code, r.err).not.toBe(1);
          expect(r.out + r.err).not.toMatch(CONTROL);
          // Only the task's own, checked work may ever reach main.
          if (repo.head('main') !== before) {
            expect(repo.git('diff', '--name-only', before, 'main')).toBe('a.txt\n');
            expect(repo.git('show', 'main:a.txt')).toBe('a\n');
          }
          await expectSaneStatus(configDir);
        }),
        // The answer untouched, too: the path by which the task's work does reach main.
        { ...runs, examples: [[{ junk: new Uint8Array() }, 0, false]] },
      );
    }, 300_000);
  }

  it('accept: dispatch never exits 1, never prints a control byte, never moves main, leaves a store status can read', async () => {
    const real = await acceptAnswer();
    const hostile = fc
      .record({ text: hostileText, state: fc.constantFrom('running', 'queued', 'weird\u001b'), needFull: fc.boolean() })
      .map(({ text, state, needFull }) => hostileAccept(real, text, state, needFull));
    await fc.assert(
      fc.asyncProperty(mutation(hostile), fc.constantFrom(0, 1, 2), async (m, code) => {
        const { repo, configDir } = fuzzWorld('accept');
        const before = repo.head('main');
        const r = await runCtl(configDir, dispatchArgv(), answering(spoil(real, m), code));
        expect(r.code, r.err).not.toBe(1);
        expect(r.out + r.err).not.toMatch(CONTROL);
        expect(repo.head('main')).toBe(before);
        await expectSaneStatus(configDir);
      }),
      // The answer untouched; none at all, as from a node_bin that is not gsync-node; and one
      // taken, whose state, full of control characters, goes into the store.
      {
        ...runs,
        examples: [
          [{ junk: new Uint8Array() }, 0],
          [{ cut: 0 }, 0],
          [{ text: hostileAccept(real, '\u001b]0;pwned\u0007\r\u202e', 'running', false) }, 0],
        ],
      },
    );
  }, 300_000);
});

/** The CLI as users run it (bin of @gsync/controller), in a process of its own so that its memory is its own. */
const CTL_BIN = join(ROOT, 'packages/controller/bin/gsync-ctl.js');
const MiB = 1024 * 1024;

/** `gsync-ctl` as a process: exit code (null when killed at `timeoutMs`), what it printed, and its peak RSS in bytes. */
function runBuiltCtl(configDir: string, argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000) {
  const dir = tempDir('gsync-rss-');
  const script = join(dir, 'ctl.mjs');
  const rss = join(dir, 'maxrss');
  // maxRSS is in KiB; written on exit, the peak of the whole run.
  writeFileSync(
    script,
    `import { writeFileSync } from 'node:fs';
process.on('exit', () => writeFileSync(${JSON.stringify(rss)}, String(process.resourceUsage().maxRSS * 1024)));
await import(${JSON.stringify(pathToFileURL(CTL_BIN).href)});
`,
  );
  const child = spawn(process.execPath, [script, '--config-dir', configDir, ...argv], {
    env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let [out, err] = ['', ''];
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise<{ code: number | null; out: string; err: string; maxRss: number }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, maxRss: existsSync(rss) ? Number(readFileSync(rss, 'utf8')) : Number.NaN });
    }),
  );
}

/** A tar header (ustar) announcing `size` bytes of `name`. */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\u000000', 257);
  const sum = h.reduce((a, b) => a + b, 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** The environment that has the fuzzing node_bin say `prefix`, then `x` without end, on `stream`. */
function endless(prefix: Buffer, stream: 'stdout' | 'stderr' = 'stdout'): NodeJS.ProcessEnv {
  const file = join(tempDir('gsync-fuzz-'), 'prefix');
  writeFileSync(file, prefix);
  return { GSYNC_FUZZ_ENDLESS: file, GSYNC_FUZZ_STREAM: stream };
}

function expectBounded(r: Awaited<ReturnType<typeof runBuiltCtl>>): void {
  expect(r.code, `still running after 30 s\n${r.err}`).not.toBeNull();
  expect(r.code, r.err).not.toBe(1);
  expect(r.out + r.err).not.toMatch(CONTROL);
  expect(r.maxRss).toBeLessThan(200 * MiB);
}

describe('answers without end', () => {
  // collect: a report.json of 1 GiB announced, so that the controller reads as far as it ever will.
  const prefixes: Record<string, Buffer> = { collect: tarHeader('report.json', 2 ** 30), report: Buffer.alloc(0), send: Buffer.alloc(0) };
  for (const command of ['collect', 'report', 'send']) {
    it(`${command}: pull-bundles ends, never exits 1, and stays under 200 MiB`, async () => {
      const { repo, configDir } = await finishedTask(command);
      const before = repo.head('main');
      expectBounded(await runBuiltCtl(configDir, ['pull-bundles', '--project', 'proj'], endless(prefixes[command]!)));
      expect(repo.head('main')).toBe(before);
    }, 60_000);
  }

  // stderr carries no answer: a node that says only that, without end, is as silent as one that says nothing.
  it('collect, on stderr: pull-bundles ends, never exits 1, and stays under 200 MiB', async () => {
    const { repo, configDir } = await finishedTask('collect');
    const before = repo.head('main');
    expectBounded(await runBuiltCtl(configDir, ['pull-bundles', '--project', 'proj'], endless(Buffer.alloc(0), 'stderr')));
    expect(repo.head('main')).toBe(before);
  }, 60_000);

  it('accept: dispatch ends, never exits 1, and stays under 200 MiB', async () => {
    // After the real hello line, so that the controller sends the task and waits for the answer.
    const hello = (await acceptAnswer()).toString('utf8').split('\n')[0]!;
    const { repo, configDir } = fuzzWorld('accept');
    const before = repo.head('main');
    expectBounded(await runBuiltCtl(configDir, dispatchArgv(), endless(Buffer.from(`${hello}\n`))));
    expect(repo.head('main')).toBe(before);
    await expectSaneStatus(configDir);
  }, 60_000);
});
