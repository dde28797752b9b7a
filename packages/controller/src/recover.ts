import { errorMessage, processAlive } from '@gsync/core';
import { getNode, type ProjectConfig } from './config.js';
import { withNode } from './connect.js';
import type { Context, Session } from './context.js';
import { loadNodeTool } from './node-tool.js';
import { ensureNodeTool, reportTasks } from './remote.js';
import type { TaskRow } from './store.js';

/**
 * Settles dispatches a crashed gsync-ctl left `dispatching`: the node is asked
 * whether the task arrived. If it did, the task is `dispatched` (never sent
 * twice); if not, nothing reached the node and the row is removed. A node that
 * does not answer leaves the row for the next run. Returns the rows settled.
 */
export async function recoverDispatching(ctx: Context, session: Session, project: ProjectConfig): Promise<TaskRow[]> {
  const { store, config } = session;
  const orphans = store.listTasks(project.name, ['dispatching']).filter((t) => !processAlive(t.dispatch_pid));
  const settled: TaskRow[] = [];
  const byNode = new Map<string, TaskRow[]>();
  for (const t of orphans) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  for (const [nodeName, tasks] of byNode) {
    const at = { project: project.name, node: nodeName };
    try {
      const node = getNode(config, nodeName);
      const tool = await loadNodeTool(ctx.nodeToolPath);
      // gsync-node is installed before a task is sent: a dispatch cut before that left nothing on the node.
      const reports = await withNode(session.connect, node, async (t) => {
        await ensureNodeTool(t, node, tool);
        return reportTasks(t, node, project.name, tasks.map((x) => x.task_id));
      });
      for (const task of tasks) {
        const report = reports.find((r) => r.task_id === task.task_id);
        if (report?.exists) {
          store.updateTask(project.name, task.task_id, { state: 'dispatched', dispatched_at: task.dispatched_at ?? store.timestamp(), dispatch_pid: null, node_state: report.status?.state ?? null, last_seen_at: store.timestamp() });
          session.log({ ...at, task_id: task.task_id, level: 'warn', kind: 'dispatch_recovered', message: `${task.task_id}: an interrupted dispatch had reached ${nodeName}; it counts as dispatched` });
        } else {
          store.deleteTask(project.name, task.task_id);
          session.log({ ...at, task_id: task.task_id, level: 'warn', kind: 'dispatch_abandoned', message: `${task.task_id}: an interrupted dispatch never reached ${nodeName}; its id is free again` });
        }
        settled.push(store.getTask(project.name, task.task_id) ?? { ...task, state: 'dispatching' });
      }
    } catch (error) {
      session.log({ ...at, level: 'warn', kind: 'node_unreachable', message: `could not settle interrupted dispatches on ${nodeName}: ${errorMessage(error)}` });
    }
  }
  return settled;
}
