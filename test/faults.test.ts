import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { Store } from '@gsync/controller';
import { cleanupTempDirs, gitRepo, tempDir, type GitRepo } from './helpers/git-repo.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startSshNodes, type SshWorld } from './helpers/sshd.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * Links that fail: every SSH connection to the node goes through a proxy on loopback
 * that cuts it at a chosen byte (up or down) or stalls it. Each dispatch and pull
 * must end with the task sent, collected and merged intact, in the same run, by
 * retrying; nothing half-transferred may be used or left in the repository.
 */
let world: SshWorld;
let proxy: FaultProxy;

beforeAll(async () => {
  world = await startSshNodes([{ name: 'f1' }], 'gsfault');
  proxy = await startFaultProxy({ host: '127.0.0.1', port: world.node('f1').port });
});

afterAll(async () => {
  await proxy?.close();
  await world?.stop();
  cleanupTempDirs();
});

/** The bytes the edit agent's `random` verb writes (fixtures/agents/edit.mjs). */
function randomBytesOf(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0, h = createHash('sha256').update(seed).digest(); i < out.length; i += h.length, h = createHash('sha256').update(h).digest()) h.copy(out, i);
  return out;
}

function setup(project: string) {
  // A base of ~200 KiB that does not compress, so cuts land inside the bundle too.
  const repo: GitRepo = gitRepo({ 'README.md': 'faults\n' });
  writeFileSync(join(repo.dir, 'base.bin'), randomBytesOf(200 * 1024, `base-${project}`));
  repo.commitAll('a base worth cutting');
  const f1 = world.node('f1');
  const knownHosts = join(tempDir('gsync-kh-'), 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${proxy.port} ${f1.hostKeyPub}\n`);
  const configDir = tempDir('gsync-config-');
  writeConfig(
    configDir,
    {
      transfer_retries: 3,
      nodes: [
        {
          name: 'f1',
          host: '127.0.0.1',
          port: proxy.port,
          user: f1.user,
          identity_file: world.clientKey,
          known_hosts: knownHosts,
          work_root: '~/faults',
          keepalive_seconds: 1,
          agent: ['node', join(world.agents, 'edit.mjs'), '{spec_file}'],
        },
      ],
    },
    { [project]: { repo_local: repo.dir } },
  );
  return {
    repo,
    ctx: testContext(configDir, process.env.DEBUG_FAULTS ? { onEvent: (e) => console.error(new Date().toISOString(), e.kind, e.message) } : {}),
    specs: tempDir('gsync-specs-'),
    configDir,
  };
}

function noLeftovers(repo: GitRepo): void {
  const gitDir = join(repo.dir, '.git');
  expect(readdirSync(join(gitDir, 'objects/pack')).filter((f) => f.startsWith('tmp_'))).toEqual([]);
  for (const sub of ['gsync/quarantine', 'gsync/incoming']) {
    const dir = join(gitDir, sub);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  }
  expect(repo.git('fsck', '--no-dangling', '--no-progress')).toBe('');
}

/** Offsets spread over a transfer of about `total` bytes: the first bytes, the handshake, inside the data, near the end. */
function offsets(total: number, count: number): number[] {
  const fixed = [0, 1, 700, 3000];
  const spread = Array.from({ length: count - fixed.length }, (_, i) => Math.floor(((i + 1) * total) / (count - fixed.length + 1)));
  return [...fixed, ...spread];
}

describe('transfers cut or stalled on the way', () => {
  it('dispatch: an upload cut at any byte is sent again and arrives whole', async () => {
    const { repo, ctx, specs, configDir } = setup('up');
    const cuts = offsets(230 * 1024, 12);
    for (const [i, at] of cuts.entries()) {
      // The node's object cache holds every earlier base: new content on main makes each upload worth cutting.
      if (i > 0) {
        writeFileSync(join(repo.dir, 'base.bin'), randomBytesOf(200 * 1024, `base-up-${i}`));
        repo.commitAll(`more to send ${i}`);
      }
      proxy.plan({ cutAfterBytes: { direction: 'up', bytes: at } });
      const r = await dispatch(ctx, { project: 'up', spec: specFile(specs, `${i}.md`, `# task ${i}\nwrite out/${i}.txt cut at ${at}\n`) });
      expect(r.task_id).toBe(`S${String(i + 1).padStart(2, '0')}`);
    }
    const report = await pullBundles(ctx, { project: 'up', wait: true, interval: 0.2, timeout: 120 });
    expect(report.tasks.map((t) => t.outcome)).toEqual(cuts.map(() => 'merged'));
    for (const [i, at] of cuts.entries()) expect(repo.git('show', `main:out/${i}.txt`)).toBe(`cut at ${at}\n`);
    const store = new Store(join(configDir, 'gsync.db'));
    const retries = store.events('up').filter((e) => e.kind === 'transfer_retry').length;
    store.close();
    expect(retries).toBeGreaterThanOrEqual(cuts.length);
    // Each task is on the node exactly once, and no half-received upload is left there.
    const tasksDir = join(world.node('f1').home, 'faults/up/tasks');
    expect(readdirSync(tasksDir).sort()).toEqual(cuts.map((_, i) => `S${String(i + 1).padStart(2, '0')}`));
    noLeftovers(repo);
  }, 180_000);

  it('pull: a download cut at any byte, or stalled, is fetched again and merges intact', async () => {
    const { repo, ctx, specs } = setup('down');
    const plans = [
      ...offsets(200 * 1024, 12).map((at) => ({ cutAfterBytes: { direction: 'down' as const, bytes: at } })),
      { stallAfterBytes: { direction: 'down' as const, bytes: 150 * 1024 } },
    ];
    const statusOf = (id: string) => join(world.node('f1').home, 'faults/down/tasks', id, 'status.json');
    for (const [i, plan] of plans.entries()) {
      const id = `S${String(i + 1).padStart(2, '0')}`;
      await dispatch(ctx, { project: 'down', spec: specFile(specs, `${i}.md`, `# result ${i}\nrandom out/${i}.bin 204800 seed-${i}\n`) });
      for (let k = 0; k < 200 && !(existsSync(statusOf(id)) && readFileSync(statusOf(id), 'utf8').includes('"state": "done"')); k++) {
        await new Promise((res) => setTimeout(res, 100));
      }
      // The task is done on the node; the pull's first connection fails once, the retry must finish the job.
      proxy.plan(plan);
      const r = await pullBundles(ctx, { project: 'down' });
      expect(r.tasks.map((t) => [t.task_id, t.outcome])).toEqual([[id, 'merged']]);
    }
    for (const [i] of plans.entries()) {
      const merged = execFileSync('git', ['show', `main:out/${i}.bin`], { cwd: repo.dir, maxBuffer: 1 << 24 });
      expect(merged.equals(randomBytesOf(204800, `seed-${i}`))).toBe(true);
    }
    expect(proxy.connections().filter((c) => c.ended === 'cut' || c.ended === 'stalled').length).toBeGreaterThanOrEqual(plans.length);
    noLeftovers(repo);
  }, 180_000);
});
