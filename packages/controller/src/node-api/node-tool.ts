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

/** What the build wrote beside gsync-node.mjs: the file's own hello, and the sha256 it was given for. */
async function buildIdentity(path: string, digest: string): Promise<{ version: string; protocol: number } | undefined> {
  try {
    const id = JSON.parse(await readFile(path.replace(/\.mjs$/, '.json'), 'utf8')) as { version?: unknown; protocol?: unknown; sha256?: unknown };
    if (id.sha256 !== digest || typeof id.version !== 'string' || typeof id.protocol !== 'number') return undefined;
    return { version: id.version, protocol: id.protocol };
  } catch {
    return undefined;
  }
}

/**
 * The file and its identity: as the build recorded it (no process started), or, when
 * that record is missing or for another build, as the file itself says, so the
 * controller never disagrees with what it ships.
 */
export async function loadNodeTool(path: string): Promise<NodeTool> {
  const data = await readFile(path);
  const digest = sha256(data);
  const known = await buildIdentity(path, digest);
  const hello = known ?? (JSON.parse((await execa(process.execPath, [path, 'hello'])).stdout) as { version: string; protocol: number });
  return { path, version: hello.version, protocol: hello.protocol, sha256: digest, data };
}
