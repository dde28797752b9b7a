import {
  MAX_SCAN_BYTES,
  contentFindings,
  describeFindings,
  git,
  gitDotfile,
  gitOps,
  newFindings,
  scanFile,
  type SecretFinding,
  type SecretPolicy,
} from '@gsync/core';
import { TooManyPaths, ZERO, countChangedPaths, historyChanges, listChanges, type Change } from './changes.js';
import { ObjectReader, blobSizes, readBlobs } from './object-reader.js';
import { linkEscapes } from './symlinks.js';

/** What one result may carry at most (nodes.json's max_blob_bytes, max_result_paths, max_result_commits). */
export interface ResultLimits {
  maxBlobBytes: number;
  maxPaths: number;
  maxCommits: number;
}

export interface InspectRequest {
  repo: string;
  /** Makes git see the quarantined objects (see quarantine.ts). */
  env: Record<string, string>;
  base: string;
  head: string;
  /** For a resolution: the conflicted task's head, already checked when it was collected. */
  mergeHead?: string | undefined;
  limits: ResultLimits;
  policy: SecretPolicy;
}

/** No real symlink target is longer than a path can be. */
const MAX_LINK_BYTES = 4096;
const BATCH_BYTES = 64 * 1024 * 1024;
const q = (path: string) => JSON.stringify(path);
const tooManyPaths = (limits: ResultLimits) =>
  `the result changes more than ${limits.maxPaths} paths (max_result_paths): refused unexpanded, as a tree bomb would be`;

/**
 * What is wrong with a quarantined result's history and content, or undefined:
 * the head is a commit descending from the base; not too many commits or paths; no
 * `.git` component, submodule, `.gitmodules` change, escaping symlink, oversized
 * blob, or secret (by path or by content, the value never repeated). Each check
 * runs only once the cheaper ones before it have passed.
 */
export async function inspectChanges(req: InspectRequest): Promise<string | undefined> {
  const exclude = [req.base, ...(req.mergeHead ? [req.mergeHead] : [])].map((c) => `^${c}`);
  const history = await historyProblem(req, exclude);
  if (history) return history;
  if (!(await pathCountFits(req))) return tooManyPaths(req.limits);
  const changes = await listChanges(req.repo, req.env, req.base, req.head, req.limits.maxPaths);
  if (changes === 'too many') return tooManyPaths(req.limits);
  const added = changes.filter((c) => !ZERO.test(c.newOid));
  const paths = pathProblem(changes, added);
  if (paths) return paths;
  // Every file any commit of the result adds counts, not only the final tree: a secret
  // committed and deleted again would still sit in main's history.
  const historic = await historyChanges(req.repo, req.env, req.head, exclude);
  const everything = [...added, ...historic.filter((h) => !added.some((a) => a.newOid === h.newOid && a.path === h.path))];
  const sizes = await blobSizes(
    req.repo,
    req.env,
    everything.map((c) => c.newOid),
  );
  return sizeProblem(everything, sizes, req.limits) ?? (await symlinkProblem(req, added, sizes)) ?? (await secretProblem(req, everything, sizes, exclude));
}

/** The head is a commit that descends from the base (and, for a resolution, carries the conflicted head); not too many commits. */
async function historyProblem({ repo, env, base, head, mergeHead, limits }: InspectRequest, exclude: readonly string[]): Promise<string | undefined> {
  const type = (await git(repo, ['cat-file', '-t', head], { env, okExitCodes: [128] })).stdout.trim();
  if (type !== 'commit') return `the result's head ${head} is ${type ? `a ${type}` : 'missing'}, not a commit`;
  const ancestor = await git(repo, ['merge-base', '--is-ancestor', base, head], { env, okExitCodes: [1] });
  if (ancestor.exitCode !== 0) return 'the result does not descend from the dispatched base';
  if (mergeHead) {
    // A resolution must carry the conflicted task's work, not drop it (e.g. after `git merge --abort`).
    const carried = await git(repo, ['merge-base', '--is-ancestor', mergeHead, head], { env, okExitCodes: [1] });
    if (carried.exitCode !== 0) return `the resolution does not contain the conflicted task's head ${mergeHead}: its work would be lost`;
  }
  const commits = Number((await git(repo, ['rev-list', '--count', head, ...exclude], { env })).stdout.trim());
  if (commits > limits.maxCommits) return `the result has ${commits} commits, over the limit of ${limits.maxCommits} (max_result_commits)`;
  return undefined;
}

/** Counted tree by tree before anything lists the paths, so a tree bomb is refused unexpanded. */
async function pathCountFits({ repo, env, base, head, limits }: InspectRequest): Promise<boolean> {
  const reader = new ObjectReader(repo, env);
  try {
    await countChangedPaths(reader, base, head, limits.maxPaths);
    return true;
  } catch (error) {
    if (error instanceof TooManyPaths) return false;
    throw error;
  } finally {
    reader.close();
  }
}

