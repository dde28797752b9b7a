import { errorMessage, processAlive } from '@gsync/core';
import { getNode, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { transition } from '../lifecycle/transition.js';
import { reportTasks } from '../node-api/calls.js';
import { ensureNodeTool } from '../node-api/install.js';
import { loadNodeTool } from '../node-api/node-tool.js';
import { withNode } from '../ssh/connect.js';
import { tasksByNode, type TaskRow } from '../store/store.js';

/**
 * Settles dispatches a crashed gsync-ctl left `dispatching`: the node is asked
 * whether the task arrived. If it did, the task is `dispatched` (never sent
 * twice); if not, nothing reached the node and the row is removed. A node that
 * does not answer leaves the row for the next run. Returns the rows settled.
 */
export async function recoverDispatching(session: Session, project: ProjectConfig): Promise<TaskRow[]> {
  const { store, config } = session;
  const orphans = store.listTasks(project.name, ['dispatching']).filter((t) => !processAlive(t.dispatch_pid));
  const settled: TaskRow[] = [];
  for (const [nodeName, tasks] of tasksByNode(orphans)) {
    const at = { project: project.name, node: nodeName };
    try {
      const node = getNode(config, nodeName);
      const tool = await loadNodeTool(session.ctx.nodeToolPath);
      // gsync-node is installed before a task is sent: a dispatch cut before that left nothing on the node.
      const reports = await withNode(session.connect, node, async (t) => {
        await ensureNodeTool(t, node, tool);
        return reportTasks(
          t,
          node,
          project.name,
          tasks.map((x) => x.task_id),
        );
      });
      for (const task of tasks) {
        const report = reports.find((r) => r.task_id === task.task_id);
        if (report?.exists) {
          transition(
            session,
            task,
            'dispatched',
            {
              dispatched_at: task.dispatched_at ?? store.timestamp(),
              dispatch_pid: null,
              node_state: report.status?.state ?? null,
              last_seen_at: store.timestamp(),
            },
            {
              level: 'warn',
              kind: 'dispatch_recovered',
              message: `${task.task_id}: an interrupted dispatch had reached ${nodeName}; it counts as dispatched`,
            },
          );
        } else {
          store.deleteTask(project.name, task.task_id);
          session.log({
            ...at,
            task_id: task.task_id,
            level: 'warn',
            kind: 'dispatch_abandoned',
            message: `${task.task_id}: an interrupted dispatch never reached ${nodeName}; its id is free again`,
          });
        }
        settled.push(store.getTask(project.name, task.task_id) ?? { ...task, state: 'dispatching' });
      }
    } catch (error) {
      session.log({
        ...at,
        level: 'warn',
        kind: 'node_unreachable',
        message: `could not settle interrupted dispatches on ${nodeName}: ${errorMessage(error)}`,
      });
    }
  }
  return settled;
}
