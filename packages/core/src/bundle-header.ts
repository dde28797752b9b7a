/**
 * Parses the text header of a git bundle (v2 or v3) without trusting it:
 * `# v2 git bundle`, then `-<oid> <comment>` prerequisites, `<oid> <refname>`
 * refs, then an empty line before the pack.
 */
export interface BundleHeader {
  version: 2 | 3;
  capabilities: string[];
  prerequisites: string[];
  refs: { oid: string; ref: string }[];
  /** Byte offset where the pack starts. */
  packOffset: number;
}

const MAX_HEADER_BYTES = 1024 * 1024;

export function parseBundleHeader(data: Buffer): BundleHeader {
  const end = data.indexOf('\n\n');
  if (end < 0 || end > MAX_HEADER_BYTES) throw new Error('no bundle header found');
  const text = data.subarray(0, end).toString('utf8');
  const [signature, ...rest] = text.split('\n');
  const version = signature === '# v2 git bundle' ? 2 : signature === '# v3 git bundle' ? 3 : undefined;
  if (!version) throw new Error('not a git bundle (bad signature)');
  const header: BundleHeader = { version, capabilities: [], prerequisites: [], refs: [], packOffset: end + 2 };
  for (const line of rest) {
    if (line.startsWith('@')) {
      if (version !== 3) throw new Error('capability line in a v2 bundle');
      header.capabilities.push(line.slice(1));
    } else if (line.startsWith('-')) {
      const m = /^-([0-9a-f]{40})(?: .*)?$/.exec(line);
      if (!m) throw new Error('bad prerequisite line in bundle header');
      header.prerequisites.push(m[1]!);
    } else {
      const m = /^([0-9a-f]{40}) (\S+)$/.exec(line);
      if (!m) throw new Error('bad ref line in bundle header');
      header.refs.push({ oid: m[1]!, ref: m[2]! });
    }
  }
  return header;
}
