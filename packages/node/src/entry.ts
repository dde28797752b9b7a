import { fileURLToPath } from 'node:url';
import { main } from './cli.js';

// The single file copied to nodes: running it runs the CLI.
process.exitCode = await main({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  self: fileURLToPath(import.meta.url),
});
