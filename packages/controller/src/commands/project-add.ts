import { UsageError, checkName, gitOps } from '@gsync/core';
import { agentProfile } from '../config/lookup.js';
import { checkEntry, editConfigFile, given, typedPath } from '../config/save.js';
import { appendToObject, replaceValue } from '../config/edit.js';
import { ProjectEntry } from '../config/schema.js';
import type { Context } from '../context.js';
import { isDirectory } from '../is-directory.js';

export interface ProjectAddOptions {
  name: string;
  repo: string;
  mainBranch?: string;
  syncMode?: string;
  repoUrl?: string;
  agent?: string;
  /** Replace a project of the same name. */
  force: boolean;
  /** Where a relative --repo was typed. */
  cwd: string;
}

export interface ProjectAddResult {
  file: string;
  project: string;
  action: 'added' | 'replaced';
  entry: Record<string, unknown>;
  /** Said, not refused: a repository may be cloned after its project is added. */
  warnings: string[];
}

/** Why the repository is not usable yet, if it is not: missing, not a folder, or not a git repository. */
async function repoProblem(repo: string): Promise<string | undefined> {
  const isDir = await isDirectory(repo);
  if (!isDir) return `${repo} does not exist yet (or is not a folder): dispatch needs the project's git repository there`;
  const r = await gitOps.git(repo, ['rev-parse', '--git-dir'], { okExitCodes: [128] });
  return r.exitCode === 0 ? undefined : `${repo} is not a git repository yet: dispatch needs one there (git init or clone it)`;
}

/** Adds a project to projects.json, keeping the file's comments and layout. */
export async function projectAdd(ctx: Context, options: ProjectAddOptions): Promise<ProjectAddResult> {
  const name = checkName('project', options.name);
  const entry = given({
    repo_local: typedPath(options.repo, options.cwd),
    repo_url: options.repoUrl,
    sync_mode: options.syncMode,
    main_branch: options.mainBranch,
    agent: options.agent,
  });
  checkEntry(ProjectEntry, entry, 'project add');
  let action: ProjectAddResult['action'] = 'added';
  const file = await editConfigFile(
    { dir: ctx.configDir, home: ctx.home },
    'projects',
    (config, text) => {
      if (!config.projects.has(name)) return appendToObject(text, [], name, entry);
      if (!options.force) throw new UsageError(`project "${name}" is in ${config.projectsFile} already`, { hint: '--force replaces it' });
      action = 'replaced';
      return replaceValue(text, [name], entry);
    },
    (config) => {
      if (entry.agent !== undefined) agentProfile(config, entry.agent, '--agent');
    },
  );
  const problem = await repoProblem(entry.repo_local as string);
  return { file, project: name, action, entry, warnings: problem ? [problem] : [] };
}
