import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { FILES, PROTOCOL_VERSION, sha256, type TaskManifest } from '@gsync/core';
import { main } from '@gsync/node';
import { capture, tempDir, type GitRepo } from '../../../test/helpers/git-repo.js';

export interface NodeRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the gsync-node CLI in this process, as a node would run it; `self` is the file its runs start from. */
export async function runNodeCli(argv: string[], stdin: Readable, self: string): Promise<NodeRun> {
  const [out, err] = [capture(), capture()];
  const code = await main({ argv, env: process.env, stdin, stdout: out.stream, stderr: err.stream, self });
  return { code, stdout: out.text(), stderr: err.text() };
}

export interface TarOptions {
  project?: string;
  taskId?: string;
  agent: string[];
  /** Extra tar entries (after the three a task has). */
  entries?: { name: string; data: Buffer }[];
  /** What the bundle carries: main by default. */
  revs?: string[];
}

/** A task as the controller sends it: task.json, spec.md and a bundle of main, as one tar. */
export function taskTar(repo: GitRepo, spec: string, options: TarOptions): { tar: Readable; manifest: TaskManifest } {
  const project = options.project ?? 'proj';
  const taskId = options.taskId ?? 'S01';
  const bundlePath = join(tempDir('gsync-bundle-'), 'base.bundle');
  repo.git('bundle', 'create', '-q', bundlePath, ...(options.revs ?? ['refs/heads/main']));
  const bundle = readFileSync(bundlePath);
  const manifest: TaskManifest = {
    protocol: PROTOCOL_VERSION,
    project,
    task_id: taskId,
    node: 'n1',
    branch: `task/${project}-${taskId}-n1`,
    base: { ref: 'refs/heads/main', commit: repo.head() },
    bundle: { name: FILES.baseBundle, size: bundle.length, sha256: sha256(bundle) },
    spec: { name: FILES.spec, sha256: sha256(Buffer.from(spec)), title: spec.split('\n')[0]! },
    agent: { argv: options.agent, timeout_seconds: 120, kill_grace_seconds: 1 },
    created_at: '2025-01-02T03:04:05.000Z',
  };
  const tar = pack();
  tar.entry({ name: FILES.manifest }, Buffer.from(JSON.stringify(manifest)));
  tar.entry({ name: FILES.spec }, Buffer.from(spec));
  tar.entry({ name: FILES.baseBundle }, bundle);
  for (const e of options.entries ?? []) tar.entry({ name: e.name }, e.data);
  tar.finalize();
  return { tar: tar as unknown as Readable, manifest };
}
