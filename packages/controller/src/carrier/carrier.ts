import type { TaskManifest, TaskReport, TaskResult } from '@gsync/core';
import type { NodeConfig, ProjectConfig } from '../config.js';
import type { TaskFile } from '../node-api/calls.js';
import type { Quarantine } from '../result/quarantine.js';
import type { NodeTransport } from '../ssh/transport.js';
import type { TaskRow } from '../store/store.js';
import type { TrackTransfer } from '../transfer.js';
import { bundleCarrier } from './bundle.js';
import { filesCarrier } from './files.js';
import { remoteCarrier } from './remote.js';

/**
 * How code travels between the controller and a node: the one seam the sync modes
 * plug into. Its two halves are the only code that knows the mode:
 *
 * - `send` makes a task's code ready to go out to a node, given what the node says it
 *   already holds: what task.json says about it, and the files that travel with
 *   task.json and spec.md in the node's `accept` call.
 * - `receive` brings a finished task's result back into a new quarantine and checks
 *   that what arrived is what result.json announced. Nothing enters the repository:
 *   the caller inspects the quarantine, then adopts or drops it.
 *
 * Everything after quarantine (inspection, queue, merge, report, store) is the same
 * for every carrier.
 */
export interface Carrier {
  readonly mode: ProjectConfig['sync_mode'];
  send(code: OutgoingCode): Promise<CodeParcel>;
  /**
   * One call per node and pull: the report of every task asked about, and whatever
   * results travel with it, kept on this machine for `receive`.
   */
  gather(ask: GatherRequest): Promise<Gathered>;
  receive(result: IncomingResult): Promise<Receipt>;
}

export interface GatherRequest {
  project: ProjectConfig;
  node: NodeConfig;
  tasks: readonly TaskRow[];
  transport: NodeTransport;
  gitDir: string;
  /** This controller's folder there for the project (see scratchName). */
  scratch: string;
  maxBytes: number;
  /** Told of the results' transfer as it goes, for whoever shows it. */
  track?: TrackTransfer | undefined;
}

/** A result that came with the reports: where it is, or why it could not be kept. */
export type Arrival = { path: string } | { problem: string };

export interface Gathered {
  reports: TaskReport[];
  arrived: Map<string, Arrival>;
  /** Removes what arrived and was not received. */
  dispose(): Promise<void>;
}

export interface OutgoingCode {
  project: ProjectConfig;
  /** The task branch (without refs/heads/). */
  branch: string;
  /** Set when the node could not take the code the usual way: send everything over the SSH connection, and why. */
  fallback?: string;
  base: { ref: string; commit: string };
  /** A conflict resolution also carries the conflicted branch, which the node merges first. */
  merge?: { ref: string; commit: string } | undefined;
  /**
   * Commits the node says its object cache holds (never trusted: only those this
   * repository also has are used, and a node that turns out to lack them asks for everything).
   */
  nodeHas: readonly string[];
}

export interface CodeParcel {
  /** What task.json says about the code. */
  manifest: Pick<TaskManifest, 'bundle' | 'remote' | 'tree'>;
  /** Sent after task.json and spec.md in the `accept` call. */
  files: TaskFile[];
  /** Bytes of code this dispatch sends. */
  bytes: number;
  /** The mode's usual way failed and this parcel is a bundle instead: why (an alert). */
  downgraded?: string;
  /** Removes what `send` left on this machine. */
  dispose(): Promise<void>;
}

export interface IncomingResult {
  project: ProjectConfig;
  node: NodeConfig;
  task: TaskRow;
  /** result.json as the node sent it, already checked against the task. */
  result: TaskResult;
  transport: NodeTransport;
  /** The repository's git dir, where quarantines and downloads live. */
  gitDir: string;
  /** This controller's folder there for the project (see scratchName). */
  scratch: string;
  /** What `gather` already brought of this result, if anything. */
  arrived?: Arrival | undefined;
  /** The most a result may weigh (max_result_bytes). */
  maxBytes: number;
}

/** `downgraded`: the result came back another way than the mode's usual one, and why (an alert). */
export type Receipt =
  | {
      kind: 'quarantined';
      quarantine: Quarantine;
      downgraded?: string;
      /** The result's commit, when the controller made it (the scp mode); otherwise result.json's head. */
      head?: string;
    }
  | { kind: 'rejected'; reason: string };

/** The carrier of a project's sync_mode. */
export function carrierFor(project: ProjectConfig): Carrier {
  if (project.sync_mode === 'git') return remoteCarrier;
  if (project.sync_mode === 'scp') return filesCarrier;
  return bundleCarrier;
}

/**
 * The carrier a node can take: the project's, or files for a node without git. Says
 * why, when it is not the project's (an alert).
 */
export function carrierForNode(project: ProjectConfig, node: NodeConfig, nodeHasGit: boolean): { carrier: Carrier; downgraded?: string } {
  const carrier = carrierFor(project);
  if (nodeHasGit || carrier === filesCarrier) return { carrier };
  return { carrier: filesCarrier, downgraded: `${node.name} has no git; the code was sent as files (the scp mode)` };
}

/** A result comes back the way it went out, whatever the project's mode is now: files, or git. */
export function receiverFor(carrier: Carrier, result: TaskResult): Carrier {
  if (result.files) return filesCarrier;
  return carrier === filesCarrier ? bundleCarrier : carrier;
}
