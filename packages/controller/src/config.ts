import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { z } from 'zod';
import { BUILTIN_AGENT_PROFILES, ConfigError, compilePolicy, DEFAULT_AGENT_ARGV, UsageError, describeZodError, isValidName } from '@gsync/core';

/**
 * nodes.json and projects.json. Both are JSON with comments allowed, and an
 * elided array `[...]` (as in the seed's own examples) reads as empty.
 */
const name = z.string().refine(isValidName, 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)');

const argv = z.array(z.string()).min(1, 'must name a command');
const agentRef = z.union([argv, z.string().min(1)]);

const NodeEntry = z.object({
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

const GitConfig = z.object({
  default_sync_mode: z.enum(['bundle', 'git', 'scp']).default('bundle'),
  github_org: z.string().optional(),
  branch_prefix: z.string().regex(/^[A-Za-z0-9._-]+\/$/, 'must be a path segment ending in "/", like "task/"').default('task/'),
  auto_cleanup_branches: z.boolean().default(false),
  conflict_handler: z.string().optional(),
});

/** What must never travel in a result (see the README's secrets section); lists add to the defaults. */
const SecretsConfig = z.object({
  deny_paths: z.array(z.string().min(1)).default([]),
  allow_paths: z.array(z.string().min(1)).default([]),
  deny_patterns: z.array(z.string().min(1)).default([]),
});

const NodesFile = z.object({
  nodes: z.array(NodeEntry),
  git_config: GitConfig.default(GitConfig.parse({})),
  agents: z.record(z.string(), argv).default({}),
  ssh_config: z.string().optional(),
  agent_timeout_seconds: z.number().positive().default(3600),
  max_result_bytes: z.number().int().positive().default(2 * 1024 ** 3),
  max_blob_bytes: z.number().int().positive().default(100 * 1024 ** 2),
  max_result_paths: z.number().int().positive().default(100_000),
  max_result_commits: z.number().int().positive().default(10_000),
  stale_after_seconds: z.number().positive().default(6 * 3600),
  /** How many times a cut or stalled transfer is tried again (with backoff) within one run. */
  transfer_retries: z.number().int().nonnegative().default(3),
  secrets: SecretsConfig.default(SecretsConfig.parse({})),
});

const ProjectEntry = z.object({
  repo_url: z.string().optional(),
  repo_local: z.string().min(1),
  sync_mode: z.enum(['bundle', 'git', 'scp']).optional(),
  main_branch: z.string().regex(/^(?!refs\/)[A-Za-z0-9._/-]+$/, 'must be a branch name like "main"').default('main'),
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

const ProjectsFile = z.record(z.string(), ProjectEntry);
const NAME_RULE = 'must be letters, digits, ".", "_" or "-" (start and end with a letter or digit)';

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

/** Fields a node entry of the older dispatch tooling may carry; accepted and ignored. */
const LEGACY_NODE_FIELDS = new Set(['git_mode', 'github_token_env', 'ip', 'description', 'gpu', 'tags']);

function parseJsonc(file: string, text: string): unknown {
  const errors: ParseError[] = [];
  const value = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  const real = errors.filter((e) => text.slice(e.offset, e.offset + e.length) !== '...');
  const first = real[0];
  if (first) {
    const before = text.slice(0, first.offset);
    const line = before.split('\n').length;
    const column = first.offset - before.lastIndexOf('\n');
    throw new ConfigError(file, '', `invalid JSON at line ${line}, column ${column}: ${printParseErrorCode(first.error)}`);
  }
  return value;
}

async function readConfigFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(file, '', code === 'ENOENT' ? 'file not found' : `cannot read: ${code}`, {
      hint: 'create it (see the README) or point --config-dir / GSYNC_HOME at the folder that has it',
      cause: error,
    });
  }
  return parseJsonc(file, text);
}

function fieldPath(prefix: string, path: string): string {
  return [prefix, path].filter(Boolean).join('.').replace(/\.(\d+)(?=\.|$)/g, '[$1]');
}

function unknownKeys(raw: unknown, known: readonly string[]): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return [];
  return Object.keys(raw).filter((k) => !known.includes(k));
}

/** A secret policy that does not compile is bad config: named by file and field like every other. */
function checkPolicy(policy: z.infer<typeof SecretsConfig>, file: string, prefix: string): void {
  try {
    compilePolicy(policy, file);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(file, `${prefix}.${error.field}`, error.reason, { cause: error });
    throw error;
  }
}

export function expandUserPath(path: string, home: string, base: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return isAbsolute(path) ? path : resolve(base, path);
}

export interface LoadOptions {
  dir: string;
  home: string;
}

export async function loadConfig({ dir, home }: LoadOptions): Promise<Config> {
  const nodesFile = join(dir, 'nodes.json');
  const projectsFile = join(dir, 'projects.json');
  const warnings: string[] = [];

  const rawNodes = await readConfigFile(nodesFile);
  const nodesParsed = NodesFile.safeParse(rawNodes);
  if (!nodesParsed.success) {
    const { path, message } = describeZodError(nodesParsed.error);
    throw new ConfigError(nodesFile, fieldPath('', path), message);
  }
  const nodesData = nodesParsed.data;
  const seen = new Set<string>();
  nodesData.nodes.forEach((node, i) => {
    const where = `nodes[${i}]`;
    if (seen.has(node.name)) throw new ConfigError(nodesFile, `${where}.name`, `node "${node.name}" is defined twice`);
    seen.add(node.name);
    if (node.transport === 'ssh' && !node.host) throw new ConfigError(nodesFile, `${where}.host`, 'is required for an ssh node');
    for (const key of unknownKeys((rawNodes as { nodes: unknown[] }).nodes[i], Object.keys(NodeEntry.shape))) {
      if (!LEGACY_NODE_FIELDS.has(key)) warnings.push(`${nodesFile}: ${where}.${key}: unknown field, ignored`);
    }
    if (node.identity_file) node.identity_file = expandUserPath(node.identity_file, home, dir);
    if (node.known_hosts) node.known_hosts = expandUserPath(node.known_hosts, home, dir);
    if (node.transport === 'local') node.home = expandUserPath(node.home ?? join('nodes', node.name), home, dir);
  });
  for (const key of unknownKeys(rawNodes, Object.keys(NodesFile.shape))) warnings.push(`${nodesFile}: ${key}: unknown field, ignored`);

  checkPolicy(nodesData.secrets, nodesFile, 'secrets');
  for (const key of unknownKeys((rawNodes as Record<string, unknown>).git_config, Object.keys(GitConfig.shape))) {
    warnings.push(`${nodesFile}: git_config.${key}: unknown field, ignored`);
  }

  const rawProjects = await readConfigFile(projectsFile);
  if (rawProjects && typeof rawProjects === 'object' && !Array.isArray(rawProjects)) {
    for (const key of Object.keys(rawProjects)) {
      if (!isValidName(key)) throw new ConfigError(projectsFile, key, `a project name ${NAME_RULE}`);
    }
  }
  const projectsParsed = ProjectsFile.safeParse(rawProjects);
  if (!projectsParsed.success) {
    const { path, message } = describeZodError(projectsParsed.error);
    throw new ConfigError(projectsFile, fieldPath('', path), message);
  }
  const projects = new Map<string, ProjectConfig>();
  for (const [projectName, p] of Object.entries(projectsParsed.data)) {
    projects.set(projectName, {
      ...p,
      name: projectName,
      repo_local: expandUserPath(p.repo_local, home, dir),
      sync_mode: p.sync_mode ?? nodesData.git_config.default_sync_mode,
    });
    if (p.secrets) checkPolicy(p.secrets, projectsFile, `${projectName}.secrets`);
    for (const key of unknownKeys((rawProjects as Record<string, unknown>)[projectName], Object.keys(ProjectEntry.shape))) {
      warnings.push(`${projectsFile}: ${projectName}.${key}: unknown field, ignored`);
    }
  }

  return {
    dir,
    nodesFile,
    projectsFile,
    nodes: nodesData.nodes,
    projects,
    git: nodesData.git_config,
    agents: nodesData.agents,
    sshConfig: nodesData.ssh_config ? expandUserPath(nodesData.ssh_config, home, dir) : undefined,
    agentTimeoutSeconds: nodesData.agent_timeout_seconds,
    maxResultBytes: nodesData.max_result_bytes,
    limits: { maxBlobBytes: nodesData.max_blob_bytes, maxPaths: nodesData.max_result_paths, maxCommits: nodesData.max_result_commits },
    secrets: nodesData.secrets,
    staleAfterSeconds: nodesData.stale_after_seconds,
    transferRetries: nodesData.transfer_retries,
    warnings,
  };
}

export function getProject(config: Config, name: string): ProjectConfig {
  const project = config.projects.get(name);
  if (!project) {
    const known = [...config.projects.keys()].join(', ') || 'none';
    throw new UsageError(`unknown project "${name}" (projects in ${config.projectsFile}: ${known})`);
  }
  return project;
}

export function getNode(config: Config, name: string): NodeConfig {
  const node = config.nodes.find((n) => n.name === name);
  if (!node) {
    const known = config.nodes.map((n) => n.name).join(', ') || 'none';
    throw new UsageError(`unknown node "${name}" (nodes in ${config.nodesFile}: ${known})`);
  }
  return node;
}

/** The agent argv for a task: the project's, else the node's, else `claude -p {spec}`. */
export function resolveAgent(config: Config, project: ProjectConfig, node: NodeConfig): string[] {
  const ref = project.agent ?? node.agent;
  if (ref === undefined) return [...DEFAULT_AGENT_ARGV];
  const where = project.agent !== undefined ? `${config.projectsFile}: ${project.name}.agent` : `${config.nodesFile}: node ${node.name}.agent`;
  return agentProfile(config, ref, where);
}

/** An argv as written, or a profile by name: nodes.json "agents" first, then the built-in claude and codex. */
export function agentProfile(config: Config, ref: string | readonly string[], where: string): string[] {
  if (Array.isArray(ref)) return [...ref];
  const name = ref as string;
  const profile = config.agents[name] ?? BUILTIN_AGENT_PROFILES[name];
  if (!profile) {
    const known = [...new Set([...Object.keys(config.agents), ...Object.keys(BUILTIN_AGENT_PROFILES)])].join(', ');
    throw new UsageError(`${where}: no agent profile "${name}" (profiles: ${known}; add it to "agents" in ${config.nodesFile})`);
  }
  return [...profile];
}

/** The agent that resolves conflicts for a project, or undefined when none is named. */
export function conflictHandler(config: Config, project: ProjectConfig): string[] | undefined {
  if (project.conflict_handler !== undefined) return agentProfile(config, project.conflict_handler, `${config.projectsFile}: ${project.name}.conflict_handler`);
  if (config.git.conflict_handler !== undefined) return agentProfile(config, config.git.conflict_handler, `${config.nodesFile}: git_config.conflict_handler`);
  return undefined;
}

/** The secret policy of a project: nodes.json's lists plus the project's own. */
export function secretPolicy(config: Config, project: ProjectConfig): { deny_paths: string[]; allow_paths: string[]; deny_patterns: string[] } {
  const p = project.secrets;
  return {
    deny_paths: [...config.secrets.deny_paths, ...(p?.deny_paths ?? [])],
    allow_paths: [...config.secrets.allow_paths, ...(p?.allow_paths ?? [])],
    deny_patterns: [...config.secrets.deny_patterns, ...(p?.deny_patterns ?? [])],
  };
}
