import { stat } from 'node:fs/promises';
import { UsageError, gitOps } from '@gsync/core';
import type { ProjectConfig } from './config.js';

/** The project's repository exists and its main branch has a commit; returns that commit. */
export async function checkRepo(project: ProjectConfig, baseRef: string): Promise<string> {
  const exists = await stat(project.repo_local).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) throw new UsageError(`project ${project.name}: repo_local ${project.repo_local} does not exist`);
  const commit = await gitOps.resolveCommit(project.repo_local, baseRef).catch(() => undefined);
  if (!commit) {
    throw new UsageError(`project ${project.name}: ${project.repo_local} has no branch ${project.main_branch} (or is not a git repository)`, {
      hint: 'check repo_local and main_branch in projects.json',
    });
  }
  return commit;
}
