import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The tests run the built gsync-node file, as a node would: `pnpm test` builds first. */
export default function setup(): void {
  const tool = fileURLToPath(new URL('../../packages/node/dist/gsync-node.mjs', import.meta.url));
  if (!existsSync(tool)) throw new Error(`${tool} is missing: run the tests with "pnpm test", which builds first`);
}
