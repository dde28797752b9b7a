import { open } from 'node:fs/promises';
import { parseBundleHeader, type BundleHeader } from '@gsync/core';

/** Reads just the header of a bundle file (it is at most 1 MiB). */
export async function readBundleHeader(path: string): Promise<BundleHeader> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(1024 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return parseBundleHeader(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

export interface BundleExpectation {
  ref: string;
  head: string;
  base: string;
  /** For a conflict resolution: the head of the branch it merges, which the bundle may also require. */
  mergeHead?: string | undefined;
}

/**
 * What is wrong with a result bundle's header, or undefined: one ref, the expected head,
 * the dispatched base as prerequisite (and, for a resolution, the head of the merged branch).
 */
export function headerProblem(header: BundleHeader, expected: BundleExpectation): string | undefined {
  const unknown = header.capabilities.filter((c) => c !== 'object-format=sha1');
  if (unknown.length > 0) return `the bundle announces capabilities this repository cannot take: ${unknown.join(', ')}`;
  if (header.refs.length !== 1) {
    return `the bundle carries ${header.refs.length} refs (${header.refs.map((r) => r.ref).join(', ') || 'none'}); only ${expected.ref} is accepted`;
  }
  const [ref] = header.refs;
  if (ref!.ref !== expected.ref) return `the bundle carries ${ref!.ref}, not ${expected.ref}`;
  if (ref!.oid !== expected.head) return `the bundle's ${expected.ref} is ${ref!.oid}, result.json says ${expected.head}`;
  const prereqs = [...new Set(header.prerequisites)];
  const allowed = new Set([expected.base, ...(expected.mergeHead ? [expected.mergeHead] : [])]);
  if (!prereqs.includes(expected.base) || prereqs.some((p) => !allowed.has(p))) {
    const what = expected.mergeHead
      ? `the dispatched base ${expected.base} (and the merged ${expected.mergeHead})`
      : `exactly the dispatched base ${expected.base}`;
    return `the bundle requires ${prereqs.join(', ') || 'nothing'}; it must require ${what}`;
  }
  return undefined;
}
