import { inertCode } from '@gsync/core/inert';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MAX_ARG_BYTES, UsageError, conflictHunks, usesSpecText, gitOps, sha256, specTitle, writeFileAtomic } from '@gsync/core';
import { agentProfile, conflictHandler, getNode, resolveAgent, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { pickNode } from '../dispatch/pick-node.js';
import { sendNewTask, type DispatchResult } from '../dispatch/send-task.js';
import { LIVE_RESOLUTION_STATES } from '../lifecycle/states.js';
import { fenced } from '../report/report.js';
import type { TaskRow } from '../store/store.js';
import { mergeIdentity, planMerge } from './merge.js';

export const RESOLUTION_SPEC_FILE = 'conflict_resolution_spec.md';

export interface ConflictPicture {
  task: TaskRow;
  mainBranch: string;
  main: string;
  paths: string[];
  messages: string[];
  /** Tasks already merged into main since the conflicted task's base that changed the same paths. */
  others: TaskRow[];
  hunks: { path: string; hunks: { startLine: number; text: string }[] }[];
}

const HUNK_BUDGET = 48 * 1024;

/** The spec a resolving agent gets: both intents, the conflicted paths and hunks, and what done means. */
export function resolutionSpec(c: ConflictPicture): string {
  const t = c.task;
  const paths = c.paths.map((p) => `- ${inertCode(p)}`);
  const out = [
    `# Resolve the merge conflict of ${t.task_id} with ${c.mainBranch}`,
    '',
    `Task ${t.task_id} (branch \`${t.branch}\`, from node ${t.node}) changed the same lines as work already merged into`,
    `\`${c.mainBranch}\`. This checkout is \`${c.mainBranch}\` (${c.main.slice(0, 12)}) with that branch merged in; the merge stopped`,
    'on the conflicts below and their markers are in the files.',
    '',
    '## What done means',
    '',
    '- No conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`) remain in the conflicted files.',
    `- The result keeps what \`${c.mainBranch}\` already does (the intent of the tasks listed under "Already on ${c.mainBranch}")`,
    `  and also does what ${t.task_id} set out to do (its spec below). Where they truly contradict, keep \`${c.mainBranch}\`'s`,
    '  behaviour and say so in a comment next to the change.',
    '- Change nothing outside the conflicted files unless the merged code needs it to build or pass its tests.',
    '- Do not commit, reset, abort or restart the merge: gsync commits your resolution as the merge commit.',
    '',
    '## Conflicted paths',
    '',
    ...paths,
    ...(c.messages.length > 0 ? ['', ...c.messages.map((m) => `> ${m.replace(/\n/g, ' ')}`)] : []),
    '',
    `## The task that conflicted: ${t.task_id}`,
    '',
    fenced(t.spec_text ?? t.spec_title, 'markdown'),
    '',
    `## Already on ${c.mainBranch} over the same paths`,
    '',
  ];
  if (c.others.length === 0) out.push(`(no task of this project; the other side is work committed to \`${c.mainBranch}\` directly)`, '');
  for (const o of c.others) {
    out.push(`### ${o.task_id} (merged as ${(o.merge_commit ?? '').slice(0, 12)})`, '', fenced(o.spec_text ?? o.spec_title, 'markdown'), '');
  }
  out.push('## Conflict hunks', '');
  // The spec may travel as one argv word ({spec}): keep it well under Linux's 128 KiB limit.
  let budget = HUNK_BUDGET;
  for (const file of c.hunks) {
    out.push(`### ${inertCode(file.path)}`, '');
    if (file.hunks.length === 0) out.push('(no text markers: a binary, deleted or renamed file; see the message above)', '');
    for (const h of file.hunks) {
      const block = fenced(h.text);
      budget -= block.length;
      if (budget < 0) {
        out.push('(more hunks: see the markers in the files themselves)', '');
        break;
      }
      out.push(`From line ${h.startLine}:`, '', block, '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** Looks at a conflicted task against main as it is now; undefined when it no longer conflicts. */
export async function conflictPicture(session: Session, project: ProjectConfig, task: TaskRow): Promise<ConflictPicture | undefined> {
  const repo = project.repo_local;
  const mainRef = `refs/heads/${project.main_branch}`;
  if (!task.result_head) return undefined;
  const plan = await planMerge({ repo, mainRef, head: task.result_head, message: 'gsync forecast', env: await mergeIdentity(repo) });
  if (plan.kind !== 'conflicted') return undefined;
  const conflicted = new Set(plan.paths);
  const others: TaskRow[] = [];
  for (const o of session.store.listTasks(project.name, ['merged'])) {
    if (!o.merge_commit || o.task_id === task.task_id) continue;
    const paths = o.changed_paths ? (JSON.parse(o.changed_paths) as string[]) : [];
    if (!paths.some((p) => conflicted.has(p))) continue;
    if (await gitOps.isAncestor(repo, o.merge_commit, task.base_commit)) continue;
    others.push(o);
  }
  const hunks = [];
  for (const path of plan.paths) {
    const blob = await gitOps.readBlob(repo, plan.tree, path);
    const text = blob && !blob.subarray(0, 8000).includes(0) ? blob.toString('utf8') : '';
    hunks.push({ path, hunks: conflictHunks(text).slice(0, 20) });
  }
  return { task, mainBranch: project.main_branch, main: plan.main, paths: plan.paths, messages: plan.messages, others, hunks };
}

export function resolutionSpecPath(configDir: string, project: string, taskId: string): string {
  return join(configDir, 'reports', project, taskId, RESOLUTION_SPEC_FILE);
}

/** Refuses a second resolution while one is under way or merged. */
export function liveResolution(session: Session, project: string, task: TaskRow): TaskRow | undefined {
  if (!task.resolved_by) return undefined;
  const r = session.store.getTask(project, task.resolved_by);
  return r && LIVE_RESOLUTION_STATES.includes(r.state) ? r : undefined;
}

export interface ResolveOptions {
  node?: string;
  /** Agent profile name or argv; default: the project's conflict_handler, else its agent. */
  agent?: string;
}

/**
 * Writes the resolution spec for a conflicted task and dispatches it as a new task
 * whose base is main as it is now, with the conflicted branch merged first on the node.
 */
export async function dispatchResolution(
  session: Session,
  project: ProjectConfig,
  task: TaskRow,
  options: ResolveOptions = {},
): Promise<DispatchResult & { spec_path: string }> {
  const { config, store } = session;
  if (task.state !== 'conflicted')
    throw new UsageError(`task ${task.task_id} of ${project.name} is ${task.state}, not conflicted; there is nothing to resolve`);
  const live = liveResolution(session, project.name, task);
  if (live) throw new UsageError(`task ${task.task_id} is already being resolved by ${live.task_id} (${live.state} on ${live.node})`);
  const picture = await conflictPicture(session, project, task);
  if (!picture) {
    throw new UsageError(`task ${task.task_id} no longer conflicts with ${project.main_branch}`, {
      hint: `merge it by hand: git merge ${task.branch}`,
    });
  }
  const text = resolutionSpec(picture);
  const specPath = resolutionSpecPath(session.ctx.configDir, project.name, task.task_id);
  await mkdir(dirname(specPath), { recursive: true });
  await writeFileAtomic(specPath, text);
  const node = options.node ? getNode(config, options.node) : pickNode(config, store);
  const agent = options.agent ? agentProfile(config, options.agent, '--agent') : (conflictHandler(config, project) ?? resolveAgent(config, project, node));
  const data = Buffer.from(text);
  if (usesSpecText(agent) && data.length > MAX_ARG_BYTES) {
    throw new UsageError(`the resolution spec for ${task.task_id} is ${data.length} bytes, too long to pass as one argument ({spec})`, {
      hint: `use {spec_file} in the conflict handler's command; the spec is in ${specPath}`,
    });
  }
  const result = await sendNewTask(session, {
    project,
    node,
    spec: { data, text, title: specTitle(text), sha256: sha256(data) },
    agent,
    resolves: { task, ref: `refs/heads/${task.branch}`, commit: task.result_head! },
  });
  return { ...result, spec_path: specPath };
}
