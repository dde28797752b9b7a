import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dispatch } from '@gsync/controller';
import { pullBundles } from '@gsync/controller';
import { Store } from '@gsync/controller';
import { buildBase, branchOf } from '../fixtures/hostile/corpus.mjs';
import { AGENTS, ROOT, cleanupTempDirs, tempDir } from './helpers/git-repo.js';
import { specFile, testContext, writeConfig } from './helpers/world.js';

/**
 * Every bad result in fixtures/hostile (a compromised node's answers) goes through a real
 * pull-bundles: each is rejected with its own reason, main and every ref outside
 * refs/gsync/incoming stay as they were, nothing of it enters the object store, no temp
 * file is left behind, the event is recorded, and no secret value is repeated anywhere.
 */
afterAll(cleanupTempDirs);

interface Entry {
  id: string;
  name: string;
  what: string;
  bundle: string;
  expect: string;
  result: { head: string; base?: string; task_id?: string; size_delta?: number; sha256_of_original?: boolean };
  config?: Record<string, number>;
}
const CORPUS = join(ROOT, 'fixtures/hostile');
const corpus = JSON.parse(readFileSync(join(CORPUS, 'corpus.json'), 'utf8')) as { base: string; project: string; node: string; entries: Entry[] };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('hostile results', () => {
  it(`rejects all ${corpus.entries.length} bad results of the corpus, each for its own reason, and nothing moves`, async () => {
    expect(corpus.entries.length).toBeGreaterThanOrEqual(25);
    const dir = tempDir('gsync-hostile-');
    const base = buildBase(dir);
    expect(base).toBe(corpus.base);
    const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });
    git('config', 'user.name', 'Test User');
    git('config', 'user.email', 'test@example.invalid');
    const objectsBefore = git('count-objects', '-v');

    const configDir = tempDir('gsync-config-');
    const limits = Object.assign({}, ...corpus.entries.map((e) => e.config ?? {})) as Record<string, number>;
    writeConfig(
      configDir,
      { nodes: [{ name: corpus.node, transport: 'local', agent: ['node', join(AGENTS, 'edit.mjs'), '{spec_file}'] }], ...limits },
      { [corpus.project]: { repo_local: dir } },
    );
    const ctx = testContext(configDir);
    const specs = tempDir('gsync-specs-');
    for (const e of corpus.entries) {
      await dispatch(ctx, {
        project: corpus.project,
        spec: specFile(specs, `${e.id}.md`, `# honest work ${e.id}\nwrite out/${e.id}.txt x\n`),
        task: e.id,
        node: corpus.node,
      });
    }
    const taskDir = (id: string) => join(configDir, 'nodes', corpus.node, 'dispatch', corpus.project, 'tasks', id);
    for (let i = 0; i < 600; i++) {
      const states = corpus.entries.map((e) => (JSON.parse(readFileSync(join(taskDir(e.id), 'status.json'), 'utf8')) as { state: string }).state);
      if (states.every((s) => s === 'done')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The node turns hostile: its answers are replaced by the corpus.
    for (const e of corpus.entries) {
      const data = readFileSync(join(CORPUS, e.bundle));
      writeFileSync(join(taskDir(e.id), 'result.bundle'), data);
      const result = {
        protocol: 1,
        project: corpus.project,
        task_id: e.result.task_id ?? e.id,
        node: corpus.node,
        branch: branchOf(e.id),
        base: e.result.base ?? base,
        head: e.result.head,
        commits: 1,
        changed_paths: ['feature.txt'],
        bundle: {
          name: 'result.bundle',
          size: data.length + (e.result.size_delta ?? 0),
          sha256: e.result.sha256_of_original ? sha256(Buffer.concat([data, Buffer.from('x')])) : sha256(data),
        },
        wip: false,
        agent_exit_code: 0,
        finished_at: new Date().toISOString(),
      };
      writeFileSync(join(taskDir(e.id), 'result.json'), JSON.stringify(result));
    }
    const refsBefore = git('for-each-ref', '--format=%(refname) %(objectname)');

    const report = await pullBundles(ctx, { project: corpus.project });
    const byId = new Map(report.tasks.map((t) => [t.task_id, t]));
    const wrong: string[] = [];
    for (const e of corpus.entries) {
      const t = byId.get(e.id);
      if (t?.outcome !== 'rejected' || !new RegExp(e.expect).test(t.reason ?? '')) wrong.push(`${e.id} ${e.name}: ${t?.outcome} (${t?.reason})`);
    }
    expect(wrong).toEqual([]);
    expect(report.exit_code).toBe(3);

    // Nothing moved, nothing entered, nothing was left behind.
    expect(git('rev-parse', 'main').trim()).toBe(base);
    expect(git('for-each-ref', '--format=%(refname) %(objectname)')).toBe(refsBefore);
    expect(git('count-objects', '-v')).toBe(objectsBefore);
    const gitDir = join(dir, '.git');
    expect(readdirSync(join(gitDir, 'objects/pack')).filter((f) => f.startsWith('tmp_'))).toEqual([]);
    expect(existsSync(join(gitDir, 'gsync/quarantine')) ? readdirSync(join(gitDir, 'gsync/quarantine')) : []).toEqual([]);
    expect(existsSync(join(gitDir, 'gsync/incoming')) ? readdirSync(join(gitDir, 'gsync/incoming')) : []).toEqual([]);
    expect(git('status', '--porcelain')).toBe('');

    // Every rejection is an event; no secret value from the corpus is repeated in store or report.
    const store = new Store(join(configDir, 'gsync.db'));
    const events = store.events(corpus.project);
    store.close();
    for (const e of corpus.entries) expect(events.some((ev) => ev.task_id === e.id && ev.kind === 'rejected')).toBe(true);
    const everything = JSON.stringify(events) + readFileSync(report.report_path!, 'utf8');
    for (const secret of ['Q3EXAMPLEKEY7ABC', 'A1b2C3d4E5f6G7h8I9j0', 'b3BlbnNzaC1rZXktdjEAAAAA', 'Z9y8X7w6V5u4T3s2R1q0'])
      expect(everything).not.toContain(secret);

    // A second pull does nothing new: the rejections stand.
    const again = await pullBundles(ctx, { project: corpus.project });
    expect(again.tasks).toEqual([]);
    expect(again.outstanding).toHaveLength(corpus.entries.length);
  }, 240_000);
});
