import { BUILTIN_AGENT_PROFILES, DEFAULT_AGENT_ARGV, UsageError } from '@gsync/core';
import type { Config, NodeConfig, ProjectConfig } from './schema.js';

/** Finding what a command names in the loaded config, with one clear line when it is not there. */

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
