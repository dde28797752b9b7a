import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '@gsync/core';
import { cleanupTempDirs, tempDir } from '../../../test/helpers/git-repo.js';
import { runNodeCli } from './helpers.js';

/** `gsync-node remove`: finished task dirs go whole; a task that has not ended is never touched. */
afterAll(cleanupTempDirs);

function taskDirWith(root: string, id: string, state: string, extra: object = {}) {
  const dir = join(root, 'proj', 'tasks', id);
  mkdirSync(join(dir, 'repo'), { recursive: true });
  writeFileSync(join(dir, 'repo', 'big.bin'), Buffer.alloc(100_000));
  const status = { protocol: PROTOCOL_VERSION, state, updated_at: 'now', history: [], ...extra };
  writeFileSync(join(dir, 'status.json'), JSON.stringify(status));
}

const remove = (root: string, ...args: string[]) => runNodeCli(['remove', '--work-root', root, '--project', 'proj', ...args], Readable.from([]), 'unused');

describe('gsync-node remove', () => {
  it('removes finished task dirs, keeps running, queued and live-agent ones, says so for each, and --dry-run removes nothing', async () => {
    const root = tempDir('gsync-work-');
    taskDirWith(root, 'S01', 'done');
    taskDirWith(root, 'S02', 'running');
    taskDirWith(root, 'S03', 'queued');
    taskDirWith(root, 'S04', 'failed', { agent_pid: process.pid });
    taskDirWith(root, 'S05', 'empty');
    const ids = ['S01', 'S02', 'S03', 'S04', 'S05', 'S06'].flatMap((id) => ['--task', id]);

    const dry = await remove(root, ...ids, '--dry-run');
    expect(dry.code).toBe(0);
    const said = JSON.parse(dry.stdout) as { task_id: string; removed: boolean; bytes: number; kept?: string }[];
    expect(said.map((a) => [a.task_id, a.removed, a.kept])).toEqual([
      ['S01', true, undefined],
      ['S02', false, 'it is running'],
      ['S03', false, 'it is queued'],
      ['S04', false, 'its agent is still alive'],
      ['S05', true, undefined],
      ['S06', false, 'not on this node'],
    ]);
    expect(said[0]!.bytes).toBeGreaterThan(100_000);
    expect(readdirSync(join(root, 'proj', 'tasks')).sort()).toEqual(['S01', 'S02', 'S03', 'S04', 'S05']);

    const real = await remove(root, ...ids);
    expect(real.code).toBe(0);
    expect(readdirSync(join(root, 'proj', 'tasks')).sort()).toEqual(['S02', 'S03', 'S04']);
  });

  it('refuses a task id that is not a name, before touching anything', async () => {
    const root = tempDir('gsync-work-');
    taskDirWith(root, 'S01', 'done');
    const r = await remove(root, '--task', '../proj');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/task id/);
    expect(readdirSync(join(root, 'proj', 'tasks'))).toEqual(['S01']);
  });
});
