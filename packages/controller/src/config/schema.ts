import { z } from 'zod';
import { isValidName } from '@gsync/core';

/**
 * nodes.json and projects.json. Both are JSON with comments allowed, and an
 * elided array `[...]` (as in the seed's own examples) reads as empty.
 */
const name = z.string().refine(isValidName, 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)');

const argv = z.array(z.string()).min(1, 'must name a command');
const agentRef = z.union([argv, z.string().min(1)]);

export const NodeEntry = z.object({
  name,
  transport: z.enum(['ssh', 'local']).default('ssh'),
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().min(1).optional(),
  identity_file: z.string().min(1).optional(),
  known_hosts: z.string().min(1).optional(),
  work_root: z.string().min(1).default('~/dispatch'),
  /** For `local` nodes: the folder that plays the node user's home. */
  home: z.string().min(1).optional(),
  node_bin: z.string().min(1).default('node'),
  agent: agentRef.optional(),
  agent_timeout_seconds: z.number().positive().optional(),
  max_parallel: z.number().int().positive().default(4),
  connect_timeout_seconds: z.number().positive().default(20),
  /** Seconds between SSH keepalives; three unanswered ones end a stalled connection. */
  keepalive_seconds: z.number().positive().default(15),
  /** A task whose node has not answered for this long is marked stale (default: nodes.json's). */
  stale_after_seconds: z.number().positive().optional(),
});

export const GitConfig = z.object({
  default_sync_mode: z.enum(['bundle', 'git', 'scp']).default('bundle'),
  github_org: z.string().optional(),
  branch_prefix: z
    .string()
    .regex(/^[A-Za-z0-9._-]+\/$/, 'must be a path segment ending in "/", like "task/"')
    .default('task/'),
  auto_cleanup_branches: z.boolean().default(false),
  conflict_handler: z.string().optional(),
});

/** What must never travel in a result (see the README's secrets section); lists add to the defaults. */
export const SecretsConfig = z.object({
  deny_paths: z.array(z.string().min(1)).default([]),
  allow_paths: z.array(z.string().min(1)).default([]),
  deny_patterns: z.array(z.string().min(1)).default([]),
});

export const NodesFile = z.object({
  nodes: z.array(NodeEntry),
  git_config: GitConfig.default(GitConfig.parse({})),
  agents: z.record(z.string(), argv).default({}),
  ssh_config: z.string().optional(),
  agent_timeout_seconds: z.number().positive().default(3600),
  max_result_bytes: z
    .number()
    .int()
    .positive()
    .default(2 * 1024 ** 3),
  max_blob_bytes: z
    .number()
    .int()
    .positive()
    .default(100 * 1024 ** 2),
  max_result_paths: z.number().int().positive().default(100_000),
  max_result_commits: z.number().int().positive().default(10_000),
  stale_after_seconds: z
    .number()
    .positive()
    .default(6 * 3600),
  /** How many times a cut or stalled transfer is tried again (with backoff) within one run. */
  transfer_retries: z.number().int().nonnegative().default(3),
  secrets: SecretsConfig.default(SecretsConfig.parse({})),
});

export const ProjectEntry = z.object({
  repo_url: z.string().optional(),
  repo_local: z.string().min(1),
  sync_mode: z.enum(['bundle', 'git', 'scp']).optional(),
  main_branch: z
    .string()
    .regex(/^(?!refs\/)[A-Za-z0-9._/-]+$/, 'must be a branch name like "main"')
    .default('main'),
  agent: agentRef.optional(),
  agent_timeout_seconds: z.number().positive().optional(),
  /** The test gate: run in a throw-away checkout of each merge before main moves. */
  verify_command: argv.optional(),
  verify_timeout_seconds: z.number().positive().default(1800),
  /** Agent (profile name or argv) that resolves conflicts; overrides git_config.conflict_handler. */
  conflict_handler: agentRef.optional(),
  /** Added to nodes.json's "secrets" for this project. */
  secrets: SecretsConfig.optional(),
});

export const ProjectsFile = z.record(z.string(), ProjectEntry);
export const NAME_RULE = 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)';

export type NodeConfig = z.infer<typeof NodeEntry>;
export type ProjectConfig = z.infer<typeof ProjectEntry> & { name: string; sync_mode: 'bundle' | 'git' | 'scp' };
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
  transferRetries: number;
  secrets: z.infer<typeof SecretsConfig>;
  warnings: string[];
}
