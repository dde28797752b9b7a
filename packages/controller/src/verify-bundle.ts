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
}

/** What is wrong with a result bundle's header, or undefined: one ref, the expected head, the dispatched base as the only prerequisite. */
export function headerProblem(header: BundleHeader, expected: BundleExpectation): string | undefined {
  if (header.refs.length !== 1) {
    return `the bundle carries ${header.refs.length} refs (${header.refs.map((r) => r.ref).join(', ') || 'none'}); only ${expected.ref} is accepted`;
  }
  const [ref] = header.refs;
  if (ref!.ref !== expected.ref) return `the bundle carries ${ref!.ref}, not ${expected.ref}`;
  if (ref!.oid !== expected.head) return `the bundle's ${expected.ref} is ${ref!.oid}, result.json says ${expected.head}`;
  const prereqs = [...new Set(header.prerequisites)];
  if (prereqs.length !== 1 || prereqs[0] !== expected.base) {
    return `the bundle requires ${prereqs.join(', ') || 'nothing'}; it must require exactly the dispatched base ${expected.base}`;
  }
  return undefined;
}
