import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  UsageError,
  checkName,
  commitSubject,
  expandAgentArgv,
  gitOps,
  incomingRef,
  isValidName,
  quoteArgv,
  specTitle,
  taskBranch,
  MAX_TITLE_CHARS,
  type NameKind,
} from '@gsync/core';
import type { NodeConfig } from '@gsync/controller';
import { openLocalTransport } from '@gsync/controller';
import type { NodeTool } from '@gsync/controller';
import { branchClash } from '@gsync/controller';
import { ensureNodeTool, fetchTaskFile, reportTasks, acceptTask, toolPath } from '@gsync/controller';
import type { NodeTransport } from '@gsync/controller';
import { taskDir, taskPaths, tasksRoot } from '@gsync/node';
import { NODE_TOOL, cleanupTempDirs, tempDir } from './helpers/git-repo.js';

/**
 * Invariant 6 as properties: task ids, node names, project names, spec text and paths
 * full of quotes, `$()`, newlines, unicode and `..` are either refused by validation or
 * reach the program as the very same argv word; no shell on either side ever runs them.
 * Every `$(touch CANARY)` in the generators would leave a file behind if it ran.
 */

// Made at import time: the generators below are built while the file is collected and embed the canary path.
const sandbox = tempDir('gsync-injection-');
const canary = join(sandbox, 'pwned');
/** Writes each argument NUL-terminated: what a program really received. */
const printer = join(sandbox, 'argv.sh');
/** Stands in for `node` on a node: records its argv in $GSYNC_ARGV_OUT and answers `[]`. */
const fakeNode = join(sandbox, 'fake-node.sh');

beforeAll(() => {
  writeFileSync(printer, `#!/bin/sh\nfor a do printf '%s\\0' "$a"; done\n`);
  chmodSync(printer, 0o755);
  writeFileSync(fakeNode, `#!/bin/sh\ncat > /dev/null\nfor a do printf '%s\\0' "$a"; done > "$GSYNC_ARGV_OUT"\nprintf '[]'\n`);
  chmodSync(fakeNode, 0o755);
});
afterAll(cleanupTempDirs);

// ---------------------------------------------------------------- generators

const wellFormed = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');
const noNul = (s: string): string => s.replaceAll('\0', '');

function fragments(): string[] {
  return [
    "'",
    '"',
    '`',
    '\\',
    '$',
    '$(',
    ')',
    '${',
    '}',
    '$(id)',
    '${HOME}',
    '$HOME',
    '$1',
    '$&',
    '$$',
    "'\\''",
    ';',
    '|',
    '&',
    '&&',
    '||',
    '>',
    '<',
    '(',
    '*',
    '?',
    '[',
    ']',
    '~',
    '~/',
    '!',
    '#',
    '%',
    '=',
    ':',
    ',',
    '@',
    '@{',
    '^',
    '\n',
    '\r',
    '\r\n',
    '\t',
    '\v',
    '\f',
    ' ',
    '  ',
    '\u001b[31m',
    '\u007f',
    '\u0085',
    '\u009b',
    '\u00a0',
    '\u2028',
    '\ufeff',
    '..',
    '../',
    '/..',
    '/',
    './',
    '.',
    '-',
    '--',
    '-rf',
    '--help',
    '.lock',
    '.git',
    '{spec}',
    '{spec_file}',
    'S01',
    'gpu-1',
    'p',
    'x.y_z',
    'é',
    'e\u0301',
    '项目',
    '🔥',
    '👨‍👩‍👧',
    '\u202e',
    '\u200f',
    'مرحبا',
    'שלום',
    `$(touch ${canary})`,
    `\`touch ${canary}\``,
    `;touch ${canary};`,
    `\ntouch ${canary}\n`,
    `|touch ${canary}`,
    `&touch ${canary}&`,
  ];
}

