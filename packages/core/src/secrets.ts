/**
 * What must never travel in a result (DESIGN invariant 8): a file denied by its path
 * (`.env`, key files) or holding a secret-shaped string (tokens, private keys).
 * Pure functions over paths and bytes; the node checks before bundling, the controller
 * again before merging. Node built-ins only: this runs inside gsync-node on Node 18.
 */
import { ConfigError } from './errors.js';

export interface SecretPolicy {
  /** Extra glob patterns of paths that must never travel (added to the defaults). */
  deny_paths?: readonly string[];
  /** Glob patterns of paths exempt from every check (e.g. "test/fixtures/**", ".env.example"). */
  allow_paths?: readonly string[];
  /** Extra content regexes (JS source strings) that mark a secret; added to the defaults. */
  deny_patterns?: readonly string[];
}

/** One reason a file must not travel. `rule` names the kind of secret, never its value. */
export interface SecretFinding {
  path: string;
  rule: string;
  line?: number;
}

/** Files bigger than this are judged by their path only. */
export const MAX_SCAN_BYTES = 5 * 1024 * 1024;
/** As git does, a NUL byte in the first 8000 bytes marks a file as binary (not scanned). */
export const BINARY_SNIFF_BYTES = 8000;

export interface PathRule {
  readonly glob: string;
  readonly rule: string;
}

/**
 * Default deny globs, gitignore-style: a glob without "/" matches a name at any depth and a
 * matched directory denies everything under it. Entries starting with "!" re-include what
 * an earlier entry denied (the last matching entry wins, and a file under a denied
 * directory stays denied); re-included files still have their content scanned.
 */
export const DEFAULT_PATH_RULES: readonly PathRule[] = [
  // dotenv files hold the real values an app reads at start-up.
  { glob: '.env', rule: '.env file' },
  { glob: '.env.*', rule: '.env file' },
  // PEM may be only a certificate, but it is where private keys usually live.
  { glob: '*.pem', rule: 'PEM file' },
  { glob: '*.key', rule: 'key file' },
  { glob: '*.p12', rule: 'PKCS#12 key store' },
  { glob: '*.pfx', rule: 'PKCS#12 key store' },
  { glob: '*.jks', rule: 'Java key store' },
  { glob: '*.keystore', rule: 'Java key store' },
  { glob: '*.ppk', rule: 'PuTTY private key' },
  // ssh-keygen's default private key names; the ".pub" halves are public and may travel.
  ...['id_rsa', 'id_dsa', 'id_ecdsa', 'id_ed25519', 'id_ecdsa_sk', 'id_ed25519_sk'].map((glob) => ({ glob, rule: 'SSH private key' })),
  // Plain-text passwords read by curl/ftp/git, psql, git's store helper, twine, the AWS CLI.
  { glob: '.netrc', rule: '.netrc credentials' },
  { glob: '_netrc', rule: '.netrc credentials' },
  { glob: '.pgpass', rule: 'PostgreSQL password file' },
  { glob: '.git-credentials', rule: 'git credentials' },
  { glob: '.pypirc', rule: 'PyPI credentials' },
  { glob: '**/.aws/credentials', rule: 'AWS credentials file' },
  // Terraform state stores every resource attribute, passwords included, in clear text.
  { glob: '*.tfstate', rule: 'Terraform state' },
  { glob: '*.tfstate.backup', rule: 'Terraform state' },
  { glob: '*.kdbx', rule: 'KeePass database' },
  // Templates meant to be committed (.env.example, server.key.sample, .env.dist); last so they
  // re-include from any entry above. Their content is still scanned.
  ...['!*.example', '!*.sample', '!*.template', '!*.dist'].map((glob) => ({ glob, rule: '' })),
];

export const DEFAULT_DENY_PATHS: readonly string[] = DEFAULT_PATH_RULES.map((r) => r.glob);

export interface ContentRule {
  readonly name: string;
  /** Matched against the whole text with the g and m flags added; must not cross lines. */
  readonly pattern: RegExp;
  /** A second look at a match, for placeholders a regex alone cannot tell from a value. */
  readonly accept?: (match: RegExpMatchArray) => boolean;
}

