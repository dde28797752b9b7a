import { checkName, UsageError } from '@gsync/core';
import { agentProfile } from '../config/lookup.js';
import { checkEntry, editConfigFile, given, typedPath } from '../config/save.js';
import { appendToObject, replaceValue } from '../config/edit.js';
import { ProjectEntry } from '../config/schema.js';
import type { Context } from '../context.js';

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
  return { file, project: name, action, entry };
}
