import { inertCode, inertMarkdown } from '@gsync/core/inert';
import type { Forecast } from '../queue/forecast.js';

/** What one pull-bundles run did, as data (--json) and as merge_report.md. */
export type Outcome = 'merged' | 'conflicted' | 'resolved' | 'withheld' | 'empty' | 'failed' | 'timeout' | 'rejected' | 'stale' | 'waiting' | 'cancelled';

export interface ReportTask {
  task_id: string;
  node: string;
  branch: string;
  title: string;
  outcome: Outcome;
  commits?: number;
  changed_paths?: string[];
  merge_commit?: string;
  conflict_paths?: string[];
  wip_branch?: string;
  reason?: string;
  next_step?: string;
  dispatched_at?: string | null;
  finished_at?: string | null;
  /** Dispatch to the end of the agent's run on the node. */
  run_seconds?: number;
  /** The test gate, when the project has a verify_command. */
  verify?: { passed: boolean; reason: string; seconds: number; log: string; tail?: string };
  /** For a resolution task: the conflicted task it resolves. */
  resolves?: string;
  /** For a conflicted task: the resolution spec written for it, and the task dispatched with it. */
  resolution_spec?: string;
  resolution_task?: string;
  /** Saves the user made in the checkout while this merge updated it: kept there, or the old file kept aside. */
  edits_during_merge?: { kept: string[]; aside: { path: string; saved: string }[] };
  /** Plan A: why this task travelled as a bundle instead of through the shared remote (an alert). */
  downgraded?: string;
  /** Files the node kept out of the result as secrets; they are still on the node. */
  withheld?: { path: string; rule: string }[];
}

export interface RunReport {
  project: string;
  started_at: string;
  finished_at: string;
  main_ref: string;
  main_before: string;
  main_after: string;
  tasks: ReportTask[];
  /** Tasks not back yet; `cancelling` when cancelled and its node has not yet been heard from since. */
  pending: { task_id: string; node: string; node_state: string | null; cancelling?: true }[];
  outstanding: ReportTask[];
  unreachable: { node: string; error: string }[];
  /** Conflicts foreseen among the collected tasks before anything merged. */
  forecast?: Forecast;
  /** With --no-merge: the collected tasks left on their branches for a later pull to merge. */
  unmerged?: { task_id: string; node: string; branch: string }[];
  /** Time spent asking nodes and fetching results, forecasting, and merging (with the test gate), over all rounds. */
  timings?: { collect_seconds: number; forecast_seconds: number; merge_seconds: number };
  report_path?: string;
  exit_code: number;
}

const short = (oid: string | undefined) => (oid ? oid.slice(0, 12) : '-');

function list(items: readonly string[] | undefined, limit = 50): string {
  if (!items || items.length === 0) return '(none)';
  const shown = items.slice(0, limit).map((p) => inertCode(p));
  return shown.join(', ') + (items.length > limit ? ` … and ${items.length - limit} more` : '');
}

