import type { ChalkInstance } from 'chalk';
import stringWidth from 'string-width';
import type { CleanupResult } from './commands/cleanup.js';
import type { DoctorResult } from './commands/doctor.js';
import type { LogsResult } from './commands/logs.js';
import { inert } from '@gsync/core/inert';
import { humanBytes } from '@gsync/core/units';
import type { ProgressEvent } from './context.js';
import { ATTENTION_STATES } from './lifecycle/states.js';
import type { RunReport } from './report/report.js';
import type { ConflictsResult } from './queue/forecast.js';
import type { StatusRow } from './report/status-row.js';
import type { WaitingTask } from './queue/waiting.js';

/** Turns events and results into terminal text. Nothing here decides anything. */

/** Paths from a result (hostile names included), shown one line each way: at most 50, none raw. */
function paths(list: readonly string[] | undefined): string {
  const all = list ?? [];
  return (
    all
      .slice(0, 50)
      .map((p) => inert(p))
      .join(', ') + (all.length > 50 ? ` … and ${all.length - 50} more` : '')
  );
}
export function renderEvent(c: ChalkInstance, e: ProgressEvent): string {
  const mark = e.level === 'error' ? c.red('✖') : e.level === 'warn' ? c.yellow('!') : c.dim('·');
  return `${mark} ${e.level === 'info' ? inert(e.message, 2000) : e.level === 'warn' ? c.yellow(inert(e.message, 2000)) : c.red(inert(e.message, 2000))}`;
}

/** Columns padded by the width a terminal shows: colour codes take none, a wide character two cells. */
export function table(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, stringWidth(cell));
  }
  const pad = (cell: string, i: number) => cell + ' '.repeat(widths[i]! - stringWidth(cell));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : pad(cell, i))).join('  ')).join('\n');
}

const time = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').slice(0, 19) : '-');

export function renderStatus(c: ChalkInstance, rows: readonly StatusRow[]): string {
  if (rows.length === 0) return 'no tasks yet';
  const colour = (s: string) =>
    s === 'merged' || s === 'resolved'
      ? c.green(s)
      : (ATTENTION_STATES as readonly string[]).includes(s)
        ? c.red(s)
        : ['empty', 'cancelled', 'dismissed'].includes(s)
          ? c.dim(s)
          : c.cyan(s);
  // Several projects (status --all): each row says whose it is.
  const many = new Set(rows.map((r) => r.project)).size > 1;
  const asked = rows.some((r) => r.live);
  return table([
    [...(many ? ['PROJECT'] : []), 'TASK', 'NODE', 'STATE', ...(asked ? ['ON THE NODE NOW'] : []), 'BRANCH', 'DISPATCHED', 'FINISHED', 'MERGED'].map((h) =>
      c.bold(h),
    ),
    ...rows.map((r) => [
      ...(many ? [r.project] : []),
      r.task_id,
      r.node,
      colour(r.state === 'dispatched' && r.node_state ? `${r.state}:${inert(r.node_state, 40)}` : r.state),
      ...(asked ? [liveText(c, r.live)] : []),
      r.branch,
      time(r.dispatched_at),
      time(r.finished_at),
      time(r.merged_at),
    ]),
  ]);
}

/** What a node said of a task just now: `running 2m05s`, `queued #2`, or why it did not say. */
function liveText(c: ChalkInstance, live: StatusRow['live']): string {
  if (!live) return '-';
  if (live.error && !live.state) return c.yellow(inert(live.error, 80));
  const state = inert(live.state ?? '?', 40);
  if (live.position) return `${state} #${live.position}`;
  return live.seconds !== undefined ? `${state} ${humanDuration(live.seconds * 1000)}` : state;
}

