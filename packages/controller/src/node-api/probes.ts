import { SshError, inert } from '@gsync/core';
import type { NodeConfig } from '../config.js';
import { type NodeTransport, remoteFailure } from '../ssh/transport.js';
import { nodePath } from './install.js';

/**
 * Questions `doctor` asks a node without gsync-node: constant scripts, whatever they look at
 * given as a positional parameter (never part of a script), answers parsed strictly.
 */

/** Run by node_bin itself, so git is looked for on the PATH gsync-node would have. */
const RUNTIME_SCRIPT = [
  'let git = null;',
  "try { git = require('child_process').execFileSync('git', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10000 }).trim(); } catch (e) {}",
  'process.stdout.write(JSON.stringify({ node: process.version, git: git }));',
].join('\n');

export interface Runtime {
  /** `v20.19.0`, as node_bin says it. */
  node: string;
  major: number;
  /** `git version 2.39.5`, or null when node_bin's PATH has no git. */
  git: string | null;
}

/** The Node.js that node_bin runs and the git it finds; undefined when node_bin is not there at all. */
export async function probeRuntime(t: NodeTransport, node: NodeConfig): Promise<Runtime | undefined> {
  const r = await t.exec([node.node_bin, '-e', RUNTIME_SCRIPT]);
  if (r.code === 127) return undefined;
  if (r.code !== 0) throw remoteFailure(node.name, `"${inert(node.node_bin, 100)}" does not run`, r);
  const text = r.stdout.toString('utf8');
  let answer: { node?: unknown; git?: unknown } | undefined;
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    answer = undefined;
  }
  const version = typeof answer?.node === 'string' ? /^v(\d+)\.\d+\.\d+$/.exec(answer.node) : null;
  if (!version || !(answer?.git === null || typeof answer?.git === 'string')) {
    throw new SshError(
      node.name,
      'remote',
      `"${inert(node.node_bin, 100)}" gave an answer that is not its version: ${inert(text.trim().split('\n')[0] ?? '', 120)}`,
      {
        hint: "make the node user's shell print nothing for non-interactive logins, and node_bin name Node.js",
      },
    );
  }
  return { node: version[0], major: Number(version[1]), git: answer.git === null ? null : inert(String(answer.git).split('\n')[0]!, 100) };
}

/** git as the login's PATH has it: asked when node_bin cannot be. */
export async function gitOnPath(t: NodeTransport): Promise<string | null> {
  const r = await t.exec(['git', '--version']);
  return r.code === 0 ? inert(r.stdout.toString('utf8').trim().split('\n')[0] ?? '', 100) : null;
}

/**
 * The work root, or the nearest folder above it that exists: whether it can be written
 * (tried for real in the work root, asked with `test` above it, where nothing is written),
 * and the KiB free there.
 */
const WORK_ROOT_SCRIPT = `d=$1 up=0
while [ ! -e "$d" ] && [ "$up" -lt 100 ]; do d=$(dirname -- "$d"); up=$((up + 1)); done
[ -d "$d" ] || { echo notdir; exit 0; }
if [ "$up" -eq 0 ]; then
  p="$d/.gsync-doctor.$$"
  if mkdir -- "$p" 2>/dev/null && rmdir -- "$p"; then w=yes; else w=no; fi
elif [ -w "$d" ] && [ -x "$d" ]; then w=yes; else w=no; fi
echo "up=$up writable=$w"
df -Pk -- "$d" 2>/dev/null | awk 'NR == 2 { print "avail=" $4 }'`;

export interface WorkRoot {
  /** False: the work root is a file, or something in its path is. */
  dir: boolean;
  /** Whether the work root is there yet (dispatch makes it). */
  exists: boolean;
  writable: boolean;
  /** Free bytes on its file system, when df said. */
  freeBytes: number | undefined;
}

export async function probeWorkRoot(t: NodeTransport, node: NodeConfig): Promise<WorkRoot> {
  const r = await t.exec(['sh', '-c', WORK_ROOT_SCRIPT, 'sh', nodePath(node.work_root)]);
  if (r.code !== 0) throw remoteFailure(node.name, 'cannot look at work_root', r);
  const text = r.stdout.toString('utf8');
  if (text.trim() === 'notdir') return { dir: false, exists: true, writable: false, freeBytes: undefined };
  const head = /^up=(\d+) writable=(yes|no)$/m.exec(text);
  if (!head) throw new SshError(node.name, 'remote', `unexpected answer about work_root: ${inert(text.trim().split('\n')[0] ?? '', 120)}`);
  const avail = /^avail=(\d+)$/m.exec(text);
  return { dir: true, exists: head[1] === '0', writable: head[2] === 'yes', freeBytes: avail ? Number(avail[1]) * 1024 : undefined };
}

/** A command name as `command -v` finds it; a path must be an executable file. */
const WHICH_SCRIPT = `case $1 in
  */*) [ -f "$1" ] && [ -x "$1" ] && printf '%s\\n' "$1" ;;
  *) command -v -- "$1" ;;
esac`;

/** Where the node finds `command` (the agent's argv[0]), or undefined when it does not. */
export async function findCommand(t: NodeTransport, command: string): Promise<string | undefined> {
  const r = await t.exec(['sh', '-c', WHICH_SCRIPT, 'sh', command]);
  const found = r.stdout.toString('utf8').trim().split('\n')[0] ?? '';
  return r.code === 0 && found !== '' ? inert(found, 200) : undefined;
}