/** Hostile text: crafted fragments glued together, arbitrary graphemes or code points, or one fragment repeated a lot. */
function hostileText(maxParts = 10): fc.Arbitrary<string> {
  const fragment = fc.constantFrom(...fragments());
  return fc.oneof(
    { weight: 5, arbitrary: fc.array(fc.oneof(fragment, fragment, fc.string({ maxLength: 4 })), { maxLength: maxParts }).map((p) => p.join('')) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(wellFormed) },
    // Long, but one word stays far below Linux's 128 KiB per argv word.
    { weight: 1, arbitrary: fc.tuple(fragment, fc.integer({ min: 50, max: 3000 })).map(([f, n]) => [...f.repeat(n)].slice(0, n).join('')) },
  );
}

const validName = fc.stringMatching(/^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/);

/** Names: valid ones, almost-valid ones, and hostile text. */
function nameLike(): fc.Arbitrary<string> {
  const fragment = fc.constantFrom(...fragments());
  return fc.oneof(
    { weight: 3, arbitrary: validName },
    { weight: 2, arbitrary: fc.tuple(validName, fragment, validName).map((p) => p.join('')) },
    { weight: 1, arbitrary: fc.tuple(fragment, validName).map((p) => p.join('')) },
    { weight: 1, arbitrary: fc.tuple(validName, fragment).map((p) => p.join('')) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        '.',
        '..',
        'a..b',
        'x.lock',
        'a'.repeat(64),
        'a'.repeat(65),
        '-a',
        'a-',
        '.a',
        'a/b',
        'a\nb',
        'S01\n',
        ' S01',
        'Ｓ01',
        'S０1',
      ),
    },
    { weight: 2, arbitrary: hostileText(6) },
  );
}

/** The name rules, written out again independently of the regex in names.ts. */
function oracleValid(s: string): boolean {
  if (s.length < 1 || s.length > 64) return false;
  for (const c of s) if (!'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-'.includes(c)) return false;
  const alnum = (c: string) => /[A-Za-z0-9]/.test(c);
  if (!alnum(s[0]!) || !alnum(s[s.length - 1]!)) return false;
  return !s.includes('..') && !s.endsWith('.lock');
}

// ---------------------------------------------------------------- helpers

/** Runs `shell -c line` the way sshd runs an exec request, and splits what the printer wrote. */
function runLine(shell: string, line: string, cwd: string): string[] {
  const out = execFileSync(shell, ['-c', line], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\0').slice(0, -1);
}

/** What a POSIX shell interprets in a command line: everything outside single quotes (`\x` stands for an escaped char). */
function unquoted(line: string): { text: string; escaped: string[]; open: boolean } {
  let text = '';
  const escaped: string[] = [];
  let open = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (open) {
      if (c === "'") open = false;
      continue;
    }
    if (c === "'") open = true;
    else if (c === '\\') escaped.push(line[++i] ?? '');
    else text += c;
  }
  return { text, escaped, open };
}

/** Fails the run that made the canary, and clears it so a shrunk counterexample is blamed for its own doing. */
function expectNoShellRan(): void {
  const ran = existsSync(canary);
  rmSync(canary, { force: true });
  expect(ran, 'a $(touch ...) in a hostile value was run by a shell').toBe(false);
}