export function renderRunSummary(c: ChalkInstance, r: RunReport): string {
  const lines = r.tasks.map((t) => {
    const head = `${t.task_id} ${c.dim(`(${t.node})`)}`;
    switch (t.outcome) {
      case 'merged':
        return `${c.green('merged    ')} ${head} ${t.branch} → ${t.merge_commit?.slice(0, 12)}  ${c.dim(`${t.changed_paths?.length ?? 0} path(s)`)}${
          t.edits_during_merge
            ? c.yellow(
                `\n           your saves during the merge were kept: ${paths([...t.edits_during_merge.kept, ...t.edits_during_merge.aside.map((a) => `${a.path} (old file at ${a.saved})`)])}`,
              )
            : ''
        }`;
      case 'conflicted':
        return `${c.red('CONFLICT  ')} ${head} ${t.branch}: ${paths(t.conflict_paths)}${t.resolution_task ? c.dim(` (resolving: ${t.resolution_task})`) : ''}`;
      case 'empty':
        return `${c.dim('empty     ')} ${head} the agent changed nothing`;
      case 'waiting':
        return `${c.yellow('waiting   ')} ${head} ${inert(t.reason ?? '', 2000)}`;
      case 'resolved':
        return `${c.green('resolved  ')} ${head} ${t.branch}: conflicted in ${paths(t.conflict_paths)}; ${inert(t.reason ?? '', 2000)}`;
      case 'rejected':
        return `${c.red('rejected  ')} ${head} ${inert(t.reason ?? '', 2000)}${t.verify?.log ? c.dim(` (log: ${t.verify.log})`) : ''}`;
      case 'cancelled':
        return `${c.yellow('cancelled ')} ${head} ${inert(t.reason ?? '', 2000)}${t.wip_branch ? `; work so far on ${t.wip_branch}, not merged` : ''}`;
      default:
        return `${c.red(t.outcome.padEnd(10))} ${head} ${inert(t.reason ?? '', 2000)}`;
    }
  });
  if (lines.length === 0 && !r.unmerged?.length) lines.push(c.dim('nothing new to collect or merge'));
  if (r.forecast) {
    for (const m of r.forecast.with_main) lines.unshift(c.yellow(`forecast: ${m.task_id} conflicts with main in ${paths(m.paths)}`));
    for (const p of r.forecast.pairs) lines.unshift(c.yellow(`forecast: ${p.a} and ${p.b} conflict in ${paths(p.paths)}`));
  }
  for (const p of r.pending) {
    // A queued task has not started: it waits on its node for one of the node's max_parallel slots.
    const queued = p.node_state === 'queued';
    if (p.cancelling) {
      lines.push(`${c.yellow('cancelling')} ${p.task_id} ${c.dim(`(${p.node})`)} being stopped; a later pull brings back its work`);
      continue;
    }
    lines.push(
      `${c.cyan(queued ? 'queued    ' : 'running   ')} ${p.task_id} ${c.dim(`(${p.node})`)} ${queued ? 'for a free slot on its node' : inert(p.node_state ?? '', 40)}`,
    );
  }
  for (const o of r.outstanding) lines.push(`${c.red(`${o.outcome} (earlier)`.padEnd(10))} ${o.task_id} ${c.dim(`(${o.node})`)} ${o.branch}`);
  for (const u of r.unmerged ?? [])
    lines.push(
      `${c.cyan('collected ')} ${u.task_id} ${c.dim(`(${u.node})`)} ${u.branch}, not merged (--no-merge): a pull merges it, dismiss keeps it off main`,
    );
  lines.push(c.dim(`${r.main_ref}: ${r.main_before.slice(0, 12)} → ${r.main_after.slice(0, 12)}; report: ${r.report_path}`));
  return lines.join('\n');
}

export function renderForecast(c: ChalkInstance, r: ConflictsResult): string {
  const lines: string[] = [];
  if (r.tasks.length === 0) lines.push(c.dim(`no collected task waits to merge into ${r.main_branch}`));
  for (const m of r.with_main) lines.push(`${c.red('conflicts with main')}  ${m.task_id}: ${paths(m.paths)}`);
  for (const p of r.pairs) lines.push(`${c.yellow('conflict pair      ')}  ${p.a} × ${p.b}: ${paths(p.paths)}`);
  if (r.tasks.length > 0 && r.with_main.length + r.pairs.length === 0) lines.push(c.green(`${r.tasks.length} task(s) merge cleanly, in any order`));
  for (const k of r.conflicted)
    lines.push(c.dim(`already conflicted   ${k.task_id}: ${paths(k.paths)}${k.resolved_by ? ` (resolution: ${k.resolved_by})` : ''}`));
  lines.push(
    c.dim(
      `${r.tasks.length} collected task(s) against ${r.main_branch} ${r.main.slice(0, 12)}; ${r.pairs_checked} of ${r.pairs_total} pairs overlapped and were test-merged`,
    ),
  );
  if (r.collected_now.length > 0)
    lines.push(c.dim(`collected from their nodes just now (checked, on their branches, not merged): ${r.collected_now.join(', ')}`));
  if (r.running.length > 0) lines.push(c.dim(`still running, not in the forecast: ${r.running.map((t) => `${t.task_id} (${t.node})`).join(', ')}`));
  for (const u of r.unreachable) lines.push(`${c.red('unreachable')} ${u.node}: ${inert(u.error, 2000)} (its finished tasks are not in the forecast)`);
  return lines.join('\n');
}

