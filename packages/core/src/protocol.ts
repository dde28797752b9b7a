import * as z from 'zod/mini';
import { en } from 'zod/locales';

// zod/mini carries no messages of its own: the English ones, as the full zod has.
z.config({ ...en(), jitless: true });
import { isValidName } from './names.js';

/**
 * The task-directory protocol shared by gsync-ctl and gsync-node (v1).
 * `<work_root>/<project>/tasks/<task_id>/` holds these files; each is written
 * under a temp name and renamed into place.
 */
export const PROTOCOL_VERSION = 1;

/** The first entry of `gsync-node collect`'s tar: the report of every task asked about; `<task_id>.bundle` entries follow. */
export const COLLECT_REPORT = 'report.json';

export const FILES = {
  manifest: 'task.json',
  spec: 'spec.md',
  baseBundle: 'base.bundle',
  repo: 'repo',
  status: 'status.json',
  agentLog: 'agent.log',
  nodeLog: 'node.log',
  resultBundle: 'result.bundle',
  result: 'result.json',
  /** scp mode: the base's files as a tar (task dir), what the node extracted (task dir), and the changed files (result). */
  tree: 'tree.tar',
  baseFiles: 'base-files.json',
  resultTree: 'result.tar',
  /** Written by `gsync-node cancel`: the run stops its agent (or never starts it) and ends as failed, its work kept as in progress. */
  cancel: 'cancel.json',
} as const;

const name = z.string().check(z.refine(isValidName, 'is not a valid name'));
const sha1 = z.string().check(z.regex(/^[0-9a-f]{40}$/, 'is not a commit id'));
const sha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, 'is not a sha256'));
const fullRef = z.string().check(z.regex(/^refs\/heads\/[A-Za-z0-9._/-]+$/, 'is not a full branch ref'));

export const FileRef = z.object({
  name: z.string(),
  size: z.int().check(z.nonnegative()),
  sha256,
});
export type FileRef = z.infer<typeof FileRef>;

export const TaskManifest = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  project: name,
  task_id: name,
  node: name,
  branch: z.string().check(z.minLength(1)),
  base: z.object({ ref: fullRef, commit: sha1 }),
  /**
   * A conflict resolution: the node starts from `git merge` of this branch (carried in the
   * base bundle) into the base, and the agent resolves what conflicts.
   */
  merge: z.optional(z.object({ ref: fullRef, commit: sha1 })),
  /**
   * The code: a bundle of the base (and the merged branch) minus what the node's object
   * cache already holds. Absent when the cache holds all of it already.
   */
  bundle: z.optional(FileRef),
  /**
   * Plan A (sync_mode "git"): the code waits on a shared remote, on this branch at the
   * base commit. With no bundle, the node fetches it from there; either way it pushes the
   * task branch back there when the agent is done (result.json says whether that worked).
   */
  remote: z.optional(
    z.object({
      url: z.string().check(z.minLength(1)),
      branch: fullRef,
      /** The environment variable that holds the remote's token on the node, if it takes one (HTTPS). */
      token_env: z.optional(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/))),
    }),
  ),
  /**
   * The scp mode (sync_mode "scp", or a node without git): the code as plain files, a
   * tar of the base's tree. For a resolution, the tree is the merge with conflict
   * markers in `conflicted`. The node needs no git: it sends back the files the agent changed.
   */
  tree: z.optional(z.object({ file: FileRef, conflicted: z.optional(z.array(z.string())) })),
  spec: z.object({ name: z.literal(FILES.spec), sha256, title: z.string() }),
  agent: z.object({
    argv: z.array(z.string()).check(z.minLength(1)),
    timeout_seconds: z.number().check(z.positive()),
    kill_grace_seconds: z._default(z.number().check(z.nonnegative()), 5),
  }),
  /** What the node must never commit (added to the built-in secret rules). */
  policy: z.optional(
    z.object({
      deny_paths: z.optional(z.array(z.string())),
      allow_paths: z.optional(z.array(z.string())),
      deny_patterns: z.optional(z.array(z.string())),
    }),
  ),
  created_at: z.string(),
});
export type TaskManifest = z.infer<typeof TaskManifest>;

export const RUNNING_STATES = ['queued', 'received', 'preparing', 'running', 'committing', 'bundling'] as const;
export const FINAL_STATES = ['done', 'empty', 'failed', 'timeout'] as const;
export const NodeState = z.enum([...RUNNING_STATES, ...FINAL_STATES]);
export type NodeState = z.infer<typeof NodeState>;

