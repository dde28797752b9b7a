import { createHash, createHmac } from 'node:crypto';

/**
 * known_hosts in OpenSSH's format: plain, `[host]:port`, wildcard and negated
 * patterns, hashed `|1|salt|hash` entries, and the @revoked marker.
 * (@cert-authority lines are skipped: certificate host keys are not supported.)
 */
export interface KnownHostEntry {
  marker: 'revoked' | 'cert-authority' | undefined;
  patterns: string;
  keyType: string;
  key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift()!.slice(1);
      if (m !== 'revoked' && m !== 'cert-authority') continue;
      marker = m;
    }
    const [patterns, keyType, key] = fields;
    if (!patterns || !keyType || !key) continue;
    entries.push({ marker, patterns, keyType, key: Buffer.from(key, 'base64') });
  }
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise, lowercased as ssh does before hashing. */
export function hostLookupName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatch(pattern: string, name: string): boolean {
  const [, magic, salt, hash] = pattern.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
  return digest === hash;
}

export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.patterns.startsWith('|')) return hashedMatch(entry.patterns, name);
  let matched = false;
  for (const p of entry.patterns.split(',')) {
    const negated = p.startsWith('!');
    const pattern = negated ? p.slice(1) : p;
    if (globToRegExp(pattern).test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function blobKeyType(blob: Buffer): string {
  if (blob.length < 4) return '';
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export type HostKeyVerdict = { kind: 'known' } | { kind: 'unknown' } | { kind: 'changed'; expectedTypes: string[] } | { kind: 'revoked' };

export function checkHostKey(entries: readonly KnownHostEntry[], name: string, blob: Buffer): HostKeyVerdict {
  const mine = entries.filter((e) => e.marker !== 'cert-authority' && entryMatches(e, name));
  if (mine.some((e) => e.marker === 'revoked' && e.key.equals(blob))) return { kind: 'revoked' };
  const plain = mine.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(blob))) return { kind: 'known' };
  if (plain.length === 0) return { kind: 'unknown' };
  return { kind: 'changed', expectedTypes: [...new Set(plain.map((e) => e.keyType))] };
}

/** Host key algorithms to offer so the server shows a key we already know. */
export function preferredHostKeyAlgorithms(entries: readonly KnownHostEntry[], name: string): string[] | undefined {
  const types = new Set(entries.filter((e) => e.marker === undefined && entryMatches(e, name)).map((e) => e.keyType));
  if (types.size === 0) return undefined;
  const algorithms: string[] = [];
  for (const type of types) {
    if (type === 'ssh-rsa') algorithms.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else algorithms.push(type);
  }
  return algorithms;
}

export function knownHostsLine(name: string, blob: Buffer): string {
  return `${name} ${blobKeyType(blob)} ${blob.toString('base64')}`;
}
