import { Chalk } from 'chalk';
import { once } from 'node:events';
import { join } from 'node:path';
import yargs from 'yargs';
import { BusyError, ConfigError, GsyncError, ProtocolError, SshError, UsageError, errorMessage } from '@gsync/core/errors';
import { inert, inertJson, inertLog } from '@gsync/core/inert';
import { humanBytes } from '@gsync/core/units';
import type { Context } from './context.js';
import { type PromptInput, passphrasePrompt } from './ssh/passphrase.js';
import { colourLevel } from './colour.js';
import { WaitingView } from './live-view.js';
import { TransferView } from './transfer-view.js';
import { EXIT } from './exit-codes.js';
import { renderCleanup, renderDoctor, renderEvent, renderForecast, renderLogEnd, renderRunSummary, renderStatus } from './render.js';
import { isDirectory } from './is-directory.js';

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Where the built gsync-node file is, to ship to nodes. */
  nodeToolPath: string;
  now?: () => Date;
  /** This process's id: the owner of its locks. */
  pid: number;
  /** Where relative paths in flags are from (default: this process's working dir). */
  cwd?: string;
  /** Whether stdout and stderr are terminals: each stream gets colour on its own. */
  stdoutIsTTY?: boolean;
  stderrIsTTY?: boolean;
  /** How often `pull --wait` writes its line per task when stderr is no terminal (default 30 s). */
  waitingEveryMs?: number;
  /** stdin, when it is a terminal: an encrypted key's passphrase is asked on it. */
  terminal?: PromptInput;
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof ConfigError) return EXIT.usage;
  // A node that answered outside the protocol is a node problem, like one that cannot be reached.
  if (error instanceof SshError || error instanceof ProtocolError) return EXIT.ssh;
  if (error instanceof BusyError) return EXIT.busy;
  return EXIT.internal;
}

declare const GSYNC_VERSION: string;
/** The version of this build (the same for gsync-ctl and the gsync-node it installs). */
export const VERSION = typeof GSYNC_VERSION === 'string' ? GSYNC_VERSION : '0.0.0-dev';

/** The flags of node add and project add that take a value. */
const ENTRY_FLAGS = 'host port user identity-file known-hosts work-root max-parallel node-bin transport home repo repo-url main-branch sync-mode'.split(' ');

/** Every flag some command takes: what a mistyped one is compared with. */
const FLAGS = [
  ...'config-dir json verbose quiet color accept-new timeout help version'.split(' '),
  ...'project spec task node wait interval any-order agent all older-than dry-run force reason'.split(' '),
  ...ENTRY_FLAGS,
  'follow',
  'offline',
  'watch',
  'no-merge',
  'lines',
  'fix',
];

/**
 * The version of every `--json` shape (results on stdout, errors on stderr): raised when a
 * field changes meaning or goes away, not when one is added.
 */
export const SCHEMA_VERSION = 1;

/** A command's result as `--json` prints it: the object with its schema_version first. */
const asJson = (value: object) => inertJson({ schema_version: SCHEMA_VERSION, ...value }, 2);

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** Flags followed by a value (the value is not the command). */
const VALUED = new Set(['config-dir', 'timeout', 'project', 'spec', 'task', 'node', 'interval', 'agent', 'older-than', 'reason', 'lines', ...ENTRY_FLAGS]);

/** Commands that hold commands of their own (`node add`). */
const GROUPS = new Set(['node', 'project']);

/** The first word that is neither a flag nor a flag's value (two for `node add`): the command as typed. */
function commandWord(argv: readonly string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      words.push(a);
      if (!GROUPS.has(words[0]!) || words.length === 2) break;
    } else if (a.startsWith('--') && !a.includes('=') && VALUED.has(a.slice(2))) i++;
  }
  return words.length > 0 ? words.join(' ') : undefined;
}

