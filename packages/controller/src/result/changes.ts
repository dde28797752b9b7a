import { GitError, ProtocolError, git, spawnGit } from '@gsync/core';
import type { ObjectReader } from './object-reader.js';

/** One file a result adds, modifies or deletes (a deleted one has an all-zero newOid). */
export interface Change {
  status: string;
  newMode: string;
  newOid: string;
  path: string;
}

export const ZERO = /^0+$/;

interface TreeEntry {
  mode: string;
  name: string;
  oid: string;
}

function parseTree(data: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const nul = data.indexOf(0, space);
    entries.push({
      mode: data.subarray(at, space).toString('latin1'),
      name: data.subarray(space + 1, nul).toString('utf8'),
      oid: data.subarray(nul + 1, nul + 21).toString('hex'),
    });
    at = nul + 21;
  }
  return entries;
}

export class TooManyPaths extends Error {}

/**
 * How many paths differ between two commits' trees, counted without expanding them:
 * equal subtrees are skipped and the size of a new subtree is computed once per tree
 * id, so a tree bomb (one subtree referenced over and over) costs a handful of reads.
 * Throws TooManyPaths past `limit`.
 */
export async function countChangedPaths(reader: ObjectReader, from: string, to: string, limit: number): Promise<number> {
  const sizes = new Map<string, number>();
  let total = 0;
  const add = (n: number) => {
    total += n;
    if (total > limit) throw new TooManyPaths();
  };
  const entries = async (tree: string): Promise<TreeEntry[]> => {
    const o = await reader.read(tree);
    if (o?.type !== 'tree') throw new ProtocolError(`tree ${tree} is missing or not a tree`);
    return parseTree(o.data);
  };
  const isTree = (e: TreeEntry) => e.mode === '40000';
  const fullSize = async (tree: string): Promise<number> => {
    const known = sizes.get(tree);
    if (known !== undefined) return known;
    let n = 0;
    for (const e of await entries(tree)) {
      n += isTree(e) ? await fullSize(e.oid) : 1;
      if (n > limit) throw new TooManyPaths();
    }
    sizes.set(tree, n);
    return n;
  };
  const diff = async (a: string, b: string): Promise<void> => {
    const left = new Map((await entries(a)).map((e) => [e.name, e]));
    for (const e of await entries(b)) {
      const old = left.get(e.name);
      left.delete(e.name);
      if (old && old.oid === e.oid && old.mode === e.mode) continue;
      if (isTree(e) && old && isTree(old)) await diff(old.oid, e.oid);
      else add((isTree(e) ? await fullSize(e.oid) : 1) + (old ? (isTree(old) ? await fullSize(old.oid) : 1) : 0));
    }
    for (const old of left.values()) add(isTree(old) ? await fullSize(old.oid) : 1);
  };
  const treeOf = async (commit: string) => {
    const o = await reader.read(`${commit}^{tree}`);
    if (o?.type !== 'tree') throw new ProtocolError(`commit ${commit} has no tree`);
    return o;
  };
  await treeOf(from);
  await treeOf(to);
  await diff(`${from}^{tree}`, `${to}^{tree}`);
  return total;
}

/** `git diff-tree -r -z` between two commits, stopped (and saying so) past `max` entries: a tree bomb never expands. */
export async function listChanges(repo: string, env: Record<string, string>, from: string, to: string, max: number): Promise<Change[] | 'too many'> {
  const run = spawnGit(repo, ['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', from, to], { env });
  run.stdin.end();
  const changes: Change[] = [];
  let rest = '';
  let pending: string | undefined;
  run.stdout.setEncoding('utf8');
  run.stdout.on('data', (chunk: string) => {
    if (changes.length > max) return;
    const fields = (rest + chunk).split('\0');
    rest = fields.pop() ?? '';
    for (const field of fields) {
      if (pending === undefined) {
        pending = field;
        continue;
      }
      const [, newMode = '', , newOid = '', status = ''] = pending.slice(1).split(' ');
      changes.push({ status, newMode, newOid, path: field });
      pending = undefined;
      if (changes.length > max) return run.stop();
    }
  });
  try {
    const { stopped } = await run.done;
    return stopped ? 'too many' : changes;
  } catch (error) {
    if (error instanceof GitError) throw new ProtocolError(`cannot list the result's changes: ${error.stderr.trim().split('\n')[0] ?? error.exitCode}`);
    throw error;
  }
}

/** Files added or modified by any single commit of `head ^exclude...` (first-parent view of merges). */
export async function historyChanges(repo: string, env: Record<string, string>, head: string, exclude: readonly string[]): Promise<Change[]> {
  const r = await git(repo, ['log', '--raw', '-z', '--no-renames', '--no-abbrev', '--format=', '--diff-merges=first-parent', head, ...exclude], { env });
  const fields = r.stdout.split('\0');
  const out: Change[] = [];
  for (let i = 0; i < fields.length; i++) {
    const header = fields[i]!.replace(/^\n+/, '');
    if (!header.startsWith(':')) continue;
    const [, newMode = '', , newOid = '', status = ''] = header.slice(1).split(' ');
    const path = fields[++i] ?? '';
    if (!ZERO.test(newOid) && status !== 'D') out.push({ status, newMode, newOid, path });
  }
  return out;
}