function badComponent(path: string): string | undefined {
  return path.split('/').find((segment) => gitDotfile(segment) === '.git' || segment === '..' || segment === '.' || segment === '');
}

/** No `.git` (or a name a file system reads as it), `..` or empty component; no submodule settings or gitlinks. */
function pathProblem(changes: readonly Change[], added: readonly Change[]): string | undefined {
  for (const c of changes) {
    const bad = badComponent(c.path);
    if (bad !== undefined) return `the result has a path with a forbidden component ${q(bad)}: ${q(c.path)}`;
    if (gitDotfile(c.path.split('/').at(-1)!) === '.gitmodules') return `the result changes ${q(c.path)}: submodule settings are not accepted from a node`;
  }
  const gitlink = added.find((c) => c.newMode === '160000');
  return gitlink ? `the result adds a submodule (gitlink) at ${q(gitlink.path)}: not accepted from a node` : undefined;
}

function sizeProblem(everything: readonly Change[], sizes: Map<string, number>, limits: ResultLimits): string | undefined {
  for (const c of everything) {
    const size = sizes.get(c.newOid) ?? 0;
    if (c.newMode !== '160000' && size > limits.maxBlobBytes)
      return `${q(c.path)} is ${size} bytes, over the ${limits.maxBlobBytes}-byte limit for one file (max_blob_bytes)`;
  }
  return undefined;
}

/**
 * A symlink of the result that leads outside the repository or into .git, through any
 * chain of the result's and main's other links: every symlink of the head tree is
 * resolved as a checkout would follow it, once the result adds or changes one.
 */
async function symlinkProblem({ repo, env, head }: InspectRequest, added: readonly Change[], sizes: Map<string, number>): Promise<string | undefined> {
  if (!added.some((c) => c.newMode === '120000')) return undefined;
  for (const c of added) {
    if (c.newMode === '120000' && (sizes.get(c.newOid) ?? 0) > MAX_LINK_BYTES)
      return `${q(c.path)} is a symlink with a ${sizes.get(c.newOid)}-byte target: not a path`;
  }
  const listed = await git(repo, ['ls-tree', '-r', '-z', '--full-tree', head], { env });
  const entries = listed.stdout
    .split('\0')
    .filter((record) => record.startsWith('120000 '))
    .map((record) => {
      const [meta, path] = [record.slice(0, record.indexOf('\t')), record.slice(record.indexOf('\t') + 1)];
      return { path, oid: meta.split(' ')[2]! };
    });
  const targets = await readBlobs(repo, env, [...new Set(entries.map((e) => e.oid))]);
  const links = new Map(entries.map((e) => [e.path, targets.get(e.oid)?.toString('utf8') ?? '']));
  const escaping = entries.find((e) => linkEscapes(links, e.path));
  return escaping ? `${q(escaping.path)} is a symlink leading outside the repository (or into .git), through the links of the result and main` : undefined;
}

/** Secrets by path or content in every file any commit adds, and in every commit message. */
async function secretProblem(
  { repo, env, head, base, mergeHead, policy }: InspectRequest,
  everything: readonly Change[],
  sizes: Map<string, number>,
  exclude: readonly string[],
): Promise<string | undefined> {
  const findings: SecretFinding[] = [];
  const scannable = everything.filter((c) => c.newMode !== '120000' && c.newMode !== '160000' && (sizes.get(c.newOid) ?? 0) <= MAX_SCAN_BYTES);
  for (let i = 0; i < scannable.length; ) {
    const batch: Change[] = [];
    let bytes = 0;
    while (i < scannable.length && (batch.length === 0 || bytes < BATCH_BYTES)) {
      bytes += sizes.get(scannable[i]!.newOid) ?? 0;
      batch.push(scannable[i++]!);
    }
    const blobs = await readBlobs(repo, env, [...new Set(batch.map((c) => c.newOid))]);
    for (const c of batch) {
      const found = scanFile(c.path, blobs.get(c.newOid), policy);
      if (found.length === 0) continue;
      // What main (or, in a resolution, the conflicted branch) already had in this file is not new.
      const before = await Promise.all([base, ...(mergeHead ? [mergeHead] : [])].map((rev) => gitOps.readBlob(repo, rev, c.path)));
      findings.push(...newFindings(found, blobs.get(c.newOid), before, policy));
    }
  }
  for (const c of everything.filter((c) => (sizes.get(c.newOid) ?? 0) > MAX_SCAN_BYTES)) findings.push(...scanFile(c.path, undefined, policy));
  const messages = (await git(repo, ['log', '--format=%H%n%B%x00', head, ...exclude], { env })).stdout.split('\0');
  for (const m of messages) {
    const body = m.trimStart();
    const nl = body.indexOf('\n');
    if (nl < 0) continue;
    findings.push(...contentFindings(`commit ${body.slice(0, 12)} message`, Buffer.from(body.slice(nl + 1)), policy));
  }
  return findings.length > 0 ? `the result carries ${describeFindings(findings)}` : undefined;
}
