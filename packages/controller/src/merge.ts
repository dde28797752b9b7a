import { gitOps } from '@gsync/core';

export type MergeOutcome =
  | { kind: 'merged'; commit: string; already: boolean }
  | { kind: 'conflicted'; paths: string[]; messages: string[] }
  | { kind: 'blocked'; reason: string };

export interface MergeRequest {
  repo: string;
  mainRef: string;
  head: string;
  message: string;
  env: Record<string, string> | undefined;
}

/**
 * Merges `head` into the main branch as a `--no-ff` merge would, without ever
 * touching uncommitted work: the merge is computed with merge-tree, committed
 * with commit-tree, and main moves by compare-and-swap (update-ref NEW OLD),
 * or by `merge --ff-only` in the worktree that has main checked out, which
 * refuses rather than overwrite local changes.
 */
export async function mergeIntoMain(req: MergeRequest): Promise<MergeOutcome> {
  const main = await gitOps.resolveCommit(req.repo, req.mainRef);
  if (!main) return { kind: 'blocked', reason: `${req.mainRef} does not exist` };
  if (await gitOps.isAncestor(req.repo, req.head, main)) return { kind: 'merged', commit: main, already: true };
  const merged = await gitOps.mergeTree(req.repo, main, req.head);
  if (!merged.clean) return { kind: 'conflicted', paths: merged.conflicts, messages: merged.messages };
  const commit = await gitOps.commitTree(req.repo, merged.tree, [main, req.head], req.message, req.env);
  const checkout = (await gitOps.listWorktrees(req.repo)).find((w) => w.branch === req.mainRef);
  if (!checkout) {
    await gitOps.updateRef(req.repo, req.mainRef, commit, main, 'gsync: merge');
    return { kind: 'merged', commit, already: false };
  }
  const r = await gitOps.mergeFastForward(checkout.path, commit);
  if (r.exitCode !== 0) {
    if ((await gitOps.resolveCommit(req.repo, req.mainRef)) !== main) return { kind: 'blocked', reason: 'main moved while merging; run again' };
    const files = r.stderr.split('\n').filter((l) => l.startsWith('\t')).map((l) => l.trim());
    const what = files.length > 0 ? `uncommitted changes to ${files.join(', ')}` : r.stderr.trim().split('\n')[0] ?? 'the checkout refused';
    return { kind: 'blocked', reason: `waiting: the merge would touch ${what} in ${checkout.path}; commit or stash them, then run again` };
  }
  return { kind: 'merged', commit, already: false };
}

/** The user's identity when git has one, else a neutral one for gsync's merge commits. */
export async function mergeIdentity(repo: string): Promise<Record<string, string> | undefined> {
  if (await gitOps.hasIdentity(repo)) return undefined;
  const name = 'gsync';
  const email = 'gsync@localhost';
  return { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
}