/** A markdown code block whose fence is longer than any run of backticks in `text`, so the text cannot close it. */
export function fenced(text: string, info = ''): string {
  const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${info}\n${text.replace(/\n$/, '')}\n${fence}`;
}

function forecastSection(f: Forecast): string[] {
  const out = ['## Conflict forecast (before merging)', ''];
  if (f.with_main.length === 0 && f.pairs.length === 0) out.push('No collected task conflicts with main or with another.');
  for (const m of f.with_main) out.push(`- ${m.task_id} conflicts with main in ${list(m.paths)}`);
  for (const p of f.pairs) out.push(`- ${p.a} and ${p.b} conflict with each other in ${list(p.paths)}`);
  out.push('', `(${f.pairs_checked} of ${f.pairs_total} pairs had overlapping paths and were test-merged)`, '');
  return out;
}

function taskSection(t: ReportTask): string[] {
  const lines = [`### ${t.task_id} on ${t.node}: ${t.outcome}`, '', `- title: ${inertMarkdown(t.title)}`, `- branch: ${inertCode(t.branch)}`];
  if (t.commits !== undefined) lines.push(`- commits: ${t.commits}`);
  if (t.changed_paths) lines.push(`- changed paths: ${list(t.changed_paths)}`);
  if (t.resolves) lines.push(`- resolves the conflict of ${t.resolves}`);
  if (t.run_seconds !== undefined) lines.push(`- time on the node: ${t.run_seconds.toFixed(1)} s`);
  if (t.merge_commit) lines.push(`- merge commit: \`${t.merge_commit}\``);
  if (t.verify) {
    lines.push(
      `- verify_command: ${t.verify.passed ? 'passed' : `failed (${inertMarkdown(t.verify.reason ?? '', 2000)})`} in ${t.verify.seconds.toFixed(1)} s, log \`${t.verify.log}\``,
    );
    if (!t.verify.passed && t.verify.tail)
      lines.push(
        '',
        '  Last lines of its output:',
        '',
        ...fenced(t.verify.tail)
          .split('\n')
          .map((l) => `  ${l}`),
        '',
      );
  }
  if (t.conflict_paths) lines.push(`- conflicting paths: ${list(t.conflict_paths)}`);
  if (t.wip_branch) lines.push(`- work in progress kept on \`${t.wip_branch}\` (never merged automatically)`);
  if (t.withheld && t.withheld.length > 0) {
    lines.push(
      `- withheld on the node as secrets (not sent, not merged): ${t.withheld.map((w) => `${inertCode(w.path)} (${inertMarkdown(w.rule)})`).join(', ')}`,
    );
  }
  if (t.edits_during_merge) {
    const { kept, aside } = t.edits_during_merge;
    if (kept.length > 0)
      lines.push(`- saved in the checkout while this merge updated it, and kept (your version; \`git diff\` shows it against the merge): ${list(kept)}`);
    for (const a of aside) lines.push(`- ${inertCode(a.path)} was saved into the old file while it was replaced; that file is kept at ${inertCode(a.saved)}`);
  }
  if (t.downgraded) lines.push(`- downgraded (it travelled another way than the project's mode): ${inertMarkdown(t.downgraded, 2000)}`);
  if (t.reason) lines.push(`- why: ${inertMarkdown(t.reason, 2000)}`);
  if (t.resolution_spec) lines.push(`- resolution spec: \`${t.resolution_spec}\``);
  if (t.resolution_task) lines.push(`- being resolved by ${t.resolution_task}`);
  if (t.next_step) lines.push(`- next: ${t.next_step}`);
  lines.push('');
  return lines;
}

export function renderReport(r: RunReport): string {
  const count = (o: Outcome) => r.tasks.filter((t) => t.outcome === o).length;
  const out = [
    `# Merge report: ${r.project}`,
    '',
    `- run: ${r.started_at} → ${r.finished_at}`,
    `- ${r.main_ref}: ${short(r.main_before)} → ${short(r.main_after)}`,
    ...(r.timings
      ? [
          `- time: collect ${r.timings.collect_seconds.toFixed(1)} s, forecast ${r.timings.forecast_seconds.toFixed(1)} s, merge ${r.timings.merge_seconds.toFixed(1)} s`,
        ]
      : []),
    `- merged ${count('merged')}, conflicted ${count('conflicted')}, conflicted then resolved ${count('resolved')}, empty ${count('empty')}, failed ${count('failed') + count('timeout')}, rejected ${count('rejected')}, withheld ${count('withheld')}, stale ${count('stale')}, cancelled ${count('cancelled')}, waiting ${count('waiting')}, still running ${r.pending.length}`,
    '',
  ];
  if (r.forecast && r.forecast.pairs_total + r.forecast.with_main.length > 0) out.push(...forecastSection(r.forecast));
  if (r.tasks.length === 0) out.push('Nothing new to collect or merge in this run.', '');
  else out.push('## This run', '', ...r.tasks.flatMap(taskSection));
  if (r.pending.length > 0) {
    out.push(
      '## Still running',
      '',
      ...r.pending.map(
        (p) => `- ${p.task_id} on ${p.node} (${inertMarkdown(p.node_state ?? 'unknown', 40)}${p.cancelling ? ', cancelled: being stopped' : ''})`,
      ),
      '',
    );
  }
  if (r.unreachable.length > 0) {
    out.push('## Nodes not reached', '', ...r.unreachable.map((u) => `- ${u.node}: ${inertMarkdown(u.error, 2000)}`), '');
  }
  if (r.outstanding.length > 0) out.push('## Still needing attention from earlier runs', '', ...r.outstanding.flatMap(taskSection));
  return `${out.join('\n').trimEnd()}\n`;
}
