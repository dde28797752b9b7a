import { FILES, PROTOCOL_VERSION, ProtocolError, SshError, errorMessage, failpoint, humanBytes, inert, type TaskManifest } from '@gsync/core';
import { carrierFor, carrierForNode, type CodeParcel } from '../carrier/carrier.js';
import { secretPolicy, type NodeConfig, type ProjectConfig } from '../config.js';
import type { Session } from '../context.js';
import { transition } from '../lifecycle/transition.js';
import { TaskClashError, acceptTask, openHelloAccept, type AcceptAnswer, type TaskFile } from '../node-api/calls.js';
import { checkUsable, ensureNodeTool, needsInstall, type Hello } from '../node-api/install.js';
import { loadNodeTool, type NodeTool } from '../node-api/node-tool.js';
import { raiseAlert } from '../alerts.js';
import { testGateConfinement } from '../queue/test-gate.js';
import { checkRepo, checkRepoShape } from '../repo.js';
import { withNodeRetrying } from '../ssh/connect.js';
import type { NodeLinks } from '../ssh/links.js';
import type { TaskRow } from '../store/store.js';
import { trackTransfers } from '../transfer.js';
import { overlapWarnings } from './overlap.js';
import { reserveTask } from './reserve.js';
import { specFiles, type Spec } from './spec.js';

export interface DispatchResult {
  project: string;
  task_id: string;
  node: string;
  branch: string;
  base_commit: string;
  bundle_bytes: number;
  tool_installed: boolean;
  /** Running tasks given the same files (from the specs' "Files:" lists). */
  warnings: string[];
  resolves?: string;
  /** True when this dispatch found its own earlier, interrupted attempt already on the node. */
  recovered?: boolean;
}

export interface TaskToSend {
  project: ProjectConfig;
  node: NodeConfig;
  /** Default: the next free id, taken atomically. */
  taskId?: string | undefined;
  spec: Pick<Spec, 'data' | 'text' | 'title' | 'sha256'>;
  agent: string[];
  /** A conflict resolution: the conflicted task, whose branch the node merges first. */
  resolves?: { task: TaskRow; ref: string; commit: string };
  /** For `retry`: the task whose spec this sends again. */
  retryOf?: string;
}

/** Only a link that failed after connecting can have delivered the task with its answer lost. */
/** A cut link, or an answer that made no sense: the node may hold the task either way. */
const mayHaveArrived = (error: unknown) => (error instanceof SshError && error.kind === 'transfer') || error instanceof ProtocolError;

/** A task whose id is reserved (its row `dispatching`), ready to go out. */
export interface ReservedTask {
  req: TaskToSend;
  taskId: string;
  branch: string;
  base: { ref: string; commit: string };
  files: string[];
  warnings: string[];
}

/** Reserves a task's id: its row, `dispatching` and owned by this process, on main as it is now. */
export async function reserveNewTask(session: Session, req: TaskToSend, avoid: readonly string[] = []): Promise<ReservedTask> {
  const { store } = session;
  const { project, node, spec } = req;
  carrierFor(project);
  const baseRef = `refs/heads/${project.main_branch}`;
  const base = { ref: baseRef, commit: await checkRepo(project, baseRef) };
  await checkRepoShape(project, base.commit);
  // A result that could never pass a gate that cannot run is not worth an agent's time.
  if (project.verify_command) await testGateConfinement(session.config, project, session.ctx.env);
  const files = specFiles(spec.text);
  const warnings = overlapWarnings(store, project.name, files);
  const { taskId, branch } = reserveTask(
    session,
    project,
    node,
    req.taskId,
    {
      base_ref: base.ref,
      base_commit: base.commit,
      spec_title: spec.title,
      spec_sha256: spec.sha256,
      spec_text: spec.text,
      spec_files: JSON.stringify(files),
      resolves: req.resolves?.task.task_id ?? null,
      merge_head: req.resolves?.commit ?? null,
      retry_of: req.retryOf ?? null,
    },
    avoid,
  );
  failpoint('dispatch:after-reserve');
  return { req, taskId, branch, base, files, warnings };
}

/** Reserves and sends one task. */
export async function sendNewTask(session: Session, req: TaskToSend): Promise<DispatchResult> {
  return deliverTask(session, await reserveNewTask(session, req));
}

