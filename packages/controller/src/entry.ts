import { isatty } from 'node:tty';
import { fileURLToPath } from 'node:url';
import { main } from './cli.js';
import { EXIT } from './exit-codes.js';

// A reader that went away (`| head`) ends the command quietly with 141, as SIGPIPE ends git: nothing more is worth writing.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(EXIT.closedPipe);
});

process.exitCode = await main(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stdoutIsTTY: process.stdout.isTTY,
  stderrIsTTY: process.stderr.isTTY,
  terminal: isatty(0) ? process.stdin : undefined,
  pid: process.pid,
  cwd: process.cwd(),
  nodeToolPath: fileURLToPath(new URL('../../node/dist/gsync-node.mjs', import.meta.url)),
});
