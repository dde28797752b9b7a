import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import type * as z from 'zod/mini';
import { ConfigError, compilePolicy, describeZodError, isValidName } from '@gsync/core';
import { GitConfig, NAME_RULE, NodeEntry, NodesFile, ProjectEntry, ProjectsFile, type Config, type ProjectConfig, type SecretsConfig } from './schema.js';

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

async function readConfigFile(file: string, given: string | undefined): Promise<unknown> {
  if (given !== undefined) return parseJsonc(file, given);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(file, '', code === 'ENOENT' ? 'file not found' : `cannot read: ${code}`, {
      hint: 'create it with gsync-ctl init (see the README), or point --config-dir / GSYNC_HOME at the folder that has it',
      cause: error,
    });
  }
  return parseJsonc(file, text);
}

function fieldPath(prefix: string, path: string): string {
  return [prefix, path]
    .filter(Boolean)
    .join('.')
    .replace(/\.(\d+)(?=\.|$)/g, '[$1]');
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
  /** A file's text to load instead of what is on disk: an edit is checked before it is written. */
  texts?: { nodes?: string; projects?: string };
}

export async function loadConfig({ dir, home, texts = {} }: LoadOptions): Promise<Config> {
  const nodesFile = join(dir, 'nodes.json');
  const projectsFile = join(dir, 'projects.json');
  const warnings: string[] = [];

  const rawNodes = await readConfigFile(nodesFile, texts.nodes);
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
  for (const key of unknownKeys(rawNodes, Object.keys(NodesFile.shape))) if (key !== 'git_mode') warnings.push(`${nodesFile}: ${key}: unknown field, ignored`);

  checkPolicy(nodesData.secrets, nodesFile, 'secrets');
  for (const key of unknownKeys((rawNodes as Record<string, unknown>).git_config, Object.keys(GitConfig.shape))) {
    warnings.push(`${nodesFile}: git_config.${key}: unknown field, ignored`);
  }

  const rawProjects = await readConfigFile(projectsFile, texts.projects);
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
    const syncMode = p.sync_mode ?? nodesData.git_config.default_sync_mode;
    const org = nodesData.git_config.github_org;
    const repoUrl = p.repo_url ?? (syncMode === 'git' && org ? `git@github.com:${org}/${projectName}.git` : undefined);
    if (repoUrl && /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(repoUrl) && /^(https?|ftps?):/i.test(repoUrl))
      throw new ConfigError(
        projectsFile,
        `${projectName}.repo_url`,
        'a remote URL must not carry credentials (they would end up in logs, the store and every git config); reach the remote over SSH with a deploy key on each node, or through a git credential helper',
      );
    if (syncMode === 'git' && !repoUrl)
      throw new ConfigError(projectsFile, `${projectName}.repo_url`, 'sync_mode "git" needs the shared remote: set repo_url, or git_config.github_org');
    projects.set(projectName, {
      ...p,
      ...(repoUrl ? { repo_url: repoUrl } : {}),
      ...(nodesData.github_token_env ? { token_env: nodesData.github_token_env } : {}),
      name: projectName,
      repo_local: expandUserPath(p.repo_local, home, dir),
      verify_readonly_paths: p.verify_readonly_paths.map((path) => expandUserPath(path, home, dir)),
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
    retentionDays: nodesData.retention_days,
    alertCommand: nodesData.alert_command,
    transferRetries: nodesData.transfer_retries,
    warnings,
  };
}