export function renderCleanup(c: ChalkInstance, r: CleanupResult): string {
  const verb = r.dry_run ? 'would remove' : 'removed';
  const lines = r.removed.map((i) => `${c.green(verb)} ${i.what.replace('_', ' ')} ${inert(i.name)}${i.bytes > 0 ? c.dim(` (${humanBytes(i.bytes)})`) : ''}`);
  for (const k of r.kept) lines.push(`${c.yellow('kept')} ${k.what.replace('_', ' ')} ${inert(k.name)}: ${inert(k.reason)}`);
  for (const u of r.unreachable) lines.push(`${c.red('unreachable')} ${u.node}: ${inert(u.error, 2000)} (its task dirs are tried again by the next cleanup)`);
  lines.push(
    `${r.dry_run ? 'events that would be dropped' : 'events dropped'} (older than retention_days): ${r.events_dropped}; store ${humanBytes(r.store_bytes.before)}${r.dry_run ? '' : ` → ${humanBytes(r.store_bytes.after)}`}`,
  );
  lines.push(c.bold(`${r.dry_run ? 'would free' : 'freed'} ${humanBytes(r.bytes)}${r.removed.length === 0 ? ' (nothing to clean)' : ''}`));
  return lines.join('\n');
}

/** A time span as people say it: 45s, 2m10s, 1h05m. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

/** At most `width` terminal cells of `text` (a wide character takes two), `…` where it was cut. */
export function fitWidth(text: string, width: number): string {
  if (stringWidth(text) <= width) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    const w = stringWidth(ch);
    if (used + w > width - 1) break;
    out += ch;
    used += w;
  }
  return `${out}…`;
}

/**
 * A task `pull --wait` waits for: "waiting for S01 on n1 (running 2m10s): <its agent's
 * last log line>", the line escaped; cut to `width` cells when given, with the log line dimmed.
 */
export function renderWaiting(c: ChalkInstance, t: WaitingTask, now: Date, width?: number): string {
  const since = t.since ? Date.parse(t.since) : Number.NaN;
  const elapsed = Number.isNaN(since) ? '' : ` ${humanDuration(now.getTime() - since)}`;
  const head = `waiting for ${t.task_id} on ${t.node} (${inert(t.state ?? 'dispatched', 40)}${elapsed})`;
  const text = t.line ? `${head}: ${inert(t.line, 400)}` : head;
  const shown = width === undefined ? text : fitWidth(text, width);
  return shown.length > head.length ? `${shown.slice(0, head.length)}${c.dim(shown.slice(head.length))}` : shown;
}

/** How reading a task's log ended: its final state (and why, for a failure), or that it goes on. */
export function renderLogEnd(c: ChalkInstance, r: LogsResult): string {
  const where = `${r.task_id} on ${r.node}`;
  const state = inert(r.state ?? 'received', 40);
  if (r.final) {
    const colour = r.state === 'done' ? c.green : r.state === 'empty' ? c.dim : c.red;
    return `${where} ended: ${colour(state)}${r.error ? c.dim(` (${inert(r.error, 300)})`) : ''}`;
  }
  if (r.stopped) return c.yellow(`${where}: its run stopped before the task ended (while ${state}); the next pull finishes it`);
  return `${where}: ${state}, not ended yet`;
}

/** One line a check: ok, a note (works, could be better) or a problem with its fix; then what it adds up to. */
export function renderDoctor(c: ChalkInstance, r: DoctorResult): string {
  const rows = [['', 'config', c.green('ok'), `loaded ${r.config.nodes_file} and ${r.config.projects_file}`]];
  for (const n of r.nodes) {
    for (const k of n.checks) {
      const mark = !k.ok ? c.red('problem') : k.fix ? c.yellow('note') : c.green('ok');
      const fix = k.fix ? (k.ok ? `; ${inert(k.fix, 500)}` : c.bold(`; fix: ${inert(k.fix, 500)}`)) : '';
      rows.push([n.node, k.name, mark, `${inert(k.detail, 500)}${fix}`]);
    }
  }
  if (r.nodes.length === 0) return `${table(rows)}\nno node in ${r.config.nodes_file} yet: gsync-ctl node add NAME --host HOST`;
  const failing = r.nodes.filter((n) => n.checks.some((k) => !k.ok));
  const problems = failing.reduce((sum, n) => sum + n.checks.filter((k) => !k.ok).length, 0);
  const summary =
    failing.length === 0
      ? c.green(`every check passed on ${r.nodes.length} node(s)`)
      : c.red(`${problems} problem(s) on ${failing.map((n) => n.node).join(', ')} (of ${r.nodes.length} node(s))`);
  return `${table(rows)}\n${summary}`;
}
