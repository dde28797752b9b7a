// Builds the two CLIs: gsync-node as one self-contained file (it is copied to
// nodes that have only node and git), gsync-ctl with its npm dependencies external.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const version = JSON.parse(readFileSync(new URL('packages/node/package.json', root), 'utf8')).version;
const shared = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  logLevel: 'warning',
  mainFields: ['module', 'main'],
  absWorkingDir: root.pathname,
  define: { GSYNC_VERSION: JSON.stringify(version) },
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __gsyncRequire } from 'node:module'; const require = __gsyncRequire(import.meta.url);" },
};

await build({
  ...shared,
  entryPoints: ['packages/node/src/entry.ts'],
  outfile: 'packages/node/dist/gsync-node.mjs',
  target: 'node18',
});

await build({
  ...shared,
  entryPoints: ['packages/controller/src/entry.ts'],
  outfile: 'packages/controller/dist/gsync-ctl.mjs',
  target: 'node20',
  external: ['better-sqlite3', 'ssh2', 'cpu-features'],
});