/**
 * Sends a reserved task (see deliverOnce). An automatic id the node already has for
 * another task (another controller's, or from before this store) is skipped: the task is
 * reserved again under the next free id and sent again. A chosen id that clashes is exit 2.
 */
export async function deliverTask(session: Session, reserved: ReservedTask, links?: NodeLinks): Promise<DispatchResult> {
  const taken: string[] = [];
  for (let task = reserved; ; ) {
    try {
      return await deliverOnce(session, task, links);
    } catch (error) {
      if (!(error instanceof TaskClashError) || task.req.taskId !== undefined || taken.length >= 100) throw error;
      taken.push(task.taskId);
      session.log({
        project: task.req.project.name,
        node: task.req.node.name,
        level: 'warn',
        kind: 'id_taken',
        message: `${task.req.node.name} already has a task ${task.taskId} that is not this store's; taking the next free id`,
      });
      task = await reserveNewTask(session, task.req, taken);
    }
  }
}

/**
 * Sends a reserved task once: over one connection (the run's kept link to the node when
 * `links` is given), installs gsync-node if needed, has the project's carrier make the
 * code ready for what the node's cache holds, and hands the node the task (task.json,
 * spec.md and the code), which starts it. A send that never reached the node removes
 * the row; one that may have reached it leaves it for the next dispatch or pull to settle.
 */
