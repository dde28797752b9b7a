import { existsSync } from 'node:fs';
import { fastForwardCheckout, gitOps } from '@gsync/core';

export type MergeOutcome =
  | { kind: 'merged'; commit: string; already: boolean; edits?: EditsDuringMerge }
  | { kind: 'conflicted'; paths: string[]; messages: string[] }
  | { kind: 'blocked'; reason: string };

/** Saves the user made while the checkout was being updated: kept in the checkout, or old files kept aside. */
export interface EditsDuringMerge {
  kept: string[];
  aside: { path: string; saved: string }[];
}

export interface MergeRequest {
  repo: string;
  mainRef: string;
  head: string;
  message: string;
  env: Record<string, string> | undefined;
}

export type MergePlan =
  | { kind: 'already'; commit: string }
  | { kind: 'conflicted'; paths: string[]; messages: string[]; tree: string; main: string }
  | { kind: 'ready'; commit: string; main: string }
  | { kind: 'blocked'; reason: string };

/**
 * The merge of `head` into main as `--no-ff` would make it, as a commit that no
 * branch points to yet: merge-tree, then commit-tree. Nothing moves.
 */
export async function planMerge(req: MergeRequest): Promise<MergePlan> {
  const main = await gitOps.resolveCommit(req.repo, req.mainRef);
  if (!main) return { kind: 'blocked', reason: `${req.mainRef} does not exist` };
  if (await gitOps.isAncestor(req.repo, req.head, main)) return { kind: 'already', commit: main };
  const merged = await gitOps.mergeTree(req.repo, main, req.head);
  if (!merged.clean) return { kind: 'conflicted', paths: merged.conflicts, messages: merged.messages, tree: merged.tree, main };
  const commit = await gitOps.commitTree(req.repo, merged.tree, [main, req.head], req.message, req.env);
  return { kind: 'ready', commit, main };
}

/**
 * Moves main from `main` to `commit`, never touching uncommitted work: by
 * compare-and-swap (update-ref NEW OLD), or by `merge --ff-only` in the worktree
 * that has main checked out, which refuses rather than overwrite local changes.
 */
export async function advanceMain(repo: string, mainRef: string, main: string, commit: string, asideDir: string): Promise<MergeOutcome> {
  // A worktree whose folder is gone (prunable) checks nothing out; one rebasing, bisecting or
  // merging main keeps it busy, though its HEAD may be detached: main does not move under it.
  const worktrees = (await gitOps.listWorktrees(repo)).filter((w) => !w.bare && existsSync(w.path));
  for (const w of worktrees) {
    const busy = await gitOps.operationInProgress(w.path, mainRef).catch(() => undefined);
    if (busy)
      return {
        kind: 'blocked',
        reason: `waiting: ${mainRef.replace(/^refs\/heads\//, '')} is in the middle of ${busy} in ${w.path}; finish or abort it, then run again`,
      };
  }
  const checkout = worktrees.find((w) => w.branch === mainRef);
  if (!checkout) {
    if ((await gitOps.resolveCommit(repo, mainRef)) !== main) return { kind: 'blocked', reason: 'main moved while merging; run again' };
    await gitOps.updateRef(repo, mainRef, commit, main, 'gsync: merge');
    return { kind: 'merged', commit, already: false };
  }
  if ((await gitOps.resolveCommit(repo, mainRef)) !== main) return { kind: 'blocked', reason: 'main moved while merging; run again' };
  // File by file, so that a save made while the checkout moves is never overwritten (see core's checkout.ts).
  const r = await fastForwardCheckout(checkout.path, mainRef, main, commit, asideDir, 'gsync: merge');
  if (r.kind === 'refused') {
    if ((await gitOps.resolveCommit(repo, mainRef)) !== main) return { kind: 'blocked', reason: 'main moved while merging; run again' };
    const what = r.paths.length > 0 ? `uncommitted changes to ${r.paths.join(', ')}` : r.message;
    return { kind: 'blocked', reason: `waiting: the merge would touch ${what} in ${checkout.path}; commit or stash them, then run again` };
  }
  const edits = r.kept.length + r.aside.length > 0 ? { kept: r.kept, aside: r.aside } : undefined;
  return { kind: 'merged', commit, already: false, ...(edits ? { edits } : {}) };
}

/** The user's identity when git has one, else a neutral one for gsync's merge commits. */
export async function mergeIdentity(repo: string): Promise<Record<string, string> | undefined> {
  if (await gitOps.hasIdentity(repo)) return undefined;
  const name = 'gsync';
  const email = 'gsync@localhost';
  return { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email };
}
