import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { execa } from 'execa';
import { ConfigError, gitOps, runInProcessGroup } from '@gsync/core';
import type { Config, ProjectConfig } from '../config.js';

/**
 * How the test gate is shut in. `sandbox`: bubblewrap, with no network, a fresh /tmp,
 * /run and home, the real repository, the config dir and the home dir hidden (only the
 * repository's object store is there, read-only, for the checkout to borrow from), and
 * everything else read-only but the gate's scratch dir. `none`: the project opted in to
 * running it with the user's rights.
 */
export type Confinement = { kind: 'sandbox'; program: string; hide: string[]; readOnly: string[]; objects: string[] } | { kind: 'none' };

const probes = new Map<string, Promise<string | undefined>>();

/** Runs bubblewrap once with the namespaces the gate uses; undefined when it works, else why not. */
function probeSandbox(program: string): Promise<string | undefined> {
  let probe = probes.get(program);
  if (!probe) {
    probe = execa(program, ['--unshare-all', '--die-with-parent', '--new-session', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', 'true'], {
      reject: false,
      timeout: 10_000,
      stdin: 'ignore',
      maxBuffer: 64 * 1024,
    }).then((r) => {
      if (r.exitCode === 0) return undefined;
      if ((r as { code?: string }).code === 'ENOENT') return `${program} is not installed`;
      const said = String(r.stderr ?? '')
        .trim()
        .split('\n')[0]
        ?.slice(0, 200);
      return `${program} cannot create a sandbox here${said ? ` (${said})` : ''}`;
    });
    probes.set(program, probe);
  }
  return probe;
}

/** The objects dirs a checkout borrowing from `gitDir` reads: its own and those its alternates name. */
async function objectStores(gitDir: string): Promise<string[]> {
  const own = join(gitDir, 'objects');
  const alternates = await readFile(join(own, 'info', 'alternates'), 'utf8').catch(() => '');
  const more = alternates
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => (isAbsolute(line) ? line : resolve(own, line)))
    .filter((path) => existsSync(path));
  return [own, ...more];
}

/**
 * The confinement of a project's test gate, checked before anything is sent or merged:
 * a sandbox that cannot run, or a read-only path that does not exist, is a config error
 * (exit 2) that names the fix, never a silent fall back to running unconfined.
 */
export async function testGateConfinement(config: Pick<Config, 'dir' | 'projectsFile'>, project: ProjectConfig, env: NodeJS.ProcessEnv): Promise<Confinement> {
  if (project.verify_isolation === 'none') return { kind: 'none' };
  const program = env.GSYNC_BWRAP || 'bwrap';
  const why = await probeSandbox(program);
  if (why)
    throw new ConfigError(
      config.projectsFile,
      `${project.name}.verify_isolation`,
      `the test gate runs in a bubblewrap sandbox, but ${why}; install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or set "verify_isolation": "none" to run verify_command unconfined with your rights`,
    );
  project.verify_readonly_paths.forEach((path, i) => {
    if (!existsSync(path))
      throw new ConfigError(config.projectsFile, `${project.name}.verify_readonly_paths[${i}]`, `${path} does not exist; fix the path or remove it`);
  });
  const gitDir = await gitOps.gitDir(project.repo_local);
  const hide = [env.HOME, '/home', '/root', '/run', '/var/tmp', project.repo_local, gitDir, config.dir].filter(
    (path): path is string => !!path && isAbsolute(path) && existsSync(path),
  );
  return { kind: 'sandbox', program, hide, readOnly: project.verify_readonly_paths, objects: await objectStores(gitDir) };
}

/** bubblewrap's argv for running `argv` in `checkout`, with only `work` writable. */
export function sandboxArgv(c: Extract<Confinement, { kind: 'sandbox' }>, work: string, checkout: string, argv: readonly string[]): string[] {
  const options: string[][] = [
    ['--unshare-all', '--die-with-parent', '--new-session'],
    ['--ro-bind', '/', '/'],
    ['--proc', '/proc'],
    ['--dev', '/dev'],
    ['--tmpfs', '/tmp'],
    ...c.hide.map((p) => ['--tmpfs', p]),
    ...[...c.objects, ...c.readOnly].map((p) => ['--ro-bind', p, p]),
    ['--bind', work, work],
    // Hidden, and empty and read-only: nothing written there could even seem to land.
    ...c.hide.map((p) => ['--remount-ro', p]),
    ['--chdir', checkout],
    ['--setenv', 'HOME', join(work, 'home')],
    ['--setenv', 'TMPDIR', '/tmp'],
  ];
  return [c.program, ...options.flat(), '--', ...argv];
}

export interface TestGateRequest {
  repo: string;
  /** The merge commit to test; it must be reachable from a ref while the command runs. */
  commit: string;
  argv: readonly string[];
  timeoutSeconds: number;
  logFile: string;
  env: NodeJS.ProcessEnv;
  confinement: Confinement;
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

/** A test suite's log is kept up to this size: the result's code decides what it prints. */
export const MAX_LOG_BYTES = 32 * 1024 * 1024;
const TAIL_LINES = 30;
const TAIL_CHARS = 4000;

/** The last `bytes` of a file, as text ('' when it cannot be read). */
async function readEnd(file: string, bytes: number): Promise<string> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, bytes);
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

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
 * checkout) and runs the project's verify_command there, confined as the project
 * says, in its own process group with a timeout. The agent's own claims count for nothing; only this exit code does.
 */
export async function runTestGate(req: TestGateRequest): Promise<TestGateOutcome> {
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'gsync-verify-'));
  try {
    const dir = join(work, 'checkout');
    await gitOps.checkoutCopy(req.repo, dir, req.commit);
    // Nothing in the copy names the real repository but the objects it borrows.
    await gitOps.git(dir, ['remote', 'remove', 'origin']);
    await mkdir(join(work, 'home'));
    await mkdir(dirname(req.logFile), { recursive: true });
    await rm(req.logFile, { force: true });
    const c = req.confinement;
    const run = await runInProcessGroup({
      argv: c.kind === 'sandbox' ? sandboxArgv(c, work, dir, req.argv) : req.argv,
      cwd: dir,
      logFile: req.logFile,
      env: testGateEnv(req.env, req.commit),
      timeoutMs: req.timeoutSeconds * 1000,
      killGraceMs: 5000,
      maxLogBytes: MAX_LOG_BYTES,
    });
    const tail = outputTail(await readEnd(req.logFile, 64 * 1024));
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