// Quoted values that are references or placeholders, not secrets: ${VAR}, {{ tpl }}, <fill-in>, xxxx.
const PLACEHOLDER = /^(?:\$|\{\{|<|%\(|#\{)|example|placeholder|changeme|change_me|your[_-]|redacted|x{4}|\*{3}|\.{3}/i;
const ENV_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

function realValue(value: string | undefined): boolean {
  return value !== undefined && !PLACEHOLDER.test(value) && !ENV_NAME.test(value) && !/^(.)\1*$/.test(value);
}

/** Default content rules, most specific first: a line reports only the first rule it trips. */
export const DEFAULT_CONTENT_RULES: readonly ContentRule[] = [
  { name: 'service account key', pattern: /"private_key"[ \t]*:[ \t]*"-----BEGIN/ },
  // RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8 (no word) and PGP ("... PRIVATE KEY BLOCK").
  { name: 'private key', pattern: /-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----/ },
  { name: 'AWS access key', pattern: /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/ },
  {
    name: 'AWS secret key',
    // The value must hold a digit, "/" or "+": a 40-letter identifier is a name, not a key.
    pattern:
      /(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?[ \t]*(?::=|=>|[:=])[ \t]*["']?(?=[A-Za-z0-9/+]{0,39}[0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/i,
  },
  { name: 'GitHub token', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{82,})(?![A-Za-z0-9])/ },
  { name: 'GitLab token', pattern: /\bglpat-[A-Za-z0-9_-]{20,}/ },
  // Every Slack token format starts its body with a numeric segment; "xoxo-hugs" is not one.
  { name: 'Slack token', pattern: /\bxox[abposr]-[0-9]+-[A-Za-z0-9-]{8,}/ },
  { name: 'Slack webhook', pattern: /https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9_/+-]{20,}/ },
  { name: 'Stripe live key', pattern: /\b[rs]k_live_[A-Za-z0-9]{20,}/ },
  { name: 'Google API key', pattern: /\bAIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/ },
  { name: 'Anthropic API key', pattern: /\bsk-ant-[A-Za-z0-9_-]{20,}/ },
  // Legacy keys are "sk-" + 48 alphanumerics; 32+ with a digit keeps "sk-learn" and prose out.
  {
    name: 'OpenAI API key',
    pattern: /\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|(?=[A-Za-z0-9]{0,47}[0-9])[A-Za-z0-9]{32,}(?![A-Za-z0-9_-]))/,
  },
  {
    name: 'Hugging Face token',
    pattern: /\bhf_[A-Za-z0-9]{34,}(?![A-Za-z0-9_])/,
    accept: (m) => /[a-z]/.test(m[0].slice(3)) && /[A-Z]/.test(m[0]),
  },
  { name: 'SendGrid API key', pattern: /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/ },
  { name: 'npm token', pattern: /\bnpm_[A-Za-z0-9]{36}(?![A-Za-z0-9])/ },
  // .npmrc lines; "${NPM_TOKEN}" is npm's own env reference and safe to commit.
  {
    name: 'npm auth token',
    pattern: /^[ \t]*(?:\/\/[^\s=]*?:(?:_authToken|_auth|_password)|_authToken)[ \t]*=[ \t]*["']?(?!\$\{)[^\s"']{8,}/,
  },
  {
    name: 'hard-coded password or token',
    pattern: /(?:passw(?:or)?d|secret(?:[_-]?key)?|token|api[_-]?key)["']?[ \t]*(?::=|=>|[:=])[ \t]*(["'])([^'"\s]{12,})\1/i,
    accept: (m) => realValue(m[2]),
  },
];

export interface GlobOptions {
  /** Match regardless of case (deny lists do: `ID_RSA` is still a key). */
  nocase?: boolean;
}

interface CompiledGlob {
  readonly glob: string;
  readonly negate: boolean;
  readonly dirOnly: boolean;
  /** Matches one whole path (a file or one of its directories), never a part of one. */
  readonly re: RegExp;
}

interface CompiledPathRule extends CompiledGlob {
  readonly rule: string;
}

interface ScanRule {
  readonly name: string;
  readonly re: RegExp;
  readonly accept: ((match: RegExpMatchArray) => boolean) | undefined;
}

export interface CompiledSecretPolicy {
  readonly denyPaths: readonly CompiledPathRule[];
  readonly allowPaths: readonly CompiledGlob[];
  readonly contentRules: readonly ScanRule[];
}

/**
 * The regex for a glob over "/"-separated paths: `*` and `?` stay within a segment,
 * `**` spans segments, `[a-z]`/`[!a-z]` are classes, `\` escapes. A glob with no "/"
 * (but a trailing one) matches a name at any depth, as in .gitignore; one with a "/"
 * is anchored at the root. A trailing "/" is dropped here (see {@link matchesGlob}); a
 * leading "!" is literal here (it means "re-include" only inside deny_paths).
 */
export function globToRegExp(glob: string, options: GlobOptions = {}): RegExp {
  return compileGlob(glob.startsWith('!') ? `\\${glob}` : glob, options.nocase ?? false).re;
}

/** Whether `path`, or a directory it is under, matches `glob` (a leading "!" is not special here). */
export function matchesGlob(glob: string, path: string, options: GlobOptions = {}): boolean {
  const g = compileGlob(glob.startsWith('!') ? `\\${glob}` : glob, options.nocase ?? false);
  return ancestry(path).some(({ prefix, isDir }) => (isDir || !g.dirOnly) && g.re.test(prefix));
}

function compileGlob(glob: string, nocase: boolean): CompiledGlob {
  const negate = glob.startsWith('!');
  let body = negate ? glob.slice(1) : glob;
  const dirOnly = body.endsWith('/');
  body = body.replace(/\/+$/, '').replace(/\/{2,}/g, '/');
  const anchored = body.includes('/');
  body = body.replace(/^\//, '');
  if (body === '') throw new Error(`glob "${glob}" matches no path`);
  const segments = body.split('/');
  let src = '';
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '**') src += last ? '.*' : '(?:.*/)?';
    else src += segmentSource(seg) + (last ? '' : '/');
  });
  // "s": git allows a newline in a file name, and "." must not stop there.
  return { glob, negate, dirOnly, re: new RegExp(`^${anchored ? '' : '(?:.*/)?'}${src}$`, nocase ? 'si' : 's') };
}

function segmentSource(seg: string): string {
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') {
      while (seg[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[' && classEnd(seg, i) !== -1) {
      const end = classEnd(seg, i);
      out += classSource(seg.slice(i + 1, end));
      i = end;
    } else if (c === '\\' && i + 1 < seg.length) out += escapeChar(seg[++i]!);
    else out += escapeChar(c);
  }
  return out;
}

/** Index of the "]" closing the class opened at `start`, or -1 (then "[" is literal). */
function classEnd(seg: string, start: number): number {
  let j = start + 1;
  if (seg[j] === '!' || seg[j] === '^') j++;
  if (seg[j] === ']') j++; // "[]a]": a leading "]" is a member
  for (; j < seg.length; j++) {
    if (seg[j] === '\\') j++;
    else if (seg[j] === ']') return j;
  }
  return -1;
}

function classSource(inner: string): string {
  const negated = inner[0] === '!' || inner[0] === '^';
  let members = '';
  for (let i = negated ? 1 : 0; i < inner.length; i++) {
    const c = inner[i] === '\\' && i + 1 < inner.length ? inner[++i]! : inner[i]!;
    members += c === '-' && inner[i - 1] !== '\\' ? '-' : escapeChar(c);
  }
  return negated ? `[^/${members}]` : `(?!/)[${members}]`;
}

function escapeChar(c: string): string {
  return /[A-Za-z0-9_]/.test(c) ? c : `\\${c}`;
}

/** `a/b/c` as its prefixes `a`, `a/b` (directories) and `a/b/c`, without a leading "./" or "/". */
function ancestry(path: string): { prefix: string; isDir: boolean }[] {
  const parts = path.replace(/^(?:\.\/|\/)+/, '').split('/');
  return parts.map((_, i) => ({ prefix: parts.slice(0, i + 1).join('/'), isDir: i < parts.length - 1 }));
}

const compiled = new WeakMap<object, CompiledSecretPolicy>();
let defaultPolicy: CompiledSecretPolicy | undefined;

/**
 * Checks and precompiles a policy. Throws a ConfigError naming the bad entry (`source` is
 * the file it came from) for an empty glob, a "!" in allow_paths, a deny pattern that is
 * not a valid regex, or one that matches empty text (it would flag every file).
 */
export function compilePolicy(policy: SecretPolicy = {}, source = 'secret policy'): CompiledSecretPolicy {
  const list = (field: keyof SecretPolicy): readonly string[] => {
    const value = policy[field] ?? [];
    if (!Array.isArray(value)) throw new ConfigError(source, field, 'must be a list of strings');
    value.forEach((v: unknown, i) => {
      if (typeof v !== 'string' || v === '') throw new ConfigError(source, `${field}[${i}]`, 'must be a non-empty string');
    });
    return value;
  };
  const glob = (field: string, g: string, nocase: boolean): CompiledGlob => {
    try {
      return compileGlob(g, nocase);
    } catch (error) {
      throw new ConfigError(source, field, error instanceof Error ? error.message : String(error), { cause: error });
    }
  };
  const denyPaths = [
    ...DEFAULT_PATH_RULES.map((r) => ({ ...compileGlob(r.glob, true), rule: r.rule })),
    ...list('deny_paths').map((g, i) => ({ ...glob(`deny_paths[${i}]`, g, true), rule: `deny_paths: ${g}` })),
  ];
  const allowPaths = list('allow_paths').map((g, i) => {
    if (g.startsWith('!')) throw new ConfigError(source, `allow_paths[${i}]`, `"${g}": "!" is only meaningful in deny_paths`);
    return glob(`allow_paths[${i}]`, g, false);
  });
  const custom = list('deny_patterns').map((src, i): ContentRule => {
    let pattern: RegExp;
    try {
      pattern = new RegExp(src);
    } catch (error) {
      throw new ConfigError(source, `deny_patterns[${i}]`, `"${src}" is not a valid regular expression: ${(error as Error).message}`, { cause: error });
    }
    if (pattern.test('')) throw new ConfigError(source, `deny_patterns[${i}]`, `"${src}" matches empty text, so it would flag every file`);
    // Named by position: a pattern may itself be a leaked value someone wants kept out.
    return { name: `custom pattern #${i + 1}`, pattern };
  });
  const contentRules = [...DEFAULT_CONTENT_RULES, ...custom].map((r) => ({
    name: r.name,
    re: new RegExp(r.pattern.source, `${r.pattern.flags.replace(/[gmy]/g, '')}gm`),
    accept: r.accept,
  }));
  const result: CompiledSecretPolicy = { denyPaths, allowPaths, contentRules };
  compiled.set(result, result);
  return result;
}

function resolve(policy: SecretPolicy | CompiledSecretPolicy | undefined): CompiledSecretPolicy {
  if (policy === undefined) {
    defaultPolicy ??= compilePolicy();
    return defaultPolicy;
  }
  let c = compiled.get(policy);
  if (c === undefined) {
    c = compilePolicy(policy as SecretPolicy);
    compiled.set(policy, c);
  }
  return c;
}

function isAllowed(policy: CompiledSecretPolicy, path: string): boolean {
  return ancestry(path).some(({ prefix, isDir }) => policy.allowPaths.some((g) => (isDir || !g.dirOnly) && g.re.test(prefix)));
}

/** The deny rule that keeps `path` from travelling, if any (after allow_paths). */
export function pathFinding(path: string, policy?: SecretPolicy | CompiledSecretPolicy): SecretFinding | undefined {
  const p = resolve(policy);
  if (isAllowed(p, path)) return undefined;
  for (const { prefix, isDir } of ancestry(path)) {
    let hit: CompiledPathRule | undefined;
    for (const r of p.denyPaths) {
      if ((isDir || !r.dirOnly) && r.re.test(prefix)) hit = r.negate ? undefined : r;
    }
    if (hit !== undefined) return { path, rule: hit.rule };
  }
  return undefined;
}

/**
 * Secret-shaped strings in a file, at most one per line (the most specific rule), in line
 * order. Binary files and files over MAX_SCAN_BYTES are not read.
 */
export function contentFindings(path: string, content: Buffer, policy?: SecretPolicy | CompiledSecretPolicy): SecretFinding[] {
  const p = resolve(policy);
  if (isAllowed(p, path) || content.length > MAX_SCAN_BYTES || content.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return [];
  const text = content.toString('utf8');
  const ruleAtLine = new Map<number, string>();
  let lineStarts: number[] | undefined;
  for (const rule of p.contentRules) {
    for (const m of text.matchAll(rule.re)) {
      if (rule.accept !== undefined && !rule.accept(m)) continue;
      lineStarts ??= newlineStarts(text);
      const line = lineOf(lineStarts, m.index ?? 0);
      if (!ruleAtLine.has(line)) ruleAtLine.set(line, rule.name);
    }
  }
  return [...ruleAtLine].sort((a, b) => a[0] - b[0]).map(([line, rule]) => ({ path, rule, line }));
}

/** Path rule first (a denied path is reported once, unread), then content; allow_paths exempts. */
export function scanFile(path: string, content: Buffer | undefined, policy?: SecretPolicy | CompiledSecretPolicy): SecretFinding[] {
  const byPath = pathFinding(path, policy);
  if (byPath !== undefined) return [byPath];
  return content === undefined ? [] : contentFindings(path, content, policy);
}

/**
 * What a task adds, judged against what main already had in the same file (`before`,
 * each version the task started from): a finding on a line main already carries is not
 * new, so a file that held a test key or a fixture on main can still be edited. A path
 * denied by name that main already tracks is judged by the lines the task adds.
 */
export function newFindings(
  findings: readonly SecretFinding[],
  content: Buffer | undefined,
  before: readonly (Buffer | undefined)[],
  policy?: SecretPolicy | CompiledSecretPolicy,
): SecretFinding[] {
  const versions = before.filter((b): b is Buffer => b !== undefined);
  if (findings.length === 0 || versions.length === 0) return [...findings];
  const had = new Set(
    versions.flatMap((b) =>
      b
        .toString('utf8')
        .split('\n')
        .map((l) => l.trim()),
    ),
  );
  const lines = content?.toString('utf8').split('\n') ?? [];
  const isNew = (f: SecretFinding) => f.line === undefined || !had.has((lines[f.line - 1] ?? '').trim());
  return findings.flatMap((f) => (f.line === undefined && content !== undefined ? contentFindings(f.path, content, policy) : [f])).filter(isNew);
}

/** One line for a user, e.g. "2 secret(s): .env (.env file), src/a.ts:3 (AWS access key)". */
export function describeFindings(findings: readonly SecretFinding[], limit = 5): string {
  if (findings.length === 0) return 'no secrets';
  const shown = findings.slice(0, Math.max(0, Math.floor(limit))).map((f) => {
    // A path is untrusted: control characters (a newline) would break the one line.
    const path = /[\u0000-\u001f\u007f]/.test(f.path) ? JSON.stringify(f.path) : f.path;
    return `${path}${f.line === undefined ? '' : `:${f.line}`} (${f.rule})`;
  });
  const more = findings.length - shown.length;
  const head = `${findings.length} secret(s)`;
  if (shown.length === 0) return head;
  return `${head}: ${shown.join(', ')}${more > 0 ? `, and ${more} more` : ''}`;
}

function newlineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** 1-based line holding `offset`. */
function lineOf(starts: readonly number[], offset: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}
