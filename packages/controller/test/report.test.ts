import { describe, expect, it } from 'vitest';
import { renderReport, type ReportTask, type RunReport } from '@gsync/controller';

const MAIN_BEFORE = '1111111111aa' + 'b'.repeat(28);
const MAIN_AFTER = '2222222222cc' + 'd'.repeat(28);

function task(overrides: Partial<ReportTask> & Pick<ReportTask, 'task_id' | 'outcome'>): ReportTask {
  return {
    node: 'gpu-1',
    branch: `task/proj-${overrides.task_id}-gpu-1`,
    title: `Title of ${overrides.task_id}`,
    ...overrides,
  };
}

function report(overrides: Partial<RunReport> = {}): RunReport {
  return {
    project: 'proj',
    started_at: '2025-01-02T03:00:00.000Z',
    finished_at: '2025-01-02T03:00:09.000Z',
    main_ref: 'refs/heads/main',
    main_before: MAIN_BEFORE,
    main_after: MAIN_AFTER,
    tasks: [],
    pending: [],
    outstanding: [],
    unreachable: [],
    exit_code: 0,
    ...overrides,
  };
}

/** The lines of the `### <id> on ...` section of a rendered report. */
function section(text: string, taskId: string): string {
  const start = text.indexOf(`### ${taskId} on `);
  expect(start, `no section for ${taskId}`).toBeGreaterThanOrEqual(0);
  const end = text.indexOf('\n#', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

describe('renderReport', () => {
  const merged = task({
    task_id: 'S01',
    outcome: 'merged',
    commits: 2,
    changed_paths: ['src/a.ts', 'docs/b.md'],
    merge_commit: MAIN_AFTER,
  });
  const conflicted = task({
    task_id: 'S02',
    node: 'gpu-2',
    branch: 'task/proj-S02-gpu-2',
    outcome: 'conflicted',
    commits: 1,
    changed_paths: ['src/a.ts'],
    conflict_paths: ['src/a.ts', 'weird `name`.txt'],
    reason: 'S01 changed the same lines',
    next_step: 'main was left as it was; resolve by hand: git checkout main && git merge task/proj-S02-gpu-2',
  });
  const empty = task({ task_id: 'S03', outcome: 'empty', commits: 0, changed_paths: [], next_step: 'nothing to merge' });
  const failed = task({
    task_id: 'S04',
    outcome: 'failed',
    wip_branch: 'task/proj-S04-gpu-1-wip',
    reason: 'the agent exited 1',
    next_step: 'read agent.log of proj task S04 on gpu-1, then dispatch again',
  });
  const timedOut = task({ task_id: 'S05', outcome: 'timeout', reason: 'killed after 3600 s' });
  const text = renderReport(
    report({
      tasks: [merged, conflicted, empty, failed, timedOut],
      pending: [
        { task_id: 'S06', node: 'gpu-1', node_state: 'running' },
        { task_id: 'S07', node: 'gpu-3', node_state: null },
      ],
      unreachable: [{ node: 'gpu-3', error: 'connect ECONNREFUSED 10.0.0.3:22' }],
      outstanding: [task({ task_id: 'S00', outcome: 'conflicted', conflict_paths: ['old.txt'], next_step: 'resolve S00' })],
      exit_code: 3,
    }),
  );

  it('heads the report with the project, the run and how main moved', () => {
    expect(text.split('\n').slice(0, 4)).toEqual([
      '# Merge report: proj',
      '',
      '- run: 2025-01-02T03:00:00.000Z → 2025-01-02T03:00:09.000Z',
      '- refs/heads/main: 1111111111aa → 2222222222cc',
    ]);
  });

  it('counts each outcome, timeouts among the failed', () => {
    expect(text).toContain(
      '- merged 1, conflicted 1, conflicted then resolved 0, empty 1, failed 2, rejected 0, withheld 0, stale 0, cancelled 0, waiting 0, still running 2\n',
    );
  });

  it('a merged task shows its branch, commits, paths and merge commit', () => {
    const s = section(text, 'S01');
    expect(s).toContain('### S01 on gpu-1: merged');
    expect(s).toContain('- title: Title of S01');
    expect(s).toContain('- branch: `task/proj-S01-gpu-1`');
    expect(s).toContain('- commits: 2');
    expect(s).toContain('- changed paths: `src/a.ts`, `docs/b.md`');
    expect(s).toContain(`- merge commit: \`${MAIN_AFTER}\``);
    expect(s).not.toContain('- next:');
  });

  it('a conflicted task shows its branch, the conflicting paths, why and what to do next', () => {
    const s = section(text, 'S02');
    expect(s).toContain('### S02 on gpu-2: conflicted');
    expect(s).toContain('- branch: `task/proj-S02-gpu-2`');
    expect(s).toContain("- conflicting paths: `src/a.ts`, `weird 'name'.txt`");
    expect(s).toContain('- why: S01 changed the same lines');
    expect(s).toContain('- next: main was left as it was; resolve by hand: git checkout main && git merge task/proj-S02-gpu-2');
    expect(s).not.toContain('merge commit');
  });

  it('an empty task says it changed nothing', () => {
    const s = section(text, 'S03');
    expect(s).toContain('### S03 on gpu-1: empty');
    expect(s).toContain('- commits: 0');
    expect(s).toContain('- changed paths: (none)');
    expect(s).toContain('- next: nothing to merge');
  });

  it('a failed task points at its work in progress, never merged, and at its log', () => {
    const s = section(text, 'S04');
    expect(s).toContain('### S04 on gpu-1: failed');
    expect(s).toContain('- work in progress kept on `task/proj-S04-gpu-1-wip` (never merged automatically)');
    expect(s).toContain('- why: the agent exited 1');
    expect(s).toContain('- next: read agent.log of proj task S04 on gpu-1, then dispatch again');
  });

  it('lists running tasks, unreachable nodes and earlier tasks still needing attention, in that order', () => {
    const running = text.indexOf('## Still running');
    const unreachable = text.indexOf('## Nodes not reached');
    const outstanding = text.indexOf('## Still needing attention from earlier runs');
    expect(text.indexOf('## This run')).toBeLessThan(running);
    expect(running).toBeLessThan(unreachable);
    expect(unreachable).toBeLessThan(outstanding);
    expect(text).toContain('- S06 on gpu-1 (running)\n- S07 on gpu-3 (unknown)\n');
    expect(text).toContain('- gpu-3: connect ECONNREFUSED 10.0.0.3:22\n');
    const old = section(text, 'S00');
    expect(old).toContain('- conflicting paths: `old.txt`');
    expect(old).toContain('- next: resolve S00');
    expect(outstanding).toBeLessThan(text.indexOf('### S00 on'));
  });

  it('ends in exactly one newline', () => {
    expect(text.endsWith('\n')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(false);
  });
});

describe('renderReport for a quiet run', () => {
  it('says there was nothing to do and shows an unmoved main', () => {
    const text = renderReport(report({ main_after: MAIN_BEFORE }));
    expect(text).toContain('- refs/heads/main: 1111111111aa → 1111111111aa');
    expect(text).toContain('Nothing new to collect or merge in this run.');
    expect(text).not.toContain('## This run');
    expect(text).not.toContain('## Still running');
    expect(text).not.toContain('## Nodes not reached');
    expect(text).not.toContain('## Still needing attention');
  });

  it('shows a dash for a main that did not exist', () => {
    expect(renderReport(report({ main_before: '' }))).toContain('- refs/heads/main: - → 2222222222cc');
  });
});

describe('long path lists', () => {
  it('show the first 50 and say how many more there are', () => {
    const paths = Array.from({ length: 57 }, (_, i) => `f${i}.txt`);
    const text = renderReport(report({ tasks: [task({ task_id: 'S01', outcome: 'merged', changed_paths: paths })] }));
    const line = text.split('\n').find((l) => l.startsWith('- changed paths: '))!;
    expect(line).toContain('`f0.txt`');
    expect(line).toContain('`f49.txt`');
    expect(line).not.toContain('`f50.txt`');
    expect(line.endsWith(' … and 7 more')).toBe(true);
  });
});
