import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, writeFileAtomic } from '@gsync/core';
import { renderReport, type RunReport } from './report.js';

/**
 * Makes sure a run's report can be written, before the run changes anything: a `reports`
 * that is a file, or a folder that cannot be written, is bad config (exit 2), not a report
 * lost after the merges.
 */
export async function checkReportsDir(configDir: string, project: string): Promise<void> {
  const dir = join(configDir, 'reports', project);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(dir, '', `cannot write the run's report there (${code})`, {
      hint: 'reports go to <config dir>/reports/<project>/: make that a writable folder',
      cause: error,
    });
  }
}

/** Writes a run's merge_report.md, once under its start time and once as the latest; returns the first path. */
export async function writeRunReport(configDir: string, report: RunReport): Promise<string> {
  const dir = join(configDir, 'reports', report.project);
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${report.started_at.replace(/[:.]/g, '-')}-merge_report.md`);
  const text = renderReport({ ...report, report_path: path });
  await writeFileAtomic(path, text);
  await writeFileAtomic(join(dir, 'merge_report.md'), text);
  return path;
}
