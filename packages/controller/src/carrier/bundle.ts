import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { FILES, ProtocolError, errorMessage, failpoint, gitOps, resultFile, sha256File, type TaskResult } from '@gsync/core';
import { collectResults, fetchTaskFile, reportTasks } from '../node-api/calls.js';
import { resultProblem } from '../result/collect.js';
import type { TaskRow } from '../store/store.js';
import { headerProblem, readBundleHeader } from '../result/bundle-header.js';
import { downloadVerified } from '../result/download.js';
import { dropQuarantine, incomingDir, indexPackStrict, openQuarantine } from '../result/quarantine.js';
import type { Arrival, Carrier, CodeParcel, Gathered, GatherRequest, IncomingResult, OutgoingCode, Receipt } from './carrier.js';

/**
 * Plan B: code travels as git bundles over the SSH connection itself. Out goes a
 * bundle of main (and, for a resolution, the conflicted branch) minus what the node's
 * object cache holds; back comes result.bundle, the task branch minus the base, read
 * with `gsync-node send`.
 */
export const bundleCarrier: Carrier = {
  mode: 'bundle',
  send: sendBundle,
  gather: gatherBundles,
  receive: receiveBundle,
};

/** Where a result's file is downloaded to: its bundle, or in the scp mode its tar of files. */
export function resultPath(gitDir: string, scratch: string, task: Pick<TaskRow, 'project' | 'task_id' | 'node'>, result: TaskResult): string {
  return join(incomingDir(gitDir, scratch), `${task.project}-${task.task_id}-${task.node}.${result.files ? 'tar' : 'bundle'}`);
}

/**
 * Every task's report and every finished result (its bundle, or in the scp mode its tar)
 * in one `gsync-node collect`, each file checked against its result.json (size and sha256) as it arrives. A node
 * whose gsync-node predates `collect` is asked for the reports alone; `receive` then
 * fetches each bundle by itself.
 */
async function gatherBundles({ project, node, tasks, transport, gitDir, scratch, maxBytes, track }: GatherRequest): Promise<Gathered> {
  const arrived = new Map<string, Arrival>();
  const dispose = async () => {
    for (const arrival of arrived.values()) if ('path' in arrival) await rm(arrival.path, { force: true });
  };
  await mkdir(incomingDir(gitDir, scratch), { recursive: true });
  const ids = tasks.map((t) => t.task_id);
  try {
    const reports = await collectResults(transport, node, project.name, ids, maxBytes, {
      track,
      take: async (report, entry) => {
        const task = tasks.find((t) => t.task_id === report.task_id)!;
        const problem = resultProblem(task, report.result, maxBytes);
        if (problem) {
          arrived.set(task.task_id, { problem });
          return;
        }
        const path = resultPath(gitDir, scratch, task, report.result);
        try {
          await downloadVerified(path, resultFile(report.result)!, (out) => copyInto(entry, out));
          arrived.set(task.task_id, { path });
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          arrived.set(task.task_id, { problem: error.message });
        }
      },
      refuse: (report, reason) => arrived.set(report.task_id, { problem: reason }),
    });
    return { reports: reports ?? (await reportTasks(transport, node, project.name, ids)), arrived, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Writes `entry` into `out` without ending it, with backpressure. */
async function copyInto(entry: Readable, out: Writable): Promise<void> {
  for await (const chunk of entry) if (!out.write(chunk)) await once(out, 'drain');
}

/** The commits of `offered` that this repository has: what a thin bundle may leave out. */
async function knownCommits(repo: string, offered: readonly string[]): Promise<string[]> {
  const candidates = offered.filter((c) => /^[0-9a-f]{40}$/.test(c));
  const types = await gitOps.objectTypes(repo, candidates);
  return candidates.filter((_, i) => types[i] === 'commit');
}

/**
 * A bundle of main (and the merged branch) minus what the node's cache holds; no
 * bundle at all when the cache holds everything already.
 */
async function sendBundle({ project, base, merge, nodeHas }: OutgoingCode): Promise<CodeParcel> {
  const repo = project.repo_local;
  const tips = [base.ref, ...(merge ? [merge.ref] : [])];
  const exclude = (await knownCommits(repo, nodeHas)).map((c) => `^${c}`);
  if (exclude.length > 0 && (await gitOps.countCommits(repo, [...tips, ...exclude])) === 0) {
    return { manifest: {}, files: [], bytes: 0, dispose: async () => {} };
  }
  const temp = await mkdtemp(join(tmpdir(), 'gsync-dispatch-'));
  const dispose = () => rm(temp, { recursive: true, force: true });
  try {
    const path = join(temp, FILES.baseBundle);
    await gitOps.createBundle(repo, path, [...tips, ...exclude]);
    const size = (await stat(path)).size;
    return {
      manifest: { bundle: { name: FILES.baseBundle, size, sha256: await sha256File(path) } },
      files: [{ name: FILES.baseBundle, path, size }],
      bytes: size,
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Downloads result.bundle (size and sha256 as announced), checks its header, and indexes its pack strictly into a quarantine. */
async function receiveBundle({ project, node, task, result, transport, gitDir, scratch, arrived }: IncomingResult): Promise<Receipt> {
  if (arrived && 'problem' in arrived) return { kind: 'rejected', reason: arrived.problem };
  await mkdir(incomingDir(gitDir, scratch), { recursive: true });
  if (!result.bundle || !result.head) return { kind: 'rejected', reason: 'result.json announces no bundle' };
  const bundle = resultPath(gitDir, scratch, task, result);
  try {
    if (!arrived) await downloadVerified(bundle, result.bundle, (out) => fetchTaskFile(transport, node, task.project, task.task_id, FILES.resultBundle, out));
    failpoint('pull:after-download');
    const header = await readBundleHeader(bundle).catch((error: unknown) => {
      throw new ProtocolError(`the result bundle is unreadable: ${errorMessage(error)}`);
    });
    const problem = headerProblem(header, {
      ref: `refs/heads/${task.branch}`,
      head: result.head,
      base: task.base_commit,
      mergeHead: task.merge_head ?? undefined,
    });
    if (problem) return { kind: 'rejected', reason: problem };
    const quarantine = await openQuarantine(gitDir, scratch);
    try {
      await indexPackStrict(project.repo_local, quarantine, bundle, header.packOffset);
    } catch (error) {
      await dropQuarantine(quarantine);
      throw error;
    }
    return { kind: 'quarantined', quarantine };
  } catch (error) {
    if (error instanceof ProtocolError) return { kind: 'rejected', reason: error.message };
    throw error;
  } finally {
    await rm(bundle, { force: true });
  }
}
