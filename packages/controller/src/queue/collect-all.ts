import pLimit from 'p-limit';
import { errorMessage, gitOps } from '@gsync/core';
import { raiseAlert } from '../alerts.js';
import { carrierFor } from '../carrier/carrier.js';
import { getNode, secretPolicy, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { staleSince } from '../lifecycle/decisions.js';
import { WATCHED_STATES } from '../lifecycle/states.js';
import { transition } from '../lifecycle/transition.js';
import type { ReportTask, RunReport } from '../report/report.js';
import { attention } from '../report/task-entry.js';
import { collectTask } from '../result/collect.js';
import { scratchName } from '../result/quarantine.js';
import { isTransient, withNodeRetrying } from '../ssh/connect.js';
import type { NodeLinks } from '../ssh/links.js';
import { tasksByNode, type TaskRow } from '../store/store.js';
import { trackTransfers } from '../transfer.js';
import { settle } from './settle.js';

/** Asks each node about its open tasks and collects the finished ones. Nodes are handled in parallel. */
export async function collectAll(
  session: Session,
  project: ProjectConfig,
  tasks: ReportTask[],
  unreachable: RunReport['unreachable'],
  links?: NodeLinks,
): Promise<void> {
  const { store } = session;
  const byNode = tasksByNode(store.listTasks(project.name, WATCHED_STATES));
  const limit = pLimit(4);
  await Promise.all(
    [...byNode].map(([nodeName, nodeTasks]) =>
      limit(async () => {
        try {
          await collectFromNode(session, project, nodeName, nodeTasks, tasks, links);
        } catch (error) {
          unreachable.push({ node: nodeName, error: errorMessage(error) });
          markStale(session, project, nodeName, nodeTasks, errorMessage(error), tasks);
          session.log({
            project: project.name,
            node: nodeName,
            level: 'warn',
            kind: 'node_unreachable',
            message: `could not ask ${nodeName} about its tasks: ${errorMessage(error)}`,
          });
        }
      }),
    ),
  );
}

/** One connection to the node (again after a cut link): one call gathers every report and finished result, then each is settled. */
async function collectFromNode(
  session: Session,
  project: ProjectConfig,
  nodeName: string,
  nodeTasks: readonly TaskRow[],
  tasks: ReportTask[],
  links: NodeLinks | undefined,
): Promise<void> {
  const { store, config } = session;
  const node = getNode(config, nodeName);
  const carrier = carrierFor(project);
  const scratch = scratchName(session.ctx.configDir, project.name);
  const retrying = (error: unknown, attempt: number, delayMs: number) =>
    session.log({
      project: project.name,
      node: nodeName,
      level: 'warn',
      kind: 'transfer_retry',
      message: `${nodeName}: ${errorMessage(error)}; trying again in ${delayMs / 1000} s (${attempt}/${config.transferRetries})`,
    });
  await withNodeRetrying(
    session.connect,
    node,
    config.transferRetries,
    retrying,
    async (transport) => {
      // Tasks settled by an earlier attempt are done; ask only about the rest.
      const left = nodeTasks.map((x) => store.getTask(project.name, x.task_id)!).filter((x) => WATCHED_STATES.includes(x.state));
      const gathered = await carrier.gather({
        project,
        node,
        tasks: left,
        transport,
        gitDir: await gitOps.gitDir(project.repo_local),
        scratch,
        maxBytes: config.maxResultBytes,
        track: trackTransfers(session.ctx.onTransfer, 'receive', nodeName),
      });
      try {
        for (const task of left) {
          const report = gathered.reports.find((r) => r.task_id === task.task_id);
          const collect = async (result: Parameters<typeof collectTask>[0]['result']) => {
            try {
              return await collectTask({
                carrier,
                project,
                node,
                task,
                result,
                transport,
                scratch,
                arrived: gathered.arrived.get(task.task_id),
                maxBytes: config.maxResultBytes,
                limits: config.limits,
                policy: secretPolicy(config, project),
                onDowngrade: (message) => raiseAlert(session, { kind: 'downgraded', project: project.name, task_id: task.task_id, node: node.name, message }),
              });
            } catch (error) {
              // A broken link is tried again; anything else this result did is its own fault, not the node's.
              if (isTransient(error)) throw error;
              return { kind: 'rejected' as const, reason: `the result could not be checked: ${errorMessage(error).split('\n')[0]}` };
            }
          };
          await settle(session, project, task, report, collect, tasks);
        }
      } finally {
        await gathered.dispose();
      }
    },
    { links },
  );
}

/** Tasks on a node that has not answered for stale_after_seconds become `stale`: no longer waited for, ready for `retry`. */
function markStale(session: Session, project: ProjectConfig, nodeName: string, nodeTasks: readonly TaskRow[], why: string, tasks: ReportTask[]): void {
  const { config, ctx, store } = session;
  const node = config.nodes.find((n) => n.name === nodeName);
  const limitMs = (node?.stale_after_seconds ?? config.staleAfterSeconds) * 1000;
  // As they are now: an attempt that was cut may have settled some already.
  for (const task of nodeTasks.map((t) => store.getTask(project.name, t.task_id)!)) {
    const since = staleSince(task, ctx.now(), limitMs);
    if (!since) continue;
    const error = `${nodeName} has not answered since ${since} (${why})`;
    const row = transition(session, task, 'stale', { error }, { level: 'warn', kind: 'stale', message: `${task.task_id} is stale: ${error}` });
    tasks.push(attention(row, project));
  }
}
