import { realpath } from 'node:fs/promises';
import { UsageError, gitOps } from '@gsync/core';
import type { ProjectConfig } from './config.js';
import { isDirectory } from './is-directory.js';

/** The project's repository exists and its main branch has a commit; returns that commit. */
export async function checkRepo(project: ProjectConfig, baseRef: string): Promise<string> {
  const exists = await isDirectory(project.repo_local);
  if (!exists) throw new UsageError(`project ${project.name}: repo_local ${project.repo_local} does not exist`);
  const commit = await gitOps.resolveCommit(project.repo_local, baseRef).catch(() => undefined);
  if (!commit) {
    throw new UsageError(`project ${project.name}: ${project.repo_local} has no branch ${project.main_branch} (or is not a git repository)`, {
      hint: 'check repo_local and main_branch in projects.json',
    });
  }
  return commit;
}

/**
 * What a node could not work with, refused at dispatch before anything is sent: a
 * repo_local that is a folder inside a repository (git would use the repository above), a
 * sha256 repository (bundles and nodes here speak sha1), a shallow clone (a node needs
 * main's whole history), and Git LFS (the agent would see pointer files, not content).
 */
export async function checkRepoShape(project: ProjectConfig, base: string): Promise<void> {
  const repo = project.repo_local;
  const where = `project ${project.name}: ${repo}`;
  const [bare, shallow, format] = (await gitOps.git(repo, ['rev-parse', '--is-bare-repository', '--is-shallow-repository', '--show-object-format'])).stdout
    .trim()
    .split('\n');
  if (bare !== 'true') {
    const top = (await gitOps.git(repo, ['rev-parse', '--show-toplevel'])).stdout.trim();
    if ((await realpath(top)) !== (await realpath(repo))) {
      throw new UsageError(`${where} is a folder inside the repository ${top}, not the repository itself`, { hint: `set repo_local to ${top}` });
    }
  }
  if (format !== 'sha1') throw new UsageError(`${where} uses ${format} object ids; gsync and its nodes work with sha1 repositories only`);
  if (shallow === 'true') {
    throw new UsageError(`${where} is a shallow clone; a node needs the whole history of ${project.main_branch}`, { hint: 'run git fetch --unshallow there' });
  }
  const lfs = await gitOps.git(repo, ['grep', '-l', '-e', 'filter=lfs', base, '--', ':(glob)**/.gitattributes'], { okExitCodes: [1] });
  if (lfs.exitCode === 0) {
    throw new UsageError(`${where} uses Git LFS (.gitattributes names filter=lfs); the agent on a node would see pointer files, not their content`, {
      hint: 'Git LFS is not supported: keep large files out of the repository the agents work on',
    });
  }
}
