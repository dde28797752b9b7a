// The main job end to end, on two nodes that need no SSH server (transport
// "local": the same protocol and the same gsync-node file, run in a folder):
// three tasks dispatched to two nodes, collected, merged, one conflict shown,
// then resolved by a (fake) agent and merged.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ctl = join(root, 'packages/controller/bin/gsync-ctl.js');
const agent = join(root, 'fixtures/agents/edit.mjs');
const resolver = join(root, 'fixtures/agents/resolve.mjs');
const work = mkdtempSync(join(tmpdir(), 'gsync-demo-'));
const repo = join(work, 'shop');
const config = join(work, 'config');

const git = (...args) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' });
const write = (path, text) => {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
};
const heading = (text) => console.log(`\n\x1b[1m== ${text}\x1b[0m`);
function run(...args) {
  console.log(`\x1b[36m$ gsync-ctl ${args.join(' ')}\x1b[0m`);
  const r = spawnSync(process.execPath, [ctl, '--config-dir', config, ...args], { stdio: 'inherit' });
  console.log(`\x1b[2m(exit ${r.status})\x1b[0m`);
  return r.status;
}

heading(`a project repository and two local nodes in ${work}`);
mkdirSync(repo, { recursive: true });
git('init', '-q', '-b', 'main');
git('config', 'user.name', 'Demo User');
git('config', 'user.email', 'demo@example.invalid');
write(join(repo, 'schemas/pack.py'), 'PACK_SCHEMA = {}\n');
write(join(repo, 'api/pack.py'), 'def pack():\n    pass\n');
write(join(repo, 'app/config.py'), 'TIMEOUT = 30\nRETRIES = 1\n');
git('add', '-A');
git('commit', '-q', '-m', 'initial');
write(
  join(config, 'nodes.json'),
  JSON.stringify(
    {
      nodes: [
        { name: 'vm-1', transport: 'local', agent: ['node', agent, '{spec_file}'] },
        { name: 'gpu-1', transport: 'local', agent: ['node', agent, '{spec_file}'] },
      ],
      agents: { fixer: ['node', resolver, '{spec_file}'] },
    },
    null,
    2,
  ),
);
write(join(config, 'projects.json'), JSON.stringify({ shop: { repo_local: repo, main_branch: 'main', sync_mode: 'bundle' } }, null, 2));
const spec = (name, text) => {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
};
const s1 = spec('s01.md', '# Define the pack schema\nwrite schemas/pack.py PACK_SCHEMA = {"id": int, "items": list}\nset app/config.py 1 TIMEOUT = 60\n');
const s2 = spec('s02.md', '# Implement the pack endpoint\nwrite api/pack.py def pack(items): return {"items": items}\n');
const s3 = spec('s03.md', '# Make requests fail faster\nset app/config.py 1 TIMEOUT = 5\n');

heading('dispatch: three tasks, two nodes (schemas/pack.py and api/pack.py share a basename)');
run('dispatch', '--project', 'shop', '--spec', s1, '--node', 'vm-1');
run('dispatch', '--project', 'shop', '--spec', s2, '--node', 'gpu-1');
run('dispatch', '--project', 'shop', '--spec', s3);

heading('pull-bundles: collect, verify, merge in dispatch order');
const pullExit = run('pull-bundles', '--project', 'shop', '--wait', '--interval', '0.5');

heading('merge_report.md');
console.log(readFileSync(join(config, 'reports/shop/merge_report.md'), 'utf8'));

heading('resolve: an agent merges the conflicted branch on top of main and resolves the markers');
console.log(readFileSync(join(config, 'reports/shop/S03/conflict_resolution_spec.md'), 'utf8').split('\n').slice(0, 12).join('\n') + '\n[...]');
const resolveExit = run('resolve', '--project', 'shop', '--task', 'S03', '--agent', 'fixer');
const secondPull = run('pull-bundles', '--project', 'shop', '--wait', '--interval', '0.5');

heading('status');
run('status', '--project', 'shop');

heading('main after the merges');
console.log(git('log', '--graph', '--oneline', '--decorate', 'main'));
console.log(`schemas/pack.py: ${git('show', 'main:schemas/pack.py').trim()}`);
console.log(`api/pack.py:     ${git('show', 'main:api/pack.py').trim()}`);
console.log(`app/config.py:   ${git('show', 'main:app/config.py').split('\n').slice(0, 2).join(' | ')}`);

const expected = pullExit === 3 && resolveExit === 0 && secondPull === 0;
console.log(
  expected
    ? '\nDemo finished as expected: two tasks merged, the conflicting one reported (pull-bundles exit 3) and then resolved by an agent (exit 0), nothing overwritten.'
    : `\nDemo did NOT end as expected (pull-bundles exit ${pullExit}, resolve exit ${resolveExit}, second pull exit ${secondPull}).`,
);
process.exitCode = expected ? 0 : 1;
