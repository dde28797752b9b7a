#!/usr/bin/env node
// gsync-node straight from its TypeScript sources, for tests whose runs must be this very code
// (the built file may be older). It names itself as the file to start `run` from.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  self: fileURLToPath(import.meta.url),
});
