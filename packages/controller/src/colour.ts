/** Chalk's colour levels: 0 none, 1 the 16 basic colours, 2 256 colours, 3 true colour. */
export type ColourLevel = 0 | 1 | 2 | 3;

/**
 * How much colour one stream gets, by the usual rules: `--color`/`--no-color` wins; then NO_COLOR
 * (a user's standing "never", so it beats a FORCE_COLOR some tool set); then FORCE_COLOR; else
 * colour only on a terminal that is not TERM=dumb. Decided per stream, so `2>file` stays plain.
 */
export function colourLevel(env: NodeJS.ProcessEnv, flag: boolean | undefined, isTTY: boolean): ColourLevel {
  const forced = forceColour(env.FORCE_COLOR);
  if (flag === false) return 0;
  if (flag === true) return forced || 1;
  if (env.NO_COLOR) return 0;
  if (forced !== undefined) return forced;
  return isTTY && env.TERM !== 'dumb' ? 1 : 0;
}

/** FORCE_COLOR as chalk reads it: empty or "true" is 1, "false" 0, a number its level; anything else is no setting. */
function forceColour(value: string | undefined): ColourLevel | undefined {
  if (value === undefined) return undefined;
  if (value === '' || value === 'true') return 1;
  if (value === 'false') return 0;
  const level = Number.parseInt(value, 10);
  return Number.isNaN(level) ? undefined : (Math.min(Math.max(level, 0), 3) as ColourLevel);
}
