import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FILES, checkName } from '@gsync/core';

/** `~` and `~/x` mean the node user's home; relative paths are taken from the cwd (the home over SSH). */
export function expandHome(path: string, home = homedir()): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return resolve(path);
}

export interface TaskPaths {
  dir: string;
  manifest: string;
  spec: string;
  baseBundle: string;
  repo: string;
  status: string;
  agentLog: string;
  nodeLog: string;
  resultBundle: string;
  result: string;
  tree: string;
  baseFiles: string;
  resultTree: string;
  cancel: string;
}

export function tasksRoot(workRoot: string, project: string): string {
  return join(expandHome(workRoot), checkName('project', project), 'tasks');
}

export function taskDir(workRoot: string, project: string, taskId: string): string {
  return join(tasksRoot(workRoot, project), checkName('task id', taskId));
}

/** The node's own files beside the projects: the installed gsync-node, and the queue's lock and limit. */
export function nodeDir(workRoot: string): string {
  return join(expandHome(workRoot), '.gsync');
}

/** The work root a task dir lies under (`<work_root>/<project>/tasks/<task_id>`). */
export function workRootOfTask(dir: string): string {
  return dirname(dirname(dirname(expandHome(dir))));
}

export function taskPaths(dir: string): TaskPaths {
  const d = expandHome(dir);
  return {
    dir: d,
    manifest: join(d, FILES.manifest),
    spec: join(d, FILES.spec),
    baseBundle: join(d, FILES.baseBundle),
    repo: join(d, FILES.repo),
    status: join(d, FILES.status),
    agentLog: join(d, FILES.agentLog),
    nodeLog: join(d, FILES.nodeLog),
    resultBundle: join(d, FILES.resultBundle),
    result: join(d, FILES.result),
    tree: join(d, FILES.tree),
    baseFiles: join(d, FILES.baseFiles),
    resultTree: join(d, FILES.resultTree),
    cancel: join(d, FILES.cancel),
  };
}
