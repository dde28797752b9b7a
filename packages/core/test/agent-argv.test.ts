import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_AGENT_ARGV, MAX_TITLE_CHARS, commitSubject, expandAgentArgv, specTitle, usesSpecText } from '@gsync/core';

/** Runs argv without a shell and returns the arguments the program received. */
function receivedArgv(argv: readonly string[]): string[] {
  const [command, ...args] = argv;
  const r = spawnSync(command!, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as string[];
}

const ECHO_ARGV = [process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))'];

describe('expandAgentArgv', () => {
  const values = { spec: 'Fix the login bug', specFile: '/home/u/dispatch/p/tasks/S01/spec.md' };

  it('fills {spec} with the spec text and {spec_file} with its path', () => {
    expect(expandAgentArgv(['agent', '-p', '{spec}', '--file', '{spec_file}'], values)).toEqual([
      'agent',
      '-p',
      'Fix the login bug',
      '--file',
      '/home/u/dispatch/p/tasks/S01/spec.md',
    ]);
  });

  it('fills placeholders inside a word, and every one of them', () => {
    expect(expandAgentArgv(['--prompt={spec}', '{spec_file}:{spec_file}', 'x{spec}y{spec_file}'], { spec: 'S', specFile: 'F' })).toEqual([
      '--prompt=S',
      'F:F',
      'xSyF',
    ]);
  });

  it('leaves other words and other braces alone, and does not touch the template', () => {
    const template = ['agent', '{specs}', '{SPEC}', '{ spec }', '{}'];
    const copy = [...template];
    expect(expandAgentArgv(template, values)).toEqual(template);
    expect(template).toEqual(copy);
  });

  it('keeps the spec as one argument: no splitting on spaces or newlines', () => {
    const spec = 'line one\nline two with  spaces\n\ttabbed';
    const argv = expandAgentArgv(['agent', '{spec}'], { spec, specFile: 'f' });
    expect(argv).toHaveLength(2);
    expect(argv[1]).toBe(spec);
  });

  it('does not expand placeholders that the spec text itself contains', () => {
    const spec = 'write {spec_file} and {spec} literally';
    expect(expandAgentArgv(['{spec}'], { spec, specFile: '/x/spec.md' })).toEqual([spec]);
  });

  it('passes shell metacharacters to the program byte for byte (no shell involved)', () => {
    const spec = '$(touch /tmp/gsync-pwned) `id` ; rm -rf / && echo "hi" \'there\' | cat > /dev/null\n* ~ ${HOME} \\ 项目 🔥';
    const specFile = "/tmp/dir with space/it's $(x).md";
    const argv = expandAgentArgv([...ECHO_ARGV, '{spec}', '--file={spec_file}'], { spec, specFile });
    expect(receivedArgv(argv)).toEqual([spec, `--file=${specFile}`]);
  });

  // BUG: String.prototype.replaceAll reads `$$`, `$&`, `` $` `` and `$'` in a string replacement
  // as patterns, so a spec such as "echo $$" or "printf $'a\nb'" reaches the agent altered.
  it('passes dollar sequences in the spec and path through unchanged', () => {
    const spec = "kill $$; echo $'a\\nb'; cost: $& and $`";
    const specFile = "/tmp/$$/$'.md";
    expect(expandAgentArgv(['{spec}', '{spec_file}'], { spec, specFile })).toEqual([spec, specFile]);
  });

  it('the default agent passes the spec text as one argument', () => {
    expect(expandAgentArgv(DEFAULT_AGENT_ARGV, values)).toEqual(['claude', '-p', 'Fix the login bug', '--dangerously-skip-permissions']);
  });
});

describe('usesSpecText', () => {
  const cases: [string[], boolean][] = [
    [['agent', '{spec}'], true],
    [['agent', '--prompt={spec}'], true],
    [['agent', '{spec_file}'], false],
    [['agent', '--file={spec_file}'], false],
    [['agent', '{spec_file}', '{spec}'], true],
    [['agent', '{spec_file}{spec}'], true],
    [['agent'], false],
  ];
  for (const [template, expected] of cases) {
    it(`${JSON.stringify(template)} → ${expected}`, () => {
      expect(usesSpecText(template)).toBe(expected);
    });
  }
});

describe('specTitle', () => {
  const cases: [string, string, string][] = [
    ['a plain first line', 'Fix the login bug\nmore detail\n', 'Fix the login bug'],
    ['a markdown heading', '# Fix the login bug\n\nbody', 'Fix the login bug'],
    ['a deeper heading', '### Fix it  \nbody', 'Fix it'],
    ['leading blank lines', '\n\n   \n  Fix it\nbody', 'Fix it'],
    ['an empty heading before the real line', '#\n## \nFix it', 'Fix it'],
    ['CRLF line ends', 'Fix it\r\nbody\r\n', 'Fix it'],
    ['CRLF blank lines first', '\r\n\r\n# Fix it\r\n', 'Fix it'],
    ['a tab inside the line', 'Fix\tit', 'Fix it'],
    ['a lone CR inside the line', 'Fix\rit', 'Fix it'],
    ['an escape sequence', 'Fix \u001b[31mred\u001b[0m', 'Fix  [31mred [0m'],
    ['an empty spec', '', ''],
    ['only whitespace', '\n \t\r\n  \n', ''],
    ['only heading marks', '#\n##\n', ''],
    ['non-ASCII', '修复登录 bug 🔥', '修复登录 bug 🔥'],
  ];
  for (const [what, spec, title] of cases) {
    it(`${what} → ${JSON.stringify(title)}`, () => {
      expect(specTitle(spec)).toBe(title);
    });
  }

  it(`keeps a line of exactly ${MAX_TITLE_CHARS} characters whole`, () => {
    const line = 'x'.repeat(72);
    expect(specTitle(`${line}\nbody`)).toBe(line);
  });

  it('cuts a longer line to 72 characters ending in …', () => {
    const title = specTitle(`${'abcdefghij'.repeat(10)}\nbody`);
    expect([...title]).toHaveLength(72);
    expect(title).toBe(`${'abcdefghij'.repeat(7)}a…`);
  });

  it('counts characters, not UTF-16 units, and never splits an emoji', () => {
    const title = specTitle('🔥'.repeat(100));
    expect([...title]).toHaveLength(72);
    expect(title).toBe(`${'🔥'.repeat(71)}…`);
    expect(Buffer.from(title, 'utf8').toString('utf8')).toBe(title); // a lone surrogate would not survive UTF-8
  });

  it('only ever returns one line', () => {
    for (const spec of ['a\nb', 'a\r\nb', '\n\nx\ny', `${'y'.repeat(200)}\nz`]) {
      expect(specTitle(spec)).not.toMatch(/[\r\n]/);
    }
  });
});

describe('commitSubject', () => {
  it('prefixes the title with the task id', () => {
    expect(commitSubject('S07', specTitle('# Add dark mode\n'))).toBe('task/S07: Add dark mode');
  });
});
