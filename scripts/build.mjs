// Builds the two CLIs: gsync-node as one self-contained file (it is copied to
// nodes that have only node and git), gsync-ctl with its npm dependencies external.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

// The controller learns the shipped file's identity from this record instead of starting it on every dispatch.
const nodeFile = new URL('packages/node/dist/gsync-node.mjs', root);
const hello = JSON.parse(execFileSync(process.execPath, [fileURLToPath(nodeFile), 'hello'], { encoding: 'utf8' }));
const digest = createHash('sha256').update(readFileSync(nodeFile)).digest('hex');
writeFileSync(new URL('packages/node/dist/gsync-node.json', root), `${JSON.stringify({ version: hello.version, protocol: hello.protocol, sha256: digest })}\n`);

// yargs' help is laid out by cliui, whose ES module build wraps text in the middle of words;
// its CommonJS build wraps at word boundaries (wrap-ansi) and measures wide characters.
const cliuiWithWordWrap = {
  name: 'cliui-word-wrap',
  setup(b) {
    const yargsDir = dirname(createRequire(new URL('packages/controller/package.json', root)).resolve('yargs'));
    const cjs = createRequire(join(yargsDir, 'package.json')).resolve('cliui');
    b.onResolve({ filter: /^cliui$/ }, () => ({ path: cjs }));
  },
};

// Split at the commands' dynamic imports: a command loads only what it needs (status never loads ssh2).
// Minified: parsing is most of a short command's start-up. Old chunks go first, or they pile up.
rmSync(new URL('packages/controller/dist', root), { recursive: true, force: true });
await build({
  ...shared,
  entryPoints: { 'gsync-ctl': 'packages/controller/src/entry.ts' },
  outdir: 'packages/controller/dist',
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  target: 'node20',
  minify: true,
  external: ['better-sqlite3', 'ssh2', 'cpu-features'],
  plugins: [cliuiWithWordWrap],
});
