import { checkName } from '@gsync/core';
import { getProject } from '../config.js';
import { withSession, type Context } from '../context.js';
import { runPull, type PullOptions } from '../queue/pull-run.js';
import type { RunReport } from '../report/report.js';

export type { PullOptions };

/** `gsync-ctl pull-bundles`: collects finished tasks, checks them and merges them into main; see queue/pull-run.ts. */
export async function pullBundles(ctx: Context, options: PullOptions): Promise<RunReport> {
  return withSession(ctx, async (session) => runPull(session, getProject(session.config, checkName('project', options.project)), options));
}
