import type { ProjectConfig } from '../config.js';
import type { TaskRow } from '../store/store.js';
import type { ReportTask } from './report.js';

/** The command that dispatches a resolution by hand. */
export function resolveCommand(project: string, taskId: string): string {
  return `gsync-ctl resolve --project ${project} --task ${taskId}`;
}

/** A task's entry in a run report, from its stored row. */
export function describe(task: TaskRow, outcome: ReportTask['outcome'], extra: Partial<ReportTask> = {}): ReportTask {
  const withheld = task.withheld ? (JSON.parse(task.withheld) as ReportTask['withheld']) : undefined;
  return {
    ...(withheld && withheld.length > 0 ? { withheld } : {}),
    ...(task.downgraded ? { downgraded: task.downgraded } : {}),
    task_id: task.task_id,
    node: task.node,
    branch: task.branch,
    title: task.spec_title,
    outcome,
    dispatched_at: task.dispatched_at,
    finished_at: task.finished_at,
    ...extra,
  };
}

/** A cancelled task once its node has stopped it: why it was cancelled, and where its work so far is. */
export function cancelledEntry(task: TaskRow, project: Pick<ProjectConfig, 'name'>): ReportTask {
  const again = `\`gsync-ctl retry --project ${project.name} --task ${task.task_id}\``;
  return describe(task, 'cancelled', {
    reason: task.error ?? undefined,
    wip_branch: task.wip_branch ?? undefined,
    next_step: task.wip_branch
      ? `nothing was merged; its work so far is on ${task.wip_branch}; to send the spec again: ${again}`
      : `to send the spec again: ${again}`,
  });
}

/** What to tell the user about a task that needs them, from its stored row: why, and the next step. */
export function attention(task: TaskRow, project: Pick<ProjectConfig, 'name' | 'main_branch'>): ReportTask {
  const paths = task.conflict_paths ? (JSON.parse(task.conflict_paths) as string[]) : undefined;
  const base = { reason: task.error ?? undefined, wip_branch: task.wip_branch ?? undefined };
  switch (task.state) {
    case 'conflicted':
      return describe(task, 'conflicted', {
        ...base,
        conflict_paths: paths,
        ...(task.resolved_by ? { resolution_task: task.resolved_by } : {}),
        next_step: `main was left as it was; have an agent resolve it with \`${resolveCommand(project.name, task.task_id)}\`, or by hand: git checkout ${project.main_branch} && git merge ${task.branch}`,
      });
    case 'stale':
      return describe(task, 'stale', {
        ...base,
        next_step: `wait for ${task.node} to come back (pull again), or send the spec to another node with \`gsync-ctl retry --project ${project.name} --task ${task.task_id}\``,
      });
    case 'withheld':
      return describe(task, 'withheld', {
        ...base,
        next_step: `nothing was merged.${task.result_head ? ` To merge it without the withheld files: git checkout ${project.main_branch} && git merge --no-ff ${task.branch}.` : ''} To let them through: add their paths to secrets.allow_paths of ${project.name} in projects.json, then \`gsync-ctl retry --project ${project.name} --task ${task.task_id}\``,
      });
    case 'rejected':
      return describe(task, 'rejected', {
        ...base,
        next_step: task.verify_log
          ? `nothing was merged; the branch ${task.branch} is kept: read ${task.verify_log}, fix and dispatch again`
          : 'nothing from this result was merged; inspect the node and dispatch again',
      });
    default:
      return describe(task, task.state === 'timeout' ? 'timeout' : 'failed', {
        ...base,
        next_step: `read agent.log of ${project.name} task ${task.task_id} on ${task.node}, then dispatch again`,
      });
  }
}
