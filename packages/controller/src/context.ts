import { join } from 'node:path';
import { loadConfig, type Config } from './config.js';
import type { ConnectContext } from './ssh/connect.js';
import type { AskPassphrase } from './ssh/identity.js';
import { Store } from './store/store.js';
import type { OnTransfer } from './transfer.js';

/** A step worth telling the user about; the CLI renders it, the store keeps it. */
export interface ProgressEvent {
  level: 'info' | 'warn' | 'error';
  kind: string;
  message: string;
  project?: string;
  task_id?: string;
  node?: string;
}

/** Everything a command needs from outside, passed in (never read from `process` below the entry point). */
export interface Context {
  configDir: string;
  home: string;
  env: NodeJS.ProcessEnv;
  now: () => Date;
  /** This gsync-ctl process: the owner of its locks and of the dispatches it is sending. */
  pid: number;
  nodeToolPath: string;
  acceptNew: boolean;
  /** Asks for an encrypted key's passphrase on the terminal; absent when stdin is not one. */
  askPassphrase?: AskPassphrase;
  /** When the whole command must be over (ms since the epoch, `--timeout`): node commands still running then are ended. */
  deadline?: number;
  onEvent: (event: ProgressEvent) => void;
  /** Shows a transfer of code or results as its bytes move; absent when nothing shows them (--quiet, --json). */
  onTransfer?: OnTransfer;
}

export interface Session {
  ctx: Context;
  config: Config;
  store: Store;
  connect: ConnectContext;
  /** Records an event in the store and shows it. */
  log(event: ProgressEvent & { project: string; data?: unknown }): void;
  close(): void;
}

export function storePath(configDir: string): string {
  return join(configDir, 'gsync.db');
}

export async function openSession(ctx: Context): Promise<Session> {
  const config = await loadConfig({ dir: ctx.configDir, home: ctx.home });
  for (const warning of config.warnings) ctx.onEvent({ level: 'warn', kind: 'config', message: warning });
  const store = new Store(storePath(ctx.configDir), ctx.now);
  return {
    ctx,
    config,
    store,
    connect: { config, home: ctx.home, env: ctx.env, acceptNew: ctx.acceptNew, askPassphrase: ctx.askPassphrase, deadline: ctx.deadline },
    log(event) {
      store.addEvent({ project: event.project, task_id: event.task_id, node: event.node, kind: event.kind, message: event.message, data: event.data });
      ctx.onEvent(event);
    },
    close() {
      store.close();
    },
  };
}

/** Runs `fn` with a session open, and closes it whatever happens. */
export async function withSession<T>(ctx: Context, fn: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession(ctx);
  try {
    return await fn(session);
  } finally {
    session.close();
  }
}