/** yargs' words for a typo, made into one line that says what was wrong and what was meant. */
function usageError(message: string, argv: readonly string[]): UsageError {
  const command = commandWord(argv);
  const help = { hint: `gsync-ctl ${command ? `${command} ` : ''}--help lists what it takes` };
  const meant = /^Did you mean (.+)\?$/.exec(message);
  if (meant) {
    const group = command?.includes(' ') ? `${command.split(' ')[0]} ` : '';
    return new UsageError(`unknown command "${command}": did you mean ${group}${meant[1]}?`, { hint: `gsync-ctl ${group}--help lists the commands` });
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (unknown) {
    const words = unknown[1]!.split(', ');
    const described = words.map((word) => {
      const close = FLAGS.map((f) => [f, editDistance(word, f)] as const).sort((x, y) => x[1] - y[1])[0]!;
      const flag = argv.some((a) => a === word) ? `"${word}"` : `--${word}`;
      return close[1] <= 2 && close[1] < word.length ? `${flag} (did you mean --${close[0]}?)` : flag;
    });
    return new UsageError(`unknown ${words.length > 1 ? 'arguments' : 'argument'} ${described.join(', ')}`, help);
  }
  const missing = /^Missing required arguments?: (.+)$/.exec(message);
  if (missing) {
    const needed = missing[1]!.split(', ');
    // A required flag is usually missing because it was mistyped: say which.
    for (const token of argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]!)) {
      if (FLAGS.includes(token)) continue;
      const meant = needed.find((n) => editDistance(token, n) <= 2);
      if (meant) return new UsageError(`unknown argument --${token} (did you mean --${meant}?)`, help);
    }
    return new UsageError(`missing ${needed.map((n) => `--${n}`).join(', ')}`, help);
  }
  // Only `node add` and `project add` take a word after the command.
  if (/^Not enough non-option arguments/.test(message)) return new UsageError(`missing NAME: gsync-ctl ${command} NAME`, help);
  return new UsageError(message);
}

interface Global {
  configDir?: string;
  verbose: boolean;
  json: boolean;
  quiet: boolean;
  acceptNew: boolean;
  color?: boolean;
  timeout?: number;
}

/** Completions as yargs finds them, less a one-letter alias offered after "--" as "--q", which no one can type. */
function withoutLongShorts(
  _current: string,
  _argv: unknown,
  complete: (onCompleted: (error: Error | null, found: string[] | undefined) => void) => void,
  done: (completions: string[]) => void,
): void {
  complete((error, found) => done(error ? [] : (found ?? []).filter((c) => !/^--.(:|$)/.test(c))));
}

