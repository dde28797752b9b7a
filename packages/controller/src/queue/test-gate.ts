import { performance } from 'node:perf_hooks';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gitOps, runInProcessGroup } from '@gsync/core';

export interface TestGateRequest {
  repo: string;
  /** The merge commit to test; it must be reachable from a ref while the command runs. */
  commit: string;
  argv: readonly string[];
  timeoutSeconds: number;
  logFile: string;
  env: NodeJS.ProcessEnv;
}

export interface TestGateOutcome {
  passed: boolean;
  exitCode: number | null;
  timedOut: boolean;
  /** Why it failed, in one line. */
  reason: string;
  /** The last lines of the command's output. */
  tail: string;
  seconds: number;
}

const TAIL_LINES = 30;
const TAIL_CHARS = 4000;

export function outputTail(text: string): string {
  const lines = text.replace(/\s+$/, '').split('\n').slice(-TAIL_LINES).join('\n');
  return lines.length > TAIL_CHARS ? `…${lines.slice(-TAIL_CHARS)}` : lines;
}

/** Variables the command (which runs code from a node) must not see: git redirections, agents, credentials. */
const WITHHELD_ENV =
  /^(GIT_|SSH_AUTH_SOCK$|SSH_AGENT_PID$|GPG_AGENT_INFO$|GNUPGHOME$|AWS_|AZURE_|GOOGLE_|GCLOUD_|CLOUDSDK_|GH_|GITHUB_|GITLAB_|NPM_TOKEN|NODE_AUTH_TOKEN|ANTHROPIC_|OPENAI_|HF_|HUGGING)|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY/i;

/** The environment of the test gate (verify_command): the user's, minus what points git elsewhere or could hand out credentials. */
export function testGateEnv(env: NodeJS.ProcessEnv, commit: string): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(env).filter(([k]) => !WITHHELD_ENV.test(k)));
  return { ...clean, GSYNC_VERIFY_COMMIT: commit };
}

/**
 * The test gate: checks `commit` out into a throw-away clone (never the user's
 * checkout) and runs the project's verify_command there, in its own process group
 * with a timeout. The agent's own claims count for nothing; only this exit code does.
 */
export async function runTestGate(req: TestGateRequest): Promise<TestGateOutcome> {
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'gsync-verify-'));
  try {
    const dir = join(work, 'checkout');
    await gitOps.checkoutCopy(req.repo, dir, req.commit);
    await mkdir(dirname(req.logFile), { recursive: true });
    await rm(req.logFile, { force: true });
    const run = await runInProcessGroup({
      argv: req.argv,
      cwd: dir,
      logFile: req.logFile,
      env: testGateEnv(req.env, req.commit),
      timeoutMs: req.timeoutSeconds * 1000,
      killGraceMs: 5000,
    });
    const tail = outputTail(await readFile(req.logFile, 'utf8').catch(() => ''));
    const passed = !run.timedOut && !run.error && run.exitCode === 0;
    const reason = run.timedOut
      ? `verify_command ran longer than ${req.timeoutSeconds}s and was killed`
      : run.error
        ? `verify_command could not start: ${run.error}`
        : run.signal
          ? `verify_command was killed by ${run.signal}`
          : `verify_command exited with code ${run.exitCode}`;
    return { passed, exitCode: run.exitCode, timedOut: run.timedOut, reason, tail, seconds: (performance.now() - started) / 1000 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
