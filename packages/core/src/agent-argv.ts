/**
 * Agent commands are argv lists with `{spec}` (the spec text) and `{spec_file}`
 * (the spec's path) placeholders. They are substituted word by word and the
 * result is run without a shell, so a spec can hold any characters.
 */
export const DEFAULT_AGENT_ARGV = ['claude', '-p', '{spec}', '--dangerously-skip-permissions'] as const;

/** Agent profiles every config has; nodes.json "agents" may override them or add more. */
export const BUILTIN_AGENT_PROFILES: Readonly<Record<string, readonly string[]>> = {
  claude: DEFAULT_AGENT_ARGV,
  codex: ['codex', 'exec', '--full-auto', '{spec}'],
};

/** Linux refuses a single argv word longer than this (MAX_ARG_STRLEN). */
export const MAX_ARG_BYTES = 128 * 1024 - 1;

export function expandAgentArgv(template: readonly string[], values: { spec: string; specFile: string }): string[] {
  // One pass with a function: no `$&`-style patterns in the values, and a value is never expanded again.
  return template.map((word) => word.replace(/\{spec_file\}|\{spec\}/g, (m) => (m === '{spec}' ? values.spec : values.specFile)));
}

export function usesSpecText(template: readonly string[]): boolean {
  return template.some((word) => word.replaceAll('{spec_file}', '').includes('{spec}'));
}

/** The commit subject for a task: `task/<id>: <first line of the spec>`, kept to one sane line. */
export function commitSubject(taskId: string, specTitle: string): string {
  return `task/${taskId}: ${specTitle}`;
}

export const MAX_TITLE_CHARS = 72;

/** The first non-empty line of a spec, without markdown heading marks, cut to 72 characters. */
export function specTitle(spec: string): string {
  const line =
    spec
      .split(/\r?\n/)
      .map((l) => l.replace(/^#+\s*/, '').trim())
      .find((l) => l !== '') ?? '';
  // Every control character (C0, DEL, C1) and the Unicode line/paragraph separators: one plain line.
  const clean = line.replace(/[\p{Cc}\u2028\u2029]/gu, ' ').trim();
  return [...clean].length > MAX_TITLE_CHARS ? `${[...clean].slice(0, MAX_TITLE_CHARS - 1).join('')}…` : clean;
}
