export { main, exitCodeOf, type CliIo } from './cli.js';
export { dispatch, type DispatchOptions, type DispatchResult } from './commands/dispatch.js';
export { pullBundles, type PullOptions } from './commands/pull-bundles.js';
export { status } from './commands/status.js';
export { loadConfig, type Config } from './config.js';
export { Store } from './store.js';
export { EXIT } from './exit-codes.js';
export type { Context, ProgressEvent } from './context.js';
export type { RunReport } from './report.js';
