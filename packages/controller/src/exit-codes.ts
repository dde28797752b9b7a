/** The exit codes of gsync-ctl: a small table, documented in the README. */
export const EXIT = {
  /** Everything asked for was done (pull: every task merged or empty). */
  ok: 0,
  /** An unexpected failure: a bug, or git failing in a way gsync did not foresee. */
  internal: 1,
  /** Bad flags, bad config, unknown project/node/task, bad spec or id, a task the command does not apply to (cancel of one that ended). Nothing was changed. */
  usage: 2,
  /** pull: at least one task conflicted, failed, timed out or was rejected; conflicts: one is foreseen; doctor: a check found a problem. */
  attention: 3,
  /** pull: nothing is wrong, but tasks are still running or waiting for a clean checkout. */
  pending: 4,
  /** A node could not be reached, refused the login, showed an unknown or changed host key, or answered outside the protocol. */
  ssh: 5,
  /** Another gsync-ctl holds the project's lock. */
  busy: 6,
  /** stdout was closed before everything was written (`| head`): as SIGPIPE ends git, and nothing is said. */
  closedPipe: 141,
} as const;
