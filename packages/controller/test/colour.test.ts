import { Chalk } from 'chalk';
import { describe, expect, it } from 'vitest';
import { colourLevel, table } from '@gsync/controller';

describe('colourLevel', () => {
  const cases: [string, NodeJS.ProcessEnv, boolean | undefined, boolean, number][] = [
    ['a terminal', {}, undefined, true, 1],
    ['a pipe or file', {}, undefined, false, 0],
    ['a terminal with NO_COLOR', { NO_COLOR: '1' }, undefined, true, 0],
    ['a terminal with an empty NO_COLOR (not set, by its rules)', { NO_COLOR: '' }, undefined, true, 1],
    ['a terminal with TERM=dumb', { TERM: 'dumb' }, undefined, true, 0],
    ['a pipe with FORCE_COLOR=1', { FORCE_COLOR: '1' }, undefined, false, 1],
    ['a pipe with FORCE_COLOR=3', { FORCE_COLOR: '3' }, undefined, false, 3],
    ['a pipe with FORCE_COLOR=9 (at most 3)', { FORCE_COLOR: '9' }, undefined, false, 3],
    ['a pipe with an empty FORCE_COLOR', { FORCE_COLOR: '' }, undefined, false, 1],
    ['a pipe with FORCE_COLOR=true', { FORCE_COLOR: 'true' }, undefined, false, 1],
    ['a terminal with FORCE_COLOR=0', { FORCE_COLOR: '0' }, undefined, true, 0],
    ['a terminal with FORCE_COLOR=false', { FORCE_COLOR: 'false' }, undefined, true, 0],
    ['a terminal with a FORCE_COLOR that means nothing', { FORCE_COLOR: 'yes please' }, undefined, true, 1],
    ['a pipe with a FORCE_COLOR that means nothing', { FORCE_COLOR: 'yes please' }, undefined, false, 0],
    ['NO_COLOR and FORCE_COLOR both set', { NO_COLOR: '1', FORCE_COLOR: '1' }, undefined, true, 0],
    ['a pipe with --color', {}, true, false, 1],
    ['--color over NO_COLOR', { NO_COLOR: '1' }, true, false, 1],
    ['--color at the level FORCE_COLOR names', { FORCE_COLOR: '2' }, true, false, 2],
    ['--color with FORCE_COLOR=0', { FORCE_COLOR: '0' }, true, false, 1],
    ['a terminal with --no-color', {}, false, true, 0],
    ['--no-color over FORCE_COLOR', { FORCE_COLOR: '3' }, false, true, 0],
  ];
  for (const [what, env, flag, isTTY, level] of cases) {
    it(`${what} → ${level}`, () => {
      expect(colourLevel(env, flag, isTTY)).toBe(level);
    });
  }
});

describe('table', () => {
  const c = new Chalk({ level: 1 });
  const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

  it('lines coloured cells up with plain ones', () => {
    const out = table([
      [c.bold('TASK'), c.bold('STATE'), 'BRANCH'],
      ['S01', c.green('merged'), 'task/a'],
      ['S02', 'collected', 'task/b'],
    ]);
    expect(out).toContain('\x1b[');
    expect(plain(out).split('\n')).toEqual(['TASK  STATE      BRANCH', 'S01   merged     task/a', 'S02   collected  task/b']);
  });

  it('gives a wide character two columns and an emoji two', () => {
    const out = table([
      ['名前', 'x'],
      ['ab', 'y'],
      ['🚀', 'z'],
    ]);
    expect(out.split('\n')).toEqual(['名前  x', 'ab    y', '🚀    z']);
  });

  it('leaves the last column unpadded', () => {
    expect(
      table([
        ['a', c.red('long')],
        ['bb', 'x'],
      ]),
    ).toBe(`a   ${c.red('long')}\nbb  x`);
  });
});
