import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@gsync/core';
import { renderReport, type RunReport } from './report.js';

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