export const TaskStatus = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  state: NodeState,
  updated_at: z.string(),
  started_at: z.optional(z.string()),
  finished_at: z.optional(z.string()),
  pid: z.optional(z.int()),
  agent_pid: z.optional(z.int()),
  agent_exit_code: z.optional(z.nullable(z.int())),
  error: z.optional(z.string()),
  /** Files the node refused to commit as secrets (also in result.json, which an empty task has not). */
  withheld: z.optional(z.array(z.object({ path: z.string(), rule: z.string() }))),
  history: z.array(z.object({ state: NodeState, at: z.string() })),
});
export type TaskStatus = z.infer<typeof TaskStatus>;

export const TaskResult = z.object({
  protocol: z.literal(PROTOCOL_VERSION),
  project: name,
  task_id: name,
  node: name,
  branch: z.string(),
  base: sha1,
  /** The task branch's commit; absent in the scp mode, where the controller makes the commit from `files`. */
  head: z.optional(sha1),
  commits: z.int().check(z.nonnegative()),
  changed_paths: z.array(z.string()),
  /** The task branch minus the base (and the merged branch); absent in the scp mode. */
  bundle: z.optional(FileRef),
  /**
   * The scp mode: the changed files under their full paths in a tar (`file`), and the
   * paths the agent deleted. Together they are exactly `changed_paths`.
   */
  files: z.optional(z.object({ file: FileRef, deleted: z.array(z.string()) })),
  /** Work in progress of an agent that failed or timed out: reported, never merged. */
  wip: z.boolean(),
  agent_exit_code: z.nullable(z.int()),
  /** Files the agent wrote that the node refused to commit (secrets); they stay on the node. */
  withheld: z.optional(z.array(z.object({ path: z.string(), rule: z.string() }))),
  /** Plan A: whether the task branch reached the shared remote (result.bundle is there either way). */
  remote: z.optional(z.object({ pushed: z.boolean(), error: z.optional(z.string()) })),
  finished_at: z.string(),
});
export type TaskResult = z.infer<typeof TaskResult>;

/** A path as git would store it in a tree: relative, `/`-separated, no empty, `.`, `..` or `.git` component. */
export function safeTreePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.includes('\0')) return false;
  return path.split('/').every((c) => c !== '' && c !== '.' && c !== '..' && gitDotfile(c) !== '.git');
}

/** Code points HFS+ ignores in a name, so that `.git\u200c` is `.git` there. */
const HFS_IGNORED = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/**
 * Which of git's own names a path component is on some file system git protects, as
 * git's fsck reads it (hasDotgit, hasDotgitmodules): `.git` or `.gitmodules` in any case,
 * with the code points HFS+ ignores anywhere, NTFS's trailing dots and spaces or an
 * alternate stream (`.git::$INDEX_ALLOCATION`), after a backslash, or as the 8.3 short
 * name (`GIT~1`, `GITMOD~1`, `GI7EBA~1`). Undefined for any other name.
 */
export function gitDotfile(component: string): '.git' | '.gitmodules' | undefined {
  for (const piece of component.split('\\')) {
    const name = piece
      .replace(HFS_IGNORED, '')
      .toLowerCase()
      .replace(/:.*$/s, '')
      .replace(/[. ]+$/, '');
    if (name === '.git' || name === 'git~1') return '.git';
    if (name === '.gitmodules' || /^(gitmod|gi7eba)~[1-9][0-9]*$/.test(name)) return '.gitmodules';
  }
  return undefined;
}

/** The file a finished result travels in: its bundle, or in the scp mode its tar of files. Undefined for a result that has neither (refused). */
export function resultFile(result: TaskResult): FileRef | undefined {
  if (result.bundle && result.head && !result.files) return result.bundle;
  if (result.files && !result.bundle) return result.files.file;
  return undefined;
}

/** What `gsync-node report` prints for each task dir asked about. */
export const TaskReport = z.object({
  task_id: z.string(),
  exists: z.boolean(),
  status: z.nullable(TaskStatus),
  result: z.nullable(TaskResult),
  error: z.optional(z.string()),
  /** A queued task's place in the node's queue (1 is next), over every project and controller using the node. */
  position: z.optional(z.int().check(z.positive())),
});
export type TaskReport = z.infer<typeof TaskReport>;

export function isFinal(state: NodeState): boolean {
  return (FINAL_STATES as readonly string[]).includes(state);
}

/** One line from a zod failure: the first issue, with its path. */
export function describeZodError(error: z.core.$ZodError): { path: string; message: string } {
  const issue = error.issues[0];
  if (!issue) return { path: '', message: 'is invalid' };
  return { path: issue.path.map(String).join('.'), message: issue.message };
}
