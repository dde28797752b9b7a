import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BusyError, ConfigError, GitError, GsyncError, ProtocolError, SshError, UsageError } from '@gsync/core';
import { exitCodeOf } from '@gsync/controller';
import { EXIT } from '@gsync/controller';

describe('exitCodeOf', () => {
  const cases: [string, unknown, number][] = [
    ['a UsageError', new UsageError('unknown project "x"'), 2],
    ['a ConfigError', new ConfigError('/cfg/nodes.json', 'nodes[0].port', 'expected number'), 2],
    ['an SshError (connect)', new SshError('gpu-1', 'connect', 'connection refused'), 5],
    ['an SshError (host key)', new SshError('gpu-1', 'hostkey', 'host key changed'), 5],
    ['an SshError (remote command)', new SshError('gpu-1', 'remote', 'gsync-node exited 1'), 5],
    ['a BusyError', new BusyError('another gsync-ctl holds the lock'), 6],
    ['a GitError', new GitError(['merge-tree', '--write-tree'], 128, 'fatal: bad object'), 1],
    ['a ProtocolError (a node answered outside the protocol)', new ProtocolError('node n1: unexpected answer to accept'), 5],
    ['a bare GsyncError', new GsyncError('something'), 1],
    ['a plain Error', new Error('boom'), 1],
    ['a TypeError (a bug)', new TypeError("Cannot read properties of undefined (reading 'x')"), 1],
    ['a thrown string', 'oops', 1],
    ['undefined', undefined, 1],
  ];
  for (const [what, error, code] of cases) {
    it(`${what} → ${code}`, () => {
      expect(exitCodeOf(error)).toBe(code);
    });
  }

  it('a subclass of a usage error is still a usage error', () => {
    class UnknownTask extends UsageError {}
    expect(exitCodeOf(new UnknownTask('no task S99'))).toBe(EXIT.usage);
  });
});

describe('the exit code table', () => {
  it('has one distinct code per meaning', () => {
    const codes = Object.values(EXIT);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('is the table the README documents', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Exit codes'));
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| code |')));
    const documented = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(documented.sort((a, b) => a - b)).toEqual(Object.values(EXIT).sort((a, b) => a - b));
  });
});
