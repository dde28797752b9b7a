import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { sha256 } from '@gsync/core';

/** The gsync-node file this controller ships to nodes, and what identifies it. */
export interface NodeTool {
  path: string;
  version: string;
  protocol: number;
  sha256: string;
  data: Buffer;
}

/** Asks the file itself for its version, so the controller never disagrees with what it ships. */
export async function loadNodeTool(path: string): Promise<NodeTool> {
  const data = await readFile(path);
  const { stdout } = await execa(process.execPath, [path, 'hello']);
  const hello = JSON.parse(stdout) as { version: string; protocol: number };
  return { path, version: hello.version, protocol: hello.protocol, sha256: sha256(data), data };
}

/** a > b for dotted numeric versions (anything after the third number is ignored). */
export function versionNewer(a: string, b: string): boolean {
  const pa = a.split(/[.+-]/).slice(0, 3).map(Number);
  const pb = b.split(/[.+-]/).slice(0, 3).map(Number);
  for (let i = 0; i < 3; i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x > y;
  }
  return false;
}