/** Every file and dir under `dir`, relative, with its kind. */
function snapshot(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      found.push(`${relative(dir, p)}${st.isDirectory() ? '/' : ''}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return found.sort();
}

const bashes = ['/bin/sh', ...(existsSync('/bin/bash') ? ['/bin/bash'] : [])];

// ---------------------------------------------------------------- 1. names

describe('names', () => {
  it('checkName accepts exactly the strict pattern, and accepted names make refs real git accepts', () => {
    const kinds: NameKind[] = ['project', 'task id', 'node'];
    const biased = fc.oneof({ weight: 3, arbitrary: validName }, { weight: 2, arbitrary: nameLike() });
    fc.assert(
      fc.property(biased, biased, biased, (p, t, n) => {
        const values = [p, t, n];
        values.forEach((v, i) => {
          const ok = oracleValid(v);
          expect(isValidName(v)).toBe(ok);
          if (ok) {
            expect(checkName(kinds[i]!, v)).toBe(v);
          } else {
            let error: unknown;
            try {
              checkName(kinds[i]!, v);
            } catch (e) {
              error = e;
            }
            expect(error).toBeInstanceOf(UsageError);
            // The refusal is one line a terminal shows as is: the hostile value is escaped in it.
            expect((error as Error).message).not.toMatch(/[\u0000-\u001f]/);
          }
        });
        if (!values.every(oracleValid)) return;
        const branch = taskBranch(p, t, n);
        const checked = execFileSync('git', ['check-ref-format', '--branch', branch], { cwd: sandbox, encoding: 'utf8' });
        expect(checked).toBe(`${branch}\n`);
        // Both ref forms are accepted by git (these throw on a non-zero exit).
        execFileSync('git', ['check-ref-format', `refs/heads/${branch}`], { cwd: sandbox });
        execFileSync('git', ['check-ref-format', incomingRef(p, t, n)], { cwd: sandbox });
      }),
      { numRuns: 100 },
    );
  });

  // The seed's branch format joins project, task id and node with "-", which names may
  // contain too: (S01, gpu-1) and (S01-gpu, 1) give one branch. Dispatch refuses the
  // second (branchClash), so two tasks never share a branch or a quarantine ref.
  it("a task whose branch would collide with another task's (or its -wip branch) is found before dispatch", () => {
    const short = fc.stringMatching(/^[A-Za-z0-9]{1,10}$/);
    fc.assert(
      fc.property(short, short, short, short, (p, a, b, c) => {
        const first = { task_id: a, branch: taskBranch(p, a, `${b}-${c}`) };
        expect(branchClash([first], taskBranch(p, `${a}-${b}`, c))).toBe(a);
        expect(branchClash([first], taskBranch(p, a, `${b}-${c}-wip`))).toBe(a);
        expect(branchClash([first], taskBranch(p, `${a}x`, c))).toBeUndefined();
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------- 2. the SSH command line

describe('command lines for the node shell', () => {
  const argvArb = fc.array(hostileText().map(noNul), { minLength: 0, maxLength: 6 });

  it('a real sh (and bash) splits the quoted line back into exactly the argv, and nothing is left unquoted', () => {
    fc.assert(
      fc.property(argvArb, (argv) => {
        const line = quoteArgv([printer, ...argv]);
        const parts = unquoted(line);
        expect(parts.open).toBe(false);
        // Outside quotes only plain word characters and spaces: no $( ` ; | & newline, ever.
        expect(parts.text).toMatch(/^[A-Za-z0-9_@%+=:,./ -]*$/);
        expect(parts.escaped.every((c) => c === "'")).toBe(true);
        for (const shell of bashes) expect(runLine(shell, line, sandbox)).toEqual(argv);
        expectNoShellRan();
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a word with a NUL byte, which no argv can carry', () => {
    fc.assert(
      fc.property(hostileText(), hostileText(), (a, b) => {
        expect(() => quoteArgv(['node', `${a}\0${b}`])).toThrow(/NUL/);
      }),
      { numRuns: 50 },
    );
  });

  // BUG: quoteWord leaves words of plain characters bare, so as the FIRST word of a line
  // (the command, e.g. node_bin from nodes.json) a shell keyword such as `if`, `for`,
  // `time` (bash) or a word with "=" such as `LANG=C` is interpreted by the node's shell
  // instead of run: quoteArgv(['if', 'x']) is a syntax error, quoteArgv(['A=b', 'x'])
  // runs nothing. Expected: the shell execs a program called exactly argv[0].
  it('the first word stays the command, even when it looks like a keyword or an assignment', () => {
    const cwd = join(sandbox, 'first-word');
    mkdirSync(cwd, { recursive: true });
    fc.assert(
      fc.property(
        fc.constantFrom('if', 'for', 'while', 'case', 'do', 'done', 'then', 'A=b', 'PATH=.', 'x=1'),
        fc.array(validName, { minLength: 1, maxLength: 2 }),
        (command, rest) => {
          // A program with exactly that name, in the cwd, that prints its argv.
          writeFileSync(join(cwd, command), readFileSync(printer));
          chmodSync(join(cwd, command), 0o755);
          expect(runLine('/bin/sh', quoteArgv([`./${command}`, ...rest]), cwd)).toEqual(rest);
          const r = spawnSync('/bin/sh', ['-c', quoteArgv([command, ...rest])], {
            cwd,
            encoding: 'utf8',
            env: { ...process.env, PATH: `${cwd}:${process.env.PATH ?? ''}` },
          });
          expect(r.status).toBe(0);
          expect(r.stdout.split('\0').slice(0, -1)).toEqual(rest);
        },
      ),
      { numRuns: 30 },
    );
  });

  /** A transport that does what the SSH one does (quoteArgv, then the login shell's `-c`), on this machine. */
  async function shellTransport(home: string, argvOut: string): Promise<{ transport: NodeTransport; sent: string[][] }> {
    const local = await openLocalTransport('n1', home, { ...process.env, GSYNC_ARGV_OUT: argvOut });
    const sent: string[][] = [];
    return {
      sent,
      transport: {
        node: 'n1',
        exec: (argv, options) => {
          sent.push([...argv]);
          return local.exec(['/bin/sh', '-c', quoteArgv(argv)], options);
        },
        close: () => local.close(),
      },
    };
  }

  /** node-api/ reads only name, work_root and node_bin; the rest of the config does not matter here. */
  function nodeConfig(workRoot: string): NodeConfig {
    return { name: 'n1', transport: 'ssh', work_root: workRoot, node_bin: fakeNode } as NodeConfig;
  }

  it('every node-api operation reaches the node with its argv intact, project, task ids and work root included', async () => {
    const home = join(sandbox, 'remote-home');
    const argvOut = join(sandbox, 'remote-argv');
    const { transport, sent } = await shellTransport(home, argvOut);
    const bundle = join(sandbox, 'remote.bundle');
    writeFileSync(bundle, 'not really a bundle');
    const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
    const word = hostileText(8).map(noNul);
    await fc.assert(
      fc.asyncProperty(
        word,
        word,
        fc.array(word, { minLength: 1, maxLength: 3 }),
        fc.constantFrom('report', 'send', 'accept'),
        async (workRoot, project, ids, op) => {
          // Values that are themselves one of the flags would make the flag lookup below ambiguous.
          fc.pre(![workRoot, project, ...ids].some((v) => /^--[a-z-]+$/.test(v)));
          rmSync(argvOut, { force: true });
          sent.length = 0;
          const node = nodeConfig(workRoot);
          let error: unknown;
          try {
            if (op === 'report') await reportTasks(transport, node, project, ids);
            else if (op === 'send') await fetchTaskFile(transport, node, project, ids[0]!, 'status.json', sink());
            else
              await acceptTask(transport, node, project, ids[0]!, [
                { name: 'task.json', data: Buffer.from('{}') },
                { name: 'spec.md', data: Buffer.from('spec') },
                { name: 'base.bundle', path: bundle, size: 19 },
              ]);
          } catch (e) {
            error = e;
          }
          if (workRoot.startsWith('~') && !workRoot.startsWith('~/') && workRoot !== '~') {
            // "~user" is refused before anything is sent.
            expect(error).toBeInstanceOf(UsageError);
            expect(sent).toEqual([]);
            return;
          }
          // accept's answer is not an AcceptAnswer here; the other two succeed.
          if (op !== 'accept') expect(error).toBeUndefined();
          expect(sent).toHaveLength(1);
          const argv = sent[0]!;
          expect(argv.slice(0, 3)).toEqual([fakeNode, toolPath(node), op]);
          const flag = (name: string) => argv.flatMap((w, i) => (w === name ? [argv[i + 1]] : []));
          expect(flag('--work-root')).toEqual([workRoot]);
          expect(flag('--project')).toEqual([project]);
          expect(flag('--task')).toEqual(op === 'report' ? ids : [ids[0]]);
          // What the program on the node received, word for word.
          const received = readFileSync(argvOut, 'utf8').split('\0').slice(0, -1);
          expect(received).toEqual(argv.slice(1));
          expectNoShellRan();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('installing gsync-node under a hostile work_root writes exactly one file, at toolPath, and runs nothing else', async () => {
    const tool: NodeTool = { path: 'gsync-node.mjs', version: '9.9.9', protocol: 1, sha256: 'f'.repeat(64), data: Buffer.from('// gsync-node\n') };
    const runs = join(sandbox, 'install');
    let n = 0;
    const argvOut = join(sandbox, 'install-argv');
    // Relative (a node's work_root is taken from its home) and short enough for a file name.
    const workRootArb = fc
      .tuple(fc.constantFrom('', '', '', '-', '~', '~/'), hostileText(6))
      .map(([lead, s]) => lead + [...noNul(s).replace(/^\/+/, '')].slice(0, 50).join(''));
    await fc.assert(
      fc.asyncProperty(workRootArb, async (workRoot) => {
        const run = join(runs, String(n++));
        // The home is deep enough that a work_root with a few ".." stays inside the run dir.
        const home = join(run, 'a', 'b', 'c', 'd', 'e', 'home');
        let target: string | undefined;
        try {
          target = resolve(home, toolPath(nodeConfig(workRoot)));
        } catch (e) {
          expect(e).toBeInstanceOf(UsageError);
        }
        fc.pre(target === undefined || !relative(run, target).startsWith('..'));
        const { transport } = await shellTransport(home, argvOut);
        let error: unknown;
        try {
          await ensureNodeTool(transport, nodeConfig(workRoot), tool);
        } catch (e) {
          error = e;
        }
        // The fake node never says hello, so ensureNodeTool always ends in an error.
        expect(error).toBeInstanceOf(Error);
        expectNoShellRan();
        const files = snapshot(run).filter((f) => !f.endsWith('/'));
        if (target === undefined) {
          expect(files).toEqual([]);
        } else if (toolPath(nodeConfig(workRoot)).startsWith('-')) {
          // mkdir/dirname take a leading "-" for an option: the install fails, and says so.
          expect((error as Error).message).toMatch(/cannot install gsync-node/);
        } else {
          expect((error as Error).message).toMatch(/does not run on the node/);
          expect(files).toEqual([relative(run, target)]);
          expect(readFileSync(target)).toEqual(tool.data);
        }
        rmSync(run, { recursive: true, force: true });
      }),
      { numRuns: 30 },
    );
  });

  it('the local transport runs the argv as is, without a shell', async () => {
    const home = join(sandbox, 'local-home');
    const local = await openLocalTransport('n1', home, process.env);
    await fc.assert(
      fc.asyncProperty(argvArb, async (argv) => {
        const r = await local.exec([printer, ...argv]);
        expect(r.code).toBe(0);
        expect(r.stdout.toString('utf8').split('\0').slice(0, -1)).toEqual(argv);
        expectNoShellRan();
      }),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------- 3. agent argv

describe('agent argv', () => {
  const SPEC = Symbol('spec');
  const FILE = Symbol('spec_file');
  type Part = string | typeof SPEC | typeof FILE;
  // Template literals never hold braces, so the only placeholders are the ones put there.
  const literal = hostileText(4).map((s) => noNul(s).replace(/[{}]/g, ''));
  const templateWord = fc.array(
    fc.oneof({ weight: 3, arbitrary: literal }, { weight: 1, arbitrary: fc.constant<Part>(SPEC) }, { weight: 1, arbitrary: fc.constant<Part>(FILE) }),
    {
      minLength: 1,
      maxLength: 4,
    },
  );

  it('spec text and spec path reach the agent byte for byte, however they look', () => {
    fc.assert(
      fc.property(fc.array(templateWord, { maxLength: 5 }), hostileText(20).map(noNul), hostileText(6).map(noNul), (words, spec, specFile) => {
        const template = [printer, ...words.map((parts) => parts.map((p) => (p === SPEC ? '{spec}' : p === FILE ? '{spec_file}' : p)).join(''))];
        const expected = words.map((parts) => parts.map((p) => (p === SPEC ? spec : p === FILE ? specFile : p)).join(''));
        const [command, ...args] = expandAgentArgv(template, { spec, specFile });
        expect(command).toBe(printer);
        expect(args).toEqual(expected);
        const r = spawnSync(command!, args, { cwd: sandbox });
        expect(r.status).toBe(0);
        expect(r.stdout).toEqual(Buffer.concat(expected.map((w) => Buffer.from(`${w}\0`, 'utf8'))));
        expectNoShellRan();
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------- 4. spec titles and commit subjects

describe('spec titles', () => {
  const lineSep = fc.constantFrom('\n', '\r\n', '\r', '\n\n', '\n \n');
  const line = fc.oneof(
    hostileText(8),
    hostileText(4).map((s) => `# ${s}`),
    hostileText(4).map((s) => `## \t${s}`),
    fc.constantFrom('', ' ', '#', '# ', '\t'),
  );
  const spec = fc.tuple(fc.array(line, { minLength: 1, maxLength: 5 }), lineSep).map(([lines, s]) => noNul(lines.join(s)));

  let repo = '';
  let base = '';
  const env = {
    GIT_AUTHOR_NAME: 'gsync agent on n1',
    GIT_AUTHOR_EMAIL: 'gsync@n1.invalid',
    GIT_COMMITTER_NAME: 'gsync agent on n1',
    GIT_COMMITTER_EMAIL: 'gsync@n1.invalid',
  };
  beforeAll(async () => {
    repo = tempDir('gsync-injection-titles-');
    await gitOps.initRepo(repo, 'main');
    await gitOps.setConfig(repo, 'commit.gpgsign', 'false');
    writeFileSync(join(repo, 'f.txt'), 'start\n');
    await gitOps.addAll(repo);
    await gitOps.commit(repo, 'initial\n', env);
    base = (await gitOps.resolveCommit(repo, 'HEAD'))!;
  });

  it('is one clean line of at most 72 characters, and git keeps the commit subject exactly', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(spec, validName, fc.boolean(), async (text, taskId, wip) => {
        const title = specTitle(text);
        expect(title).not.toMatch(/[\u0000-\u001f\u007f]/);
        expect([...title].length).toBeLessThanOrEqual(MAX_TITLE_CHARS);
        expect(title).toBe(title.trim());
        // readSpec refuses a spec without a title; only titled specs are ever committed.
        if (title === '') return;
        // Built as the node builds it (run.ts commitWork).
        const subject = commitSubject(taskId, title) + (wip ? ' (work in progress)' : '');
        expect(subject.startsWith(`task/${taskId}: `)).toBe(true);
        writeFileSync(join(repo, 'f.txt'), `run ${n++}\n`);
        await gitOps.addAll(repo);
        await gitOps.commit(repo, `${subject}\n\nNode: n1\nSpec sha256: ${'0'.repeat(64)}\nAgent exit code: 0\n`, env);
        const logged = execFileSync('git', ['log', '-1', '--format=%s'], { cwd: repo, encoding: 'utf8' });
        expect(logged).toBe(`${subject}\n`);
      }),
      { numRuns: 50 },
    );
    expect(await gitOps.isAncestor(repo, base, 'HEAD')).toBe(true);
  });

  // BUG: specTitle replaces only C0 controls and DEL, so C1 controls survive into the
  // title (and the commit subject, task.json, merge_report.md, terminal output):
  // specTitle('a\u009b31mred') === 'a\u009b31mred' (U+009B is the 8-bit CSI), and
  // specTitle('a\u0085b') keeps U+0085 NEL, a line break in Unicode. Expected: every
  // \p{Cc} character turned into a space like the C0 ones.
  it('keeps no Unicode control character (C1 included) in the title', () => {
    fc.assert(
      fc.property(spec, fc.constantFrom('\u0080', '\u0085', '\u009b', '\u009f'), (text, c1) => {
        expect(specTitle(`title ${c1} ${text}`)).not.toMatch(/\p{Cc}/u);
      }),
      { numRuns: 20 },
    );
  });
});

// ---------------------------------------------------------------- 5. changed paths

describe('changed paths', () => {
  const component = hostileText(5)
    .map((s) => noNul(s).replaceAll('/', ''))
    .filter((s) => s !== '' && s !== '.' && s !== '..' && !/^\.git/i.test(s) && !/^git~\d/i.test(s) && Buffer.byteLength(s) <= 200);

  it('changedPaths gives back each committed path exactly, whatever its name holds', async () => {
    const repo = tempDir('gsync-injection-paths-');
    const env = { GIT_AUTHOR_NAME: 'T', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@example.invalid' };
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' });
    await gitOps.initRepo(repo, 'main');
    await gitOps.setConfig(repo, 'commit.gpgsign', 'false');
    writeFileSync(join(repo, 'README'), 'base\n');
    await gitOps.addAll(repo);
    await gitOps.commit(repo, 'base\n', env);
    const base = (await gitOps.resolveCommit(repo, 'HEAD'))!;
    await fc.assert(
      fc.asyncProperty(fc.option(component, { nil: undefined }), component, async (dir, name) => {
        git('reset', '-q', '--hard', base);
        git('clean', '-q', '-f', '-d', '-x');
        const path = dir === undefined ? name : `${dir}/${name}`;
        if (dir !== undefined) mkdirSync(join(repo, dir), { recursive: true });
        writeFileSync(join(repo, path), 'hostile name\n');
        await gitOps.addAll(repo);
        await gitOps.commit(repo, 'add\n', env);
        const head = (await gitOps.resolveCommit(repo, 'HEAD'))!;
        expect(await gitOps.changedPaths(repo, base, head)).toEqual([path]);
        expectNoShellRan();
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------- 6. task directories

describe('task directories', () => {
  it('valid names give a task dir strictly inside the work root; invalid ones throw first', () => {
    const workRoot = join(sandbox, 'work-root');
    fc.assert(
      fc.property(nameLike(), nameLike(), (project, taskId) => {
        if (oracleValid(project) && oracleValid(taskId)) {
          const dir = taskDir(workRoot, project, taskId);
          const rel = relative(workRoot, dir);
          expect(isAbsolute(rel)).toBe(false);
          expect(rel.startsWith('..')).toBe(false);
          expect(rel.split(sep)).toEqual([project, 'tasks', taskId]);
          for (const file of Object.values(taskPaths(dir))) expect(relative(dir, file).startsWith('..')).toBe(false);
        } else {
          expect(() => taskDir(workRoot, project, taskId)).toThrow(UsageError);
          if (!oracleValid(project)) expect(() => tasksRoot(workRoot, project)).toThrow(UsageError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------- 7. the real gsync-node

describe('gsync-node with hostile names', () => {
  it('report/send/accept refuse a bad name in one line or answer JSON, and never write outside the work root', () => {
    if (!existsSync(NODE_TOOL)) execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: join(NODE_TOOL, '../../../..') });
    const box = join(sandbox, 'cli');
    const home = join(box, 'home');
    const cwd = join(box, 'cwd');
    const workRoot = join(home, 'dispatch');
    mkdirSync(cwd, { recursive: true });
    mkdirSync(workRoot, { recursive: true });
    const name = fc.oneof({ weight: 1, arbitrary: validName }, { weight: 2, arbitrary: nameLike().map(noNul) });
    fc.assert(
      fc.property(name, name, fc.constantFrom('report', 'send', 'accept'), (project, taskId, op) => {
        const before = snapshot(box);
        const args = [NODE_TOOL, op, '--work-root', workRoot, '--project', project, '--task', taskId, ...(op === 'send' ? ['--file', 'status.json'] : [])];
        const r = spawnSync(process.execPath, args, { cwd, env: { ...process.env, HOME: home }, input: '', encoding: 'utf8' });
        const valid = oracleValid(project) && oracleValid(taskId);
        if (r.status === 0) {
          expect(valid && op === 'report').toBe(true);
          expect(JSON.parse(r.stdout)).toEqual([{ task_id: taskId, exists: false, status: null, result: null }]);
        } else {
          expect(r.stdout).toBe('');
          expect(r.stderr).toMatch(/^gsync-node: /);
          expect([1, 2]).toContain(r.status);
          // A refused name is one line (exit 2 adds the usage text after it for a flag parsing error).
          if (r.status === 1) expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
          if (valid && op === 'report') expect.fail(`report failed for valid names: ${r.stderr}`);
        }
        if (!valid) expect(r.stderr).not.toMatch(/^gsync-node: .*(ENOENT|the task stream)/);
        // Nothing appears outside the work root; inside it, only under the (valid) project.
        const added = snapshot(box).filter((f) => !before.includes(f));
        const inside = posix.join('home', 'dispatch', `${project}/`);
        for (const f of added) expect(valid && f.startsWith(inside)).toBe(true);
        expectNoShellRan();
      }),
      { numRuns: 25 },
    );
  });
});
