import * as z from 'zod/mini';
import { isValidName } from '@gsync/core';

/**
 * nodes.json and projects.json. Both are JSON with comments allowed, and an
 * elided array `[...]` (as in the seed's own examples) reads as empty.
 * Written with zod/mini: only what is used is loaded, so `status` starts quickly.
 */
const name = z.string().check(z.refine(isValidName, 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)'));

const argv = z.array(z.string()).check(z.minLength(1, 'must name a command'));
const text = z.string().check(z.minLength(1));
const positive = z.number().check(z.positive());
const count = z.int().check(z.positive());
const agentRef = z.union([argv, text]);

export const NodeEntry = z.object({
  name,
  transport: z._default(z.enum(['ssh', 'local']), 'ssh'),
  host: z.optional(text),
  port: z.optional(z.int().check(z.minimum(1), z.maximum(65535))),
  user: z.optional(text),
  identity_file: z.optional(text),
  known_hosts: z.optional(text),
  work_root: z._default(text, '~/dispatch'),
  /** For `local` nodes: the folder that plays the node user's home. */
  home: z.optional(text),
  node_bin: z._default(text, 'node'),
  agent: z.optional(agentRef),
  agent_timeout_seconds: z.optional(positive),
  max_parallel: z._default(count, 4),
  connect_timeout_seconds: z._default(positive, 20),
  /** Seconds between SSH keepalives; three unanswered ones end a stalled connection. */
  keepalive_seconds: z._default(positive, 15),
  /** A command on the node that sends nothing for this long is ended (a node indexing a huge bundle is silent for a while). */
  answer_timeout_seconds: z._default(positive, 300),
  /** A task whose node has not answered for this long is marked stale (default: nodes.json's). */
  stale_after_seconds: z.optional(positive),
});

export const GitConfig = z.object({
  default_sync_mode: z._default(z.enum(['bundle', 'git', 'scp']), 'bundle'),
  github_org: z.optional(z.string()),
  branch_prefix: z._default(z.string().check(z.regex(/^[A-Za-z0-9._-]+\/$/, 'must be a path segment ending in "/", like "task/"')), 'task/'),
  auto_cleanup_branches: z._default(z.boolean(), false),
  conflict_handler: z.optional(z.string()),
});

/** What must never travel in a result (see the README's secrets section); lists add to the defaults. */
export const SecretsConfig = z.object({
  deny_paths: z._default(z.array(text), []),
  allow_paths: z._default(z.array(text), []),
  deny_patterns: z._default(z.array(text), []),
});

export const NodesFile = z.object({
  nodes: z.array(NodeEntry),
  git_config: z._default(GitConfig, () => z.parse(GitConfig, {})),
  agents: z._default(z.record(z.string(), argv), {}),
  ssh_config: z.optional(z.string()),
  agent_timeout_seconds: z._default(positive, 3600),
  max_result_bytes: z._default(count, 2 * 1024 ** 3),
  max_blob_bytes: z._default(count, 100 * 1024 ** 2),
  max_result_paths: z._default(count, 100_000),
  max_result_commits: z._default(count, 10_000),
  stale_after_seconds: z._default(positive, 6 * 3600),
  /** Events older than this many days are dropped by cleanup (the store's records of tasks stay). */
  retention_days: z._default(positive, 30),
  /** Run (argv, no shell) with each alert as JSON on stdin: a downgrade from the shared remote. */
  alert_command: z.optional(argv),
  /**
   * Plan A over HTTPS: the name of the environment variable that holds the remote's token,
   * on the controller and on each node (its value never leaves the machine it is on).
   */
  github_token_env: z.optional(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name, like "GITHUB_TOKEN"'))),
  /** How many times a cut or stalled transfer is tried again (with backoff) within one run. */
  transfer_retries: z._default(z.int().check(z.nonnegative()), 3),
  secrets: z._default(SecretsConfig, () => z.parse(SecretsConfig, {})),
});

export const ProjectEntry = z.object({
  repo_url: z.optional(z.string()),
  repo_local: text,
  sync_mode: z.optional(z.enum(['bundle', 'git', 'scp'])),
  main_branch: z._default(z.string().check(z.regex(/^(?!refs\/)[A-Za-z0-9._/-]+$/, 'must be a branch name like "main"')), 'main'),
  agent: z.optional(agentRef),
  agent_timeout_seconds: z.optional(positive),
  /** The test gate: run in a throw-away checkout of each merge before main moves. */
  verify_command: z.optional(argv),
  verify_timeout_seconds: z._default(positive, 1800),
  /** How the test gate is confined: "sandbox" (bubblewrap; refused where it cannot run) or "none" (opt-in, unconfined). */
  verify_isolation: z._default(z.enum(['sandbox', 'none']), 'sandbox'),
  /** Paths the sandboxed test gate may read (toolchains under the home dir, a shared test suite). */
  verify_readonly_paths: z._default(z.array(text), []),
  /** Agent (profile name or argv) that resolves conflicts; overrides git_config.conflict_handler. */
  conflict_handler: z.optional(agentRef),
  /** Added to nodes.json's "secrets" for this project. */
  secrets: z.optional(SecretsConfig),
});

export const ProjectsFile = z.record(z.string(), ProjectEntry);
export const NAME_RULE = 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)';

export type NodeConfig = z.infer<typeof NodeEntry>;
export type ProjectConfig = z.infer<typeof ProjectEntry> & {
  name: string;
  sync_mode: 'bundle' | 'git' | 'scp';
  /** nodes.json's github_token_env: the variable holding the shared remote's token, here and on the nodes. */
  token_env?: string;
};
export type GitSettings = z.infer<typeof GitConfig>;

export interface Config {
  dir: string;
  nodesFile: string;
  projectsFile: string;
  nodes: NodeConfig[];
  projects: Map<string, ProjectConfig>;
  git: GitSettings;
  agents: Record<string, string[]>;
  sshConfig: string | undefined;
  agentTimeoutSeconds: number;
  maxResultBytes: number;
  limits: { maxBlobBytes: number; maxPaths: number; maxCommits: number };
  staleAfterSeconds: number;
  retentionDays: number;
  alertCommand: string[] | undefined;
  transferRetries: number;
  secrets: z.infer<typeof SecretsConfig>;
  warnings: string[];
}
