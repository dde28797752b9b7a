import { checkName } from '@gsync/core';
import { carrierFor } from '../carrier/carrier.js';
import { getNode, getProject, resolveAgent } from '../config.js';
import { withSession, type Context } from '../context.js';
import { pickNode } from '../dispatch/pick-node.js';
import { recoverDispatching } from '../dispatch/recover.js';
import { sendNewTask, type DispatchResult } from '../dispatch/send-task.js';
import { readSpec } from '../dispatch/spec.js';

export interface DispatchOptions {
  project: string;
  spec: string;
  task?: string;
  node?: string;
}

/** `gsync-ctl dispatch`: sends one spec to a node (the least busy one unless named) and starts its agent. */
export async function dispatch(ctx: Context, options: DispatchOptions): Promise<DispatchResult> {
  return withSession(ctx, async (session) => {
    const { config, store } = session;
    const project = getProject(config, checkName('project', options.project));
    carrierFor(project);
    const node = options.node ? getNode(config, options.node) : pickNode(config, store);
    const agent = resolveAgent(config, project, node);
    const spec = await readSpec(options.spec, agent);
    const taskId = options.task === undefined ? undefined : checkName('task id', options.task);
    const recovered = await recoverDispatching(session, project);
    const again = recovered.find((t) => t.spec_sha256 === spec.sha256 && t.state === 'dispatched' && (taskId === undefined || t.task_id === taskId));
    if (again) {
      // The same dispatch was cut off after the node had the task: finish it rather than send it twice.
      return {
        project: project.name,
        task_id: again.task_id,
        node: again.node,
        branch: again.branch,
        base_commit: again.base_commit,
        bundle_bytes: 0,
        tool_installed: false,
        warnings: [],
        recovered: true,
      };
    }
    return sendNewTask(session, { project, node, taskId, spec, agent });
  });
}