async function deliverOnce(session: Session, reserved: ReservedTask, links?: NodeLinks): Promise<DispatchResult> {
  const { config, store, ctx } = session;
  const { req, taskId, branch, base, files, warnings } = reserved;
  const { project, node, spec } = req;
  let tool: NodeTool;
  try {
    tool = await loadNodeTool(ctx.nodeToolPath);
  } catch (error) {
    store.deleteTask(project.name, taskId);
    throw error;
  }
  const merge = req.resolves ? { ref: req.resolves.ref, commit: req.resolves.commit } : undefined;
  const created_at = ctx.now().toISOString();
  const manifestFor = (parcel: CodeParcel): TaskManifest => ({
    protocol: PROTOCOL_VERSION,
    project: project.name,
    task_id: taskId,
    node: node.name,
    branch,
    base,
    ...(merge ? { merge } : {}),
    ...parcel.manifest,
    spec: { name: FILES.spec, sha256: spec.sha256, title: spec.title },
    agent: {
      argv: req.agent,
      timeout_seconds: project.agent_timeout_seconds ?? node.agent_timeout_seconds ?? config.agentTimeoutSeconds,
      kill_grace_seconds: 5,
    },
    policy: secretPolicy(config, project),
    created_at,
  });
  const at = { project: project.name, task_id: taskId, node: node.name };
  const track = trackTransfers(ctx.onTransfer, 'send', node.name);
  for (const warning of warnings) session.log({ ...at, level: 'warn', kind: 'overlap_warning', message: `${taskId}: ${warning}` });
  let reached = false;
  let downgraded: string | undefined;
  let manifestRemote = false;
  try {
    const retrying = (error: unknown, attempt: number, delayMs: number) => {
      reached ||= mayHaveArrived(error);
      session.log({
        ...at,
        level: 'warn',
        kind: 'transfer_retry',
        message: `${node.name}: ${errorMessage(error)}; sending ${taskId} again in ${delayMs / 1000} s (${attempt}/${config.transferRetries})`,
      });
    };
    // The same manifest (but for the code) each time: a node that already has the task from a lost answer says so.
    const { installed, answer, parcel } = await withNodeRetrying(
      session.connect,
      node,
      config.transferRetries,
      retrying,
      async (t) => {
        const deliver = async (hello: Hello, accept: (files: readonly TaskFile[]) => Promise<AcceptAnswer>, fallback?: string) => {
          const { carrier, downgraded: noGit } = carrierForNode(project, node, Boolean(hello.git));
          if (noGit) downgraded = noGit;
          const nodeHas = fallback ? [] : (hello.cache ?? []);
          const parcel = await carrier.send({ project, branch, base, merge, nodeHas, ...(fallback ? { fallback } : {}) });
          if (parcel.downgraded) downgraded = parcel.downgraded;
          try {
            const manifest = manifestFor(parcel);
            const answer = await accept([
              { name: FILES.manifest, data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
              { name: FILES.spec, data: spec.data },
              ...parcel.files,
            ]);
            manifestRemote = manifest.remote !== undefined;
            return { answer, parcel: { bytes: parcel.bytes, bundle: manifest.bundle } };
          } finally {
            await parcel.dispose();
          }
        };
        const acceptAlone = (files: readonly TaskFile[]) => acceptTask(t, node, project.name, taskId, files, track);
        // One gsync-node process: it says who it is and what its cache holds, then takes the task.
        const call = await openHelloAccept(t, node, project.name, taskId);
        let installed = false;
        let hello: Hello;
        let sent: Awaited<ReturnType<typeof deliver>>;
        try {
          if (needsInstall(call.hello, tool)) {
            await call.skip();
            const ensured = await ensureNodeTool(t, node, tool, project.name);
            installed = ensured.installed;
            if (installed) session.log({ ...at, level: 'info', kind: 'node_tool_installed', message: `installed gsync-node ${tool.version} on ${node.name}` });
            hello = ensured.hello;
            sent = await deliver(hello, acceptAlone);
          } else {
            hello = checkUsable(node, call.hello, tool);
            sent = await deliver(hello, (files) => call.accept(files, track));
          }
        } finally {
          await call.skip();
        }
        if (sent.answer.need_full) {
          // The node's cache does not hold what it said (deleted, pruned, damaged): never trusted, everything goes again.
          session.log({ ...at, level: 'warn', kind: 'cache_miss', message: `${node.name}: ${inert(sent.answer.need_full)}; sending the whole history` });
          // A node that could not fetch from the shared remote gets everything over this connection.
          const fallback = manifestRemote ? sent.answer.need_full : undefined;
          if (fallback) downgraded = `${node.name} could not take the code from the shared remote (${inert(fallback, 300)}); it was sent as a bundle`;
          sent = await deliver({ ...hello, cache: [] }, acceptAlone, fallback);
          if (sent.answer.need_full) throw new ProtocolError(`node ${node.name} refused the whole history of ${project.name}: ${inert(sent.answer.need_full)}`);
        }
        return { installed, ...sent };
      },
      { links },
    );
    failpoint('dispatch:after-send');
    if (downgraded) await raiseAlert(session, { kind: 'downgraded', project: project.name, task_id: taskId, node: node.name, message: downgraded });
    transition(
      session,
      at,
      'dispatched',
      { dispatched_at: store.timestamp(), node_state: inert(answer.start?.state ?? 'received', 40), dispatch_pid: null, last_seen_at: store.timestamp() },
      {
        level: 'info',
        kind: 'dispatched',
        message: `dispatched ${taskId} to ${node.name} on ${branch} (base ${base.commit.slice(0, 12)}, ${humanBytes(parcel.bytes)} of code)${req.resolves ? `, resolving ${req.resolves.task.task_id}` : ''}`,
        data: { base: base.commit, bundle: parcel.bundle, pid: answer.start?.pid, resolves: req.resolves?.task.task_id, files },
      },
    );
    if (req.resolves) store.updateTask(project.name, req.resolves.task.task_id, { resolved_by: taskId });
    return {
      project: project.name,
      task_id: taskId,
      node: node.name,
      branch,
      base_commit: base.commit,
      bundle_bytes: parcel.bytes,
      tool_installed: installed,
      warnings,
      ...(req.resolves ? { resolves: req.resolves.task.task_id } : {}),
    };
  } catch (error) {
    if (reached || mayHaveArrived(error)) {
      // The link failed: the node may hold the task with only its answer lost. The row stays
      // `dispatching` without an owner, and the next dispatch or pull settles it with the node.
      store.updateTask(project.name, taskId, { dispatch_pid: null });
      session.log({
        ...at,
        level: 'error',
        kind: 'dispatch_failed',
        message: `dispatch of ${taskId} to ${node.name} failed: ${errorMessage(error)}; the next dispatch or pull asks ${node.name} whether it arrived`,
      });
    } else {
      store.deleteTask(project.name, taskId);
      session.log({ ...at, level: 'error', kind: 'dispatch_failed', message: `dispatch of ${taskId} to ${node.name} failed: ${errorMessage(error)}` });
    }
    throw error;
  }
}
