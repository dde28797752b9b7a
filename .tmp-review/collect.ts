import { readdirSync, mkdirSync, copyFileSync } from 'node:fs';
import { openLocalTransport } from '../packages/controller/src/ssh/local-transport.ts';
import { collectResults, openHelloAccept } from '../packages/controller/src/node-api/calls.ts';
import { bundleCarrier } from '../packages/controller/src/carrier/bundle.ts';

process.on('unhandledRejection', (e) => console.log('UNHANDLED REJECTION', e));
const scenario = process.argv[2]!;
const mode = process.argv[3] ?? 'gather';
const wr = '/tmp/hostile/wr';
mkdirSync(`${wr}/.gsync`, { recursive: true });
copyFileSync('/tmp/hostile/gsync-node.mjs', `${wr}/.gsync/gsync-node.mjs`);
const node = { name: 'n1', node_bin: process.execPath, work_root: wr, max_parallel: 2 } as any;
const t = await openLocalTransport('n1', '/tmp/hostile/home', { ...process.env, HOSTILE: scenario });
const gitDir = '/tmp/hostile/gitdir';
mkdirSync(gitDir, { recursive: true });
const task = { project: 'proj', task_id: 'T1', node: 'n1', branch: 'task/proj-T1-n1', base_commit: 'a'.repeat(40) } as any;
const timeout = (ms: number) => new Promise((r) => setTimeout(() => r('TIMEOUT (hang)'), ms).unref());
const t0 = Date.now();
let p: Promise<unknown>;
if (mode === 'gather') {
  p = bundleCarrier.gather({ project: { name: 'proj' } as any, node, tasks: [task], transport: t, gitDir, maxBytes: 100 * 1024 * 1024 })
    .then((g) => ({ ok: true, reports: g.reports.length, arrived: [...g.arrived] }));
} else if (mode === 'hello') {
  p = (async () => {
    const call = await openHelloAccept(t, node, 'proj', 'T1');
    console.log('hello:', JSON.stringify(call.hello));
    if (!call.hello) { await call.skip(); return 'skipped'; }
    const files = process.argv[4] === 'missing'
      ? [{ name: 'task.json', data: Buffer.from('{}') }, { name: 'base.bundle', path: '/nonexistent', size: 10 }]
      : [{ name: 'task.json', data: Buffer.from('{}') }, { name: 'base.bundle', data: Buffer.alloc(8 * 1024 * 1024) }];
    try { return await call.accept(files); } finally { await call.skip(); }
  })();
} else throw new Error(mode);
const r = await Promise.race([p.then((v) => v, (e) => `THREW ${e?.constructor?.name} ${e?.kind ?? ''}: ${e?.message}`), timeout(Number(process.env.WAIT ?? 8000))]);
console.log(scenario, '=>', typeof r === 'string' ? r : JSON.stringify(r), `(${Date.now() - t0} ms)`);
try { console.log('incoming dir:', readdirSync(`${gitDir}/gsync/incoming/proj`)); } catch (e) { console.log('no incoming dir'); }
await new Promise((r) => setTimeout(r, 1500));
try { console.log('incoming dir after 1.5s:', readdirSync(`${gitDir}/gsync/incoming/proj`)); } catch {}
process.exit(0);