/**
 * gsync-ctl: flags are parsed here and handed to the commands, each an
 * `async (ctx, options) => result` in commands/, imported when used.
 * Only this function turns errors into exit codes.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  // c colours what goes to stdout, ce what goes to stderr; --color/--no-color is applied once parsed.
  const c = new Chalk({ level: colourLevel(io.env, undefined, Boolean(io.stdoutIsTTY)) });
  const ce = new Chalk({ level: colourLevel(io.env, undefined, Boolean(io.stderrIsTTY)) });
  const print = (s: string) => io.stdout.write(`${s}\n`);
  // While pull --wait shows its tasks on a terminal, every other line goes above them.
  let waitingView: WaitingView | undefined;
  // Made when a first transfer starts; on a terminal its bars go under everything else too.
  let transferView: TransferView | undefined;
  const say = (s: string) => {
    if (waitingView) waitingView.say(s);
    else if (transferView) transferView.say(s);
    else io.stderr.write(`${s}\n`);
  };
  let exitCode: number = EXIT.ok;
  let verbose = false;

  const waitingViewFor = () =>
    new WaitingView({
      out: io.stderr,
      // A terminal that cannot move its cursor gets the plain lines.
      tty: Boolean(io.stderrIsTTY) && io.env.TERM !== 'dumb',
      columns: () => (io.stderr as { columns?: number }).columns || Number(io.env.COLUMNS) || 80,
      now: io.now ?? (() => new Date()),
      everyMs: io.waitingEveryMs ?? 30_000,
      c: ce,
      below: (width) => transferView?.lines(width) ?? [],
    });

  const transfers = () =>
    (transferView ??= new TransferView({
      out: io.stderr,
      tty: Boolean(io.stderrIsTTY) && io.env.TERM !== 'dumb',
      columns: () => (io.stderr as { columns?: number }).columns || Number(io.env.COLUMNS) || 80,
      now: () => (io.now ? io.now().getTime() : Date.now()),
      c: ce,
      // pull --wait's tasks hold the bottom of the terminal: they draw the bars under them.
      host: () => waitingView,
    }));

  const context = (g: Global): Context => {
    const home = io.env.HOME ?? '/';
    const configDir = g.configDir ?? io.env.GSYNC_HOME ?? join(home, '.gsync');
    return {
      configDir,
      home,
      env: io.env,
      now: io.now ?? (() => new Date()),
      pid: io.pid,
      nodeToolPath: io.nodeToolPath,
      acceptNew: g.acceptNew,
      askPassphrase: io.terminal ? passphrasePrompt(io.terminal, io.stderr) : undefined,
      deadline: g.timeout === undefined ? undefined : Date.now() + g.timeout * 1000,
      onEvent: (e) => {
        // A failed dispatch is said once, by the command's own error line (it is still in the event log).
        if (e.kind === 'dispatch_failed') return;
        if (e.level !== 'info' || !(g.json || g.quiet)) say(renderEvent(ce, e));
      },
      // Bytes, rate and time left of each transfer on stderr; nothing of it under --quiet or --json.
      ...(g.json || g.quiet ? {} : { onTransfer: (start) => transfers().start(start) }),
    };
  };

  const cli = yargs([...argv])
    .scriptName('gsync-ctl')
    .usage('$0 <command> [options]\n\nSend coding-agent tasks to worker nodes over SSH and merge every result back through git.')
    .option('config-dir', { type: 'string', describe: 'folder with nodes.json and projects.json (default: $GSYNC_HOME, else ~/.gsync)' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON' })
    .option('verbose', { type: 'boolean', default: false, describe: 'show error details' })
    .option('quiet', {
      alias: 'q',
      type: 'boolean',
      default: false,
      describe: 'print only the result, and errors and warnings on stderr: no progress lines',
    })
    .option('accept-new', { type: 'boolean', default: false, describe: 'record the host key of a node never seen before' })
    .option('timeout', {
      type: 'number',
      describe:
        'give up after this many seconds: node commands still running are ended, nothing new starts, what was done is reported (pull --wait stops waiting)',
    })
    .option('color', {
      type: 'boolean',
      describe: 'colour the output even when piped; --no-color never (default: on a terminal, unless NO_COLOR; FORCE_COLOR forces it)',
    })
    .middleware((g) => {
      // Before validation, so a mistyped flag's error line already heeds --no-color.
      c.level = colourLevel(io.env, g.color, Boolean(io.stdoutIsTTY));
      ce.level = colourLevel(io.env, g.color, Boolean(io.stderrIsTTY));
    }, true)
    .middleware((g) => {
      verbose = Boolean(g.verbose);
      if (g.timeout !== undefined && !(g.timeout > 0)) throw new UsageError('--timeout must be a number of seconds above 0, such as --timeout 600');
    })
    .command(
      'dispatch',
      'send a task to a node and start its agent',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('spec', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'the task, as a text/markdown file; repeat it, or name a folder (its .md and .txt files), to send several at once',
          })
          .option('task', { type: 'string', describe: 'task id, with a single spec (default: the next free S01, S02, ...)' })
          .option('node', { type: 'string', describe: 'node name (default: the least busy node, for each spec)' })
          .example('$0 dispatch --project web --spec tasks/login.md', 'one task to the least busy node')
          .example('$0 dispatch --project web --spec tasks/', 'every .md and .txt in tasks/, spread over the nodes')
          .example('$0 dispatch --project web --spec fix.md --node gpu1 --task FIX1', 'a chosen node and task id')
          .epilogue('exit codes: 0 sent, 2 bad input, 5 a node could not be reached (see the README for all)'),
      async (a) => {
        const specs = a.spec.map(String);
        const folder = await isDirectory(specs[0] ?? '');
        if (specs.length === 1 && !folder) {
          const { dispatch } = await import('./commands/dispatch.js');
          const r = await dispatch(context(a as unknown as Global), { project: a.project, spec: specs[0]!, task: a.task, node: a.node });
          if (!a.json) for (const w of r.warnings) say(`${ce.yellow('warning:')} ${w}`);
          print(a.json ? asJson(r) : `dispatched ${c.bold(r.task_id)} to ${c.bold(r.node)} on branch ${c.cyan(r.branch)}`);
          return;
        }
        if (a.task !== undefined) throw new UsageError('--task names one task: give it with a single --spec file');
        const { dispatchAll } = await import('./commands/dispatch.js');
        const r = await dispatchAll(context(a as unknown as Global), { project: a.project, spec: specs, node: a.node });
        if (a.json) print(asJson({ dispatched: r.dispatched, failed: r.failed.map(({ spec, error }) => ({ spec, error })) }));
        for (const d of r.dispatched) {
          if (!a.json) for (const w of d.warnings) say(`${ce.yellow('warning:')} ${w}`);
          if (!a.json) print(`dispatched ${c.bold(d.task_id)} to ${c.bold(d.node)} on branch ${c.cyan(d.branch)}`);
        }
        // Under --json the failures are in the answer's `failed`, and only there.
        if (!a.json) for (const f of r.failed) say(`${ce.red('gsync-ctl:')} ${inert(f.spec)}: ${inert(f.error, 2000)}`);
        if (r.failed.length > 0) exitCode = exitCodeOf(r.failed[0]!.cause);
      },
    )
    .command(
      ['pull-bundles', 'pull'],
      'collect finished tasks, verify them and merge them into the main branch',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('wait', { type: 'boolean', default: false, describe: 'keep polling until no task is running' })
          .option('interval', { type: 'number', default: 5, describe: 'seconds between polls with --wait' })
          .option('any-order', { type: 'boolean', default: false, describe: 'merge each task once collected, not strictly in dispatch order' })
          .option('merge', {
            type: 'boolean',
            default: true,
            describe: 'merge what is collected; --no-merge collects and checks finished tasks, keeps them on their branches and merges nothing',
          })
          .example('$0 pull --project web', 'collect and merge what has finished, once')
          .example('$0 pull --project web --wait --timeout 3600', 'wait for every running task (at most an hour), merging as they finish')
          .example('$0 pull --project web --no-merge', 'bring finished work home and check it, merge nothing yet')
          .epilogue('exit codes: 0 all merged, 3 a task needs you (conflict, failure, rejection), 4 tasks still running, 5 a node could not be reached'),
      async (a) => {
        const { pullBundles } = await import('./commands/pull.js');
        // What runs where, and each agent's last line, while it waits; nothing of it under --quiet or --json.
        const view = a.wait && !a.quiet && !a.json ? waitingViewFor() : undefined;
        waitingView = view;
        const r = await pullBundles(context(a as unknown as Global), {
          project: a.project,
          wait: a.wait,
          interval: a.interval,
          timeout: a.timeout,
          anyOrder: a.anyOrder,
          noMerge: !a.merge,
          ...(view ? { onWaiting: (tasks: Parameters<WaitingView['update']>[0]) => view.update(tasks) } : {}),
        }).finally(() => {
          view?.close();
          waitingView = undefined;
        });
        print(a.json ? asJson(r) : renderRunSummary(c, r));
        exitCode = r.exit_code;
      },
    )
    .command(
      'conflicts',
      'foresee conflicts among finished tasks, with main and with each other, before merging (finished work is collected from the nodes first, never merged)',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('offline', { type: 'boolean', default: false, describe: 'only tasks collected already: ask no node' })
          .example('$0 conflicts --project web', 'collect what has finished, then say which tasks would conflict')
          .epilogue('exit codes: 0 no conflict foreseen, 3 a conflict is foreseen'),
      async (a) => {
        const { conflicts } = await import('./commands/conflicts.js');
        const r = await conflicts(context(a as unknown as Global), { project: a.project, offline: a.offline });
        print(a.json ? asJson(r) : renderForecast(c, r));
        if (r.with_main.length + r.pairs.length > 0) exitCode = EXIT.attention;
      },
    )
    .command(
      'resolve',
      'dispatch an agent to resolve a conflicted task on top of the current main branch',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('task', { type: 'string', demandOption: true, describe: 'the conflicted task' })
          .option('node', { type: 'string', describe: 'node name (default: the least busy node)' })
          .option('agent', { type: 'string', describe: 'agent profile (default: the conflict_handler, else the project agent)' })
          .example('$0 resolve --project web --task S03', 'an agent merges S03 into main as it is now and resolves the conflict')
          .example('$0 resolve --project web --task S03 --agent codex --node gpu1', 'with another agent profile, on a chosen node'),
      async (a) => {
        const { resolve } = await import('./commands/resolve.js');
        const r = await resolve(context(a as unknown as Global), { project: a.project, task: a.task, node: a.node, agent: a.agent });
        print(a.json ? asJson(r) : `dispatched ${c.bold(r.task_id)} to ${c.bold(r.node)} to resolve ${r.resolves} (spec: ${r.spec_path})`);
      },
    )
    .command(
      'retry',
      'send a stale, failed, timed-out, rejected, withheld, cancelled or dismissed task again, by default to another node',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('task', { type: 'string', demandOption: true, describe: 'the task to send again' })
          .option('node', { type: 'string', describe: 'node name (default: the least busy other node)' })
          .example('$0 retry --project web --task S02', "S02's spec again, as a new task on another node"),
      async (a) => {
        const { retry } = await import('./commands/retry.js');
        const r = await retry(context(a as unknown as Global), { project: a.project, task: a.task, node: a.node });
        print(a.json ? asJson(r) : `dispatched ${c.bold(r.task_id)} to ${c.bold(r.node)} on branch ${c.cyan(r.branch)} (retry of ${r.retry_of})`);
      },
    )
    .command(
      'cancel',
      "stop a running task: its node takes it off the queue or stops its agent's process group; the next pull brings its work back as a -wip branch, never merged",
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('task', { type: 'string', demandOption: true, describe: 'the task to stop (dispatched, or stale)' })
          .option('reason', { type: 'string', describe: 'why it is stopped: kept in the event log and the pull report' })
          .example('$0 cancel --project web --task S03 --reason "wrong spec"', 'stop S03 wherever it runs')
          .example('$0 pull --project web', 'then: bring back what it had done, on task/web-S03-<node>-wip')
          .epilogue(
            'exit codes: 0 cancelled (or already), 2 no such task, or it has ended or was never dispatched, 5 the node could not be told (the cancel is recorded)',
          ),
      async (a) => {
        const { cancel } = await import('./commands/cancel.js');
        const r = await cancel(context(a as unknown as Global), { project: a.project, task: a.task, reason: a.reason });
        if (a.json) {
          print(asJson(r));
          return;
        }
        const did = r.node_answer?.did;
        const what =
          r.state === 'cancelled'
            ? `its work so far is on ${r.wip_branch}, not merged`
            : did === 'dequeued'
              ? `taken off ${r.node}'s queue before it ran`
              : did === 'nothing'
                ? `it had already ended on ${r.node} (${inert(r.node_answer?.state ?? 'gone', 40)}); the next pull brings back what it made on ${r.wip_branch}, never merged`
                : `its agent on ${r.node} was stopped; the next pull brings back what it had done on ${r.wip_branch}, never merged`;
        const head = r.already ? `${c.bold(r.task_id)} is already cancelled` : `cancelled ${c.bold(r.task_id)}`;
        print(`${head}: ${what}${r.reason && !r.already ? c.dim(` (${inert(r.reason, 200)})`) : ''}`);
      },
    )
    .command(
      'dismiss',
      'set a failed, timed-out, rejected, withheld or conflicted task aside, so that pull stops asking for it (exit 0 again), or keep a collected one from merging; its branches are kept',
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('task', { type: 'string', demandOption: true, describe: 'the task to set aside' })
          .option('reason', { type: 'string', describe: 'why: kept in the event log' })
          .example('$0 dismiss --project web --task S02 --reason "done by hand"', 'S02 failed; pull no longer exits 3 for it')
          .example('$0 dismiss --project web --task S03', 'S03 was collected by pull --no-merge: the next pull leaves it off main')
          .example('$0 retry --project web --task S02', 'a dismissed task can still be sent again')
          .epilogue('exit codes: 0 dismissed (or already), 2 no such task, or it is running, merged or otherwise needs nothing'),
      async (a) => {
        const { dismiss } = await import('./commands/dismiss.js');
        const r = await dismiss(context(a as unknown as Global), { project: a.project, task: a.task, reason: a.reason });
        if (a.json) {
          print(asJson(r));
          return;
        }
        const kept = r.branches.length > 0 ? `; kept ${r.branches.map((b) => c.cyan(b)).join(', ')}` : '';
        print(`${r.already ? `${c.bold(r.task_id)} is already dismissed` : `dismissed ${c.bold(r.task_id)} (${r.was})`}${kept}`);
      },
    )
    .command(
      'status',
      "show each task's node, state, branch and times, and what its node says of it now",
      (y) =>
        y
          .option('project', { type: 'string', describe: 'project name from projects.json' })
          .option('all', { type: 'boolean', default: false, describe: 'every project in projects.json' })
          .option('offline', { type: 'boolean', default: false, describe: 'the store alone: ask no node' })
          .option('watch', { type: 'number', describe: 'refresh every SECONDS (default 2) until Ctrl-C; in place on a terminal' })
          .example('$0 status --project web', "web's tasks, each running one as its node sees it now")
          .example('$0 status --all --offline', 'every project, from the store alone (no SSH)')
          .example('$0 status --project web --watch 5', 'the same, refreshed every 5 seconds'),
      async (a) => {
        const { status } = await import('./commands/status.js');
        const ctx = context(a as unknown as Global);
        const ask = () => status(ctx, { project: a.project, all: a.all, offline: a.offline });
        if (a.watch === undefined) {
          const rows = await ask();
          print(a.json ? asJson({ tasks: rows }) : renderStatus(c, rows));
          return;
        }
        const every = a.watch > 0 ? a.watch : 2;
        // Runs until Ctrl-C or --timeout: nothing here writes, so stopping at any point leaves nothing half done.
        for (;;) {
          const rows = await ask();
          if (a.json) print(inertJson({ schema_version: SCHEMA_VERSION, tasks: rows }));
          else {
            const head = `${ctx.now().toISOString().replace('T', ' ').slice(0, 19)}  every ${every} s, Ctrl-C stops`;
            io.stdout.write(`${io.stdoutIsTTY ? '\x1b[H\x1b[2J' : '\n'}${c.dim(head)}\n${renderStatus(c, rows)}\n`);
          }
          if (ctx.deadline !== undefined && ctx.deadline - Date.now() <= every * 1000) return;
          await new Promise((r) => setTimeout(r, every * 1000));
        }
      },
    )
    .command(
      'logs',
      "show a task's agent log, read from its node; --follow keeps reading until the task ends",
      (y) =>
        y
          .option('project', { type: 'string', demandOption: true, describe: 'project name from projects.json' })
          .option('task', { type: 'string', demandOption: true, describe: 'the task whose agent.log to show' })
          .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep reading as the log grows, until the task ends (Ctrl-C stops)' })
          .option('lines', { alias: 'n', type: 'number', describe: 'only the last N lines of what is there now (default: all of its last MiB)' })
          .example('$0 logs --project web --task S03', "what S03's agent has written so far")
          .example('$0 logs --project web --task S03 -f -n 20', 'its last 20 lines, then every new one until it ends')
          .epilogue(
            'control characters are shown escaped (\\x1b), lines and tabs kept. With --json: one JSON line per piece, {"log": text} or {"skipped": bytes}, then {"end": {...}}.\n' +
              'exit codes: 0 shown (with --follow: until the task ended), 2 no such project or task, or its task dir is gone from the node, 4 the task is not on its node yet, or with --follow it had not ended when reading stopped (--timeout, or its run on the node was killed), 5 the node could not be reached',
          ),
      async (a) => {
        if (a.lines !== undefined && !(Number.isInteger(a.lines) && a.lines >= 0))
          throw new UsageError('--lines must be a whole number of at least 0, such as --lines 50');
        const { logs } = await import('./commands/logs.js');
        // Held back until stdout takes it: the node's reading waits with it.
        let unended = false;
        const write = (text: string) => {
          unended = !text.endsWith('\n');
          return io.stdout.write(text) ? undefined : once(io.stdout, 'drain').then(() => undefined);
        };
        const r = await logs(context(a as unknown as Global), {
          project: a.project,
          task: a.task,
          follow: a.follow,
          lines: a.lines,
          onLog: (piece) => {
            if (a.json)
              return write(`${inertJson({ schema_version: SCHEMA_VERSION, ...(piece.kind === 'text' ? { log: piece.text } : { skipped: piece.bytes }) })}\n`);
            if (piece.kind === 'text') return write(inertLog(piece.text));
            say(ce.dim(`… ${humanBytes(piece.bytes)} of the log left out here: a read brings at most its last MiB`));
          },
        });
        if (!r.on_node && r.task_state !== 'dispatching') {
          throw new UsageError(`task ${r.task_id} is not on ${r.node}: its task dir is gone (removed by cleanup, or by hand)`);
        }
        if (a.json) print(inertJson({ schema_version: SCHEMA_VERSION, end: r }));
        if (!r.on_node) {
          say(`task ${r.task_id} is not on ${r.node} yet: it is still being sent`);
          exitCode = EXIT.pending;
          return;
        }
        // On a terminal the state line starts a line of its own, even after a log that does not end with one.
        if (unended && io.stdoutIsTTY) io.stdout.write('\n');
        if (!a.json) say(renderLogEnd(ce, r));
        if (a.follow && !r.final) exitCode = EXIT.pending;
      },
    )
    .command(
      'cleanup',
      'remove what finished tasks left: merged branches, gsync refs, reports, task dirs on the nodes; old events',
      (y) =>
        y
          .option('project', { type: 'string', describe: 'project name from projects.json' })
          .option('all', { type: 'boolean', default: false, describe: 'every project' })
          .option('older-than', { type: 'string', describe: 'only what finished longer ago than this: 30d, 12h, 90m, 45s (default: 0, everything finished)' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'list what would go and how many bytes it frees; remove nothing' })
          .example('$0 cleanup --project web --older-than 30d --dry-run', 'what would go, and how much it frees')
          .example('$0 cleanup --all --older-than 30d', 'clean every project'),
      async (a) => {
        const { cleanup } = await import('./commands/cleanup.js');
        const r = await cleanup(context(a as unknown as Global), { project: a.project, all: a.all, olderThan: a.olderThan, dryRun: a.dryRun });
        print(a.json ? asJson(r) : renderCleanup(c, r));
        if (r.unreachable.length > 0) exitCode = EXIT.ssh;
      },
    )
    .command(
      'init',
      'create the config dir with nodes.json and projects.json full of commented examples; an existing file is left alone',
      (y) => y.example('$0 init', 'start ~/.gsync (or $GSYNC_HOME)').example('$0 init --config-dir ./team-gsync', 'start a config dir in another folder'),
      async (a) => {
        const { init } = await import('./commands/init.js');
        const r = await init(context(a as unknown as Global));
        if (a.json) {
          print(asJson(r));
          return;
        }
        for (const path of r.created) print(`created ${path}`);
        for (const path of r.kept) print(`kept ${path}: it exists already`);
        print('next: gsync-ctl node add NAME --host HOST, then gsync-ctl project add NAME --repo PATH, then gsync-ctl doctor');
      },
    )
    .command('node', 'change nodes.json from the command line (its comments kept)', (y) =>
      y
        .command(
          'add <name>',
          'add a node to nodes.json, keeping its comments and layout; nothing is written unless the config still loads',
          (y) =>
            y
              .positional('name', { type: 'string', demandOption: true, describe: 'node name: letters, digits, ".", "_" or "-"' })
              .option('host', { type: 'string', describe: 'host name, IP, or an alias from ~/.ssh/config (needed for an ssh node)' })
              .option('port', { type: 'number', describe: "SSH port (default: the ssh config's, else 22)" })
              .option('user', { type: 'string', describe: "login user (default: the ssh config's)" })
              .option('identity-file', { type: 'string', describe: "private key file; a relative path is from here (default: the ssh config's)" })
              .option('known-hosts', { type: 'string', describe: "known_hosts file to check the host key against (default: the ssh config's)" })
              .option('work-root', { type: 'string', describe: "where task dirs go on the node; ~/ is the node user's home (default: ~/dispatch)" })
              .option('max-parallel', { type: 'number', describe: 'agents running at once on the node; more wait there, queued (default: 4)' })
              .option('agent', { type: 'string', describe: 'agent profile: claude, codex, or one from "agents" in nodes.json (default: claude)' })
              .option('node-bin', { type: 'string', describe: 'the Node.js binary on the node (default: node)' })
              .option('transport', { type: 'string', describe: 'ssh, or local: a folder on this machine plays the node (default: ssh)' })
              .option('home', { type: 'string', describe: "local nodes: the folder that plays the node user's home (default: nodes/NAME in the config dir)" })
              .option('force', { type: 'boolean', default: false, describe: 'replace a node of the same name (without it, exit 2)' })
              .example('$0 node add gpu-1 --host 10.0.0.7 --user alice --identity-file ~/.ssh/id_ed25519', 'a node reached over SSH')
              .example('$0 node add build --host build.lan --max-parallel 8 --agent codex', 'more agents at once, running codex')
              .example('$0 node add gpu-1 --host 10.0.0.8 --force', 'replace the entry of gpu-1'),
          async (a) => {
            const { nodeAdd } = await import('./commands/node-add.js');
            const r = await nodeAdd(context(a as unknown as Global), {
              name: a.name,
              transport: a.transport,
              host: a.host,
              port: a.port,
              user: a.user,
              identityFile: a.identityFile,
              knownHosts: a.knownHosts,
              workRoot: a.workRoot,
              home: a.home,
              nodeBin: a.nodeBin,
              agent: a.agent,
              maxParallel: a.maxParallel,
              force: a.force,
              cwd: io.cwd ?? process.cwd(),
            });
            print(a.json ? asJson(r) : `${r.action} node ${c.bold(r.node)} ${r.action === 'added' ? 'to' : 'in'} ${r.file}`);
          },
        )
        .demandCommand(1, 'name what to do: gsync-ctl node add NAME --host HOST'),
    )
    .command('project', 'change projects.json from the command line (its comments kept)', (y) =>
      y
        .command(
          'add <name>',
          'add a project to projects.json, keeping its comments and layout; nothing is written unless the config still loads',
          (y) =>
            y
              .positional('name', { type: 'string', demandOption: true, describe: 'project name: letters, digits, ".", "_" or "-"' })
              .option('repo', { type: 'string', demandOption: true, describe: 'the repository on this machine; a relative path is from here' })
              .option('main-branch', { type: 'string', describe: 'the branch tasks start from and merge into (default: main)' })
              .option('sync-mode', {
                type: 'string',
                describe: 'bundle (over SSH) or git (through the shared remote --repo-url) (default: git_config.default_sync_mode)',
              })
              .option('repo-url', { type: 'string', describe: 'the shared remote of git mode, as git takes it, without credentials' })
              .option('agent', { type: 'string', describe: "agent profile for this project's tasks; wins over the node's (default: the node's)" })
              .option('force', { type: 'boolean', default: false, describe: 'replace a project of the same name (without it, exit 2)' })
              .example('$0 project add web --repo ~/src/web', 'tasks travel as bundles over SSH')
              .example('$0 project add api --repo . --main-branch trunk --sync-mode git --repo-url git@github.com:me/api.git', 'through a shared remote')
              .example('$0 project add web --repo ~/src/web-next --force', 'replace the entry of web'),
          async (a) => {
            const { projectAdd } = await import('./commands/project-add.js');
            const r = await projectAdd(context(a as unknown as Global), {
              name: a.name,
              repo: a.repo,
              mainBranch: a.mainBranch,
              syncMode: a.syncMode,
              repoUrl: a.repoUrl,
              agent: a.agent,
              force: a.force,
              cwd: io.cwd ?? process.cwd(),
            });
            print(a.json ? asJson(r) : `${r.action} project ${c.bold(r.project)} ${r.action === 'added' ? 'to' : 'in'} ${r.file}`);
            if (!a.json) for (const w of r.warnings) say(`${ce.yellow('warning:')} ${inert(w, 500)}`);
          },
        )
        .demandCommand(1, 'name what to do: gsync-ctl project add NAME --repo PATH'),
    )
    .command(
      'doctor',
      'check each node as a dispatch would use it (ssh config, reachable, host key, login, Node.js, git, gsync-node, work_root, free disk, the agent), one line a check with the fix for each problem',
      (y) =>
        y
          .option('node', { type: 'string', describe: 'check this node only (default: every node in nodes.json)' })
          .option('project', { type: 'string', describe: "check this project's agent on the nodes (default: the agents of every project)" })
          .option('fix', {
            type: 'boolean',
            default: false,
            describe: 'install or replace gsync-node where it is missing or another build (without it, nothing on a node is changed)',
          })
          .example('$0 doctor', 'every node, changing nothing')
          .example('$0 doctor --node gpu-1 --project web', "gpu-1 only, and whether web's agent is there")
          .example('$0 doctor --node gpu-1 --accept-new --fix', 'also record its host key and install gsync-node')
          .epilogue(
            'a node that cannot be reached gets one line and the others are still checked. ' +
              'With --json: {schema_version: 1, config: {nodes_file, projects_file}, nodes: [{node, checks: [{name, ok, detail, fix?}]}]}.\n' +
              'exit codes: 0 every check passed, 2 the config does not load, or no such node or project, 3 a check found a problem',
          ),
      async (a) => {
        const { doctor } = await import('./commands/doctor.js');
        const r = await doctor(context(a as unknown as Global), { node: a.node, project: a.project, fix: a.fix });
        print(a.json ? asJson(r) : renderDoctor(c, r));
        if (r.nodes.some((n) => n.checks.some((k) => !k.ok))) exitCode = EXIT.attention;
      },
    )
    .demandCommand(
      1,
      'name a command: init, node add, project add, doctor, dispatch, pull-bundles, conflicts, resolve, retry, cancel, dismiss, status, logs or cleanup',
    )
    .completion('completion', 'print a bash (or zsh) completion script: gsync-ctl completion >> ~/.bashrc', withoutLongShorts)
    .strict()
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version('version', 'print the version of gsync-ctl', `gsync-ctl ${VERSION}`)
    .alias('version', 'V')
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? usageError(message, argv);
    });

  try {
    let helpShown = false;
    await cli.parseAsync([...argv], {}, (_err, _argv, output) => {
      if (output) {
        helpShown = true;
        print(output);
      }
    });
    void helpShown;
    return exitCode;
  } catch (error) {
    const code = exitCodeOf(error);
    // Under --json an error is JSON too (one line on stderr), with every control character escaped.
    if (argv.includes('--json')) {
      const hint = error instanceof GsyncError ? error.hint : undefined;
      say(inertJson({ schema_version: SCHEMA_VERSION, error: { message: errorMessage(error).slice(0, 2000), ...(hint ? { hint } : {}), exit_code: code } }));
      return code;
    }
    say(`${ce.red('gsync-ctl:')} ${inert(errorMessage(error), 2000)}`);
    if (error instanceof GsyncError && error.hint) say(`  ${ce.dim(error.hint)}`);
    if (verbose && error instanceof Error) say(ce.dim(String(error.stack ?? '')));
    if (verbose && error instanceof Error && error.cause) say(ce.dim(`caused by: ${errorMessage(error.cause)}`));
    return exitCodeOf(error);
  }
}
