import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@gsync/core';
import {
  BINARY_SNIFF_BYTES,
  DEFAULT_CONTENT_RULES,
  DEFAULT_DENY_PATHS,
  DEFAULT_PATH_RULES,
  MAX_SCAN_BYTES,
  compilePolicy,
  contentFindings,
  describeFindings,
  globToRegExp,
  matchesGlob,
  pathFinding,
  scanFile,
  type SecretFinding,
} from '@gsync/core';

// Fake secrets are assembled at run time so that this file itself never looks like it holds
// one (gsync scans its own repository like any other; see the last test).
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** `n` mixed-case letters and digits, different for each `seed`. */
const alnum = (n: number, seed = 0): string => Array.from({ length: n }, (_, i) => ALNUM[(i * 7 + seed * 13 + 3) % ALNUM.length]).join('');
const beginKey = (type: string): string => ['-----BEGIN', type, 'PRIVATE KEY-----'].filter((s) => s !== '').join(' ');
const endKey = (type: string): string => ['-----END', type, 'PRIVATE KEY-----'].filter((s) => s !== '').join(' ');
const pemBlock = (type: string): string => `${beginKey(type)}\n${alnum(64)}\n${alnum(64, 1)}\n${endKey(type)}\n`;
const awsKeyId = 'AKIA' + 'ABCDEFGHIJKLMNOP';
const awsSecretValue = 'wJalrXUtnFEMI/K7MDENG/' + 'bPxRfiCYEXAMPLEKEY';

const text = (s: string): Buffer => Buffer.from(s, 'utf8');
const rulesOf = (findings: readonly SecretFinding[]): string[] => findings.map((f) => f.rule);

describe('matchesGlob', () => {
  const cases: [glob: string, path: string, expected: boolean][] = [
    // A glob without "/" matches a name at any depth.
    ['*.pem', 'a.pem', true],
    ['*.pem', 'deep/dir/a.pem', true],
    ['*.pem', 'a.pem.txt', false],
    ['*.pem', 'a.pemx', false],
    ['id_rsa', 'home/.ssh/id_rsa', true],
    ['id_rsa', 'id_rsa.pub', false],
    ['id_rsa', 'xid_rsa', false],
    // ... and a matched directory covers everything under it.
    ['secrets', 'secrets/db.txt', true],
    ['secrets', 'app/secrets/a/b.txt', true],
    ['secrets', 'app/my-secrets/b.txt', false],
    ['.env', 'x/.env/config', true],
    // A trailing "/" matches directories only.
    ['private/', 'private/a.txt', true],
    ['private/', 'private', false],
    ['private/', 'a/private', false],
    ['private/', 'a/private/b', true],
    // A "/" anywhere else anchors at the root; "*" stays within one segment.
    ['src/*.ts', 'src/a.ts', true],
    ['src/*.ts', 'src/x/a.ts', false],
    ['src/*.ts', 'lib/src/a.ts', false],
    ['/config.json', 'config.json', true],
    ['/config.json', 'a/config.json', false],
    ['test/fixtures', 'test/fixtures/a/b.pem', true],
    ['test/fixtures', 'src/test/fixtures/a.pem', false],
    // "**" spans any number of segments, including none.
    ['**/foo', 'foo', true],
    ['**/foo', 'a/b/foo', true],
    ['**/foo', 'a/b/xfoo', false],
    ['a/**', 'a/b', true],
    ['a/**', 'a/b/c', true],
    ['a/**', 'a', false],
    ['a/**', 'ba/b', false],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'a/xb', false],
    ['**', 'any/thing/at/all', true],
    ['**/.aws/credentials', 'home/u/.aws/credentials', true],
    ['**/.aws/credentials', '.aws/credentials', true],
    ['**/.aws/credentials', '.aws/credentials.bak', false],
    ['a**b', 'axxb', true],
    ['a**b', 'ax/xb', false],
    // "?" is exactly one character, never "/".
    ['id_?sa', 'id_rsa', true],
    ['id_?sa', 'id_dsa', true],
    ['id_?sa', 'id_sa', false],
    ['a?b', 'a/b', false],
    // Classes, negated classes, ranges; never "/".
    ['[abc].txt', 'b.txt', true],
    ['[abc].txt', 'd.txt', false],
    ['[!abc].txt', 'd.txt', true],
    ['[!abc].txt', 'a.txt', false],
    ['[^abc].txt', 'a.txt', false],
    ['file[0-9].log', 'file7.log', true],
    ['file[0-9].log', 'filex.log', false],
    ['a[!x]b', 'a/b', false],
    ['a[+-0]b', 'a/b', false],
    ['[]]x', ']x', true],
    ['[abc', '[abc', true],
    // Escapes and regex metacharacters are literal.
    ['\\*.txt', '*.txt', true],
    ['\\*.txt', 'a.txt', false],
    ['a.b', 'axb', false],
    ['a+b(c)|d$.txt', 'a+b(c)|d$.txt', true],
    ['\\!important', '!important', true],
    // A file name may hold a newline (git allows it); "*" and "**" must not stop there.
    ['.env', 'evil\ndir/.env', true],
    ['*.key', 'a\nb.key', true],
    ['a/**', 'a/x\ny', true],
  ];
  it.each(cases)('%j on %j is %s', (glob, path, expected) => {
    expect(matchesGlob(glob, path)).toBe(expected);
  });

  it('is case-sensitive unless asked not to be', () => {
    expect(matchesGlob('id_rsa', 'ID_RSA')).toBe(false);
    expect(matchesGlob('id_rsa', 'ID_RSA', { nocase: true })).toBe(true);
    expect(globToRegExp('*.PEM', { nocase: true }).test('dir/a.pem')).toBe(true);
    expect(globToRegExp('!x').test('!x')).toBe(true);
  });

  it('globToRegExp matches one whole path, not a directory above it', () => {
    expect(globToRegExp('secrets').test('secrets')).toBe(true);
    expect(globToRegExp('secrets').test('secrets/a')).toBe(false);
    expect(['a/b', 'a/x/y/b', 'xa/b', 'a/b/c'].map((p) => globToRegExp('a/**/b').test(p))).toEqual([true, true, false, false]);
  });

  const segment = fc.string({ unit: fc.constantFrom(...'abcxyz019._-'), minLength: 1, maxLength: 6 }).filter((s) => s !== '.' && s !== '..');
  const relPath = fc.array(segment, { minLength: 1, maxLength: 5 });

  it('a literal path matches itself, and "**", "*" and "**/<name>" match any path', () => {
    fc.assert(
      fc.property(relPath, (segs) => {
        const path = segs.join('/');
        expect(matchesGlob(path, path)).toBe(true);
        expect(matchesGlob('**', path)).toBe(true);
        expect(matchesGlob('*', path)).toBe(true);
        expect(matchesGlob(`**/${segs.at(-1)}`, path)).toBe(true);
        expect(matchesGlob(`${path}Q`, path)).toBe(false);
        expect(matchesGlob(`Q/${path}`, path)).toBe(false);
      }),
    );
  });
});

describe('pathFinding', () => {
  const denied: [path: string, rule: string][] = [
    ['.env', '.env file'],
    ['config/.env.production', '.env file'],
    ['.env.local', '.env file'],
    ['./apps/web/.env', '.env file'],
    ['.ENV', '.env file'],
    ['certs/server.pem', 'PEM file'],
    ['tls/server.key', 'key file'],
    ['a/b/client.p12', 'PKCS#12 key store'],
    ['signing.pfx', 'PKCS#12 key store'],
    ['android/app/release.jks', 'Java key store'],
    ['debug.keystore', 'Java key store'],
    ['putty.ppk', 'PuTTY private key'],
    ['id_rsa', 'SSH private key'],
    ['id_dsa', 'SSH private key'],
    ['home/.ssh/id_ecdsa', 'SSH private key'],
    ['deploy/keys/id_ed25519', 'SSH private key'],
    ['id_ecdsa_sk', 'SSH private key'],
    ['keys/id_ed25519_sk', 'SSH private key'],
    ['.netrc', '.netrc credentials'],
    ['_netrc', '.netrc credentials'],
    ['db/.pgpass', 'PostgreSQL password file'],
    ['.git-credentials', 'git credentials'],
    ['.pypirc', 'PyPI credentials'],
    ['ci/.aws/credentials', 'AWS credentials file'],
    ['infra/terraform.tfstate', 'Terraform state'],
    ['infra/terraform.tfstate.backup', 'Terraform state'],
    ['vault.kdbx', 'KeePass database'],
    // A directory named like a denied file is denied with everything in it.
    ['x/.env/config.json', '.env file'],
    // A template extension does not rescue a file under a denied directory...
    ['keys.pem/.env.example', 'PEM file'],
    // ...nor does a directory named like a template rescue a denied file in it.
    ['foo.example/.env', '.env file'],
    ['evil\ndir/.env', '.env file'],
  ];
  it.each(denied)('denies %j as %s', (path, rule) => {
    expect(pathFinding(path)).toEqual({ path, rule });
  });

  const allowed = [
    '.env.example',
    'config/.env.sample',
    '.env.template',
    '.env.dist',
    'deploy/server.key.example',
    'id_rsa.pub',
    'deploy/keys/id_ed25519.pub',
    'src/env.ts',
    'environment.ts',
    '.envrc.md',
    '.npmrc',
    'README.md',
    'keys/README.md',
    'src/keyboard.ts',
    'docs/api-keys.md',
    'credentials.ts',
  ];
  it.each(allowed)('lets %j travel', (path) => {
    expect(pathFinding(path)).toBeUndefined();
  });

  it('has a denied sample for every default deny entry', () => {
    expect(DEFAULT_DENY_PATHS).toEqual(DEFAULT_PATH_RULES.map((r) => r.glob));
    for (const { glob, rule } of DEFAULT_PATH_RULES.filter((r) => !r.glob.startsWith('!'))) {
      const samples = denied.filter(([path, r]) => r === rule && matchesGlob(glob, path, { nocase: true }));
      expect(samples, glob).not.toEqual([]);
    }
  });

  it('adds deny_paths to the defaults, where "!" re-includes and a later entry wins', () => {
    const policy = { deny_paths: ['secrets/**', '*.sqlite', 'private/', '!.env.local', '.env.example'] };
    expect(pathFinding('secrets/prod/db.txt', policy)).toEqual({ path: 'secrets/prod/db.txt', rule: 'deny_paths: secrets/**' });
    expect(pathFinding('data/app.SQLITE', policy)?.rule).toBe('deny_paths: *.sqlite');
    expect(pathFinding('private/.env.sample', policy)?.rule).toBe('deny_paths: private/');
    expect(pathFinding('private', policy)).toBeUndefined();
    expect(pathFinding('.env.local', policy)).toBeUndefined();
    expect(pathFinding('.env.production', policy)?.rule).toBe('.env file');
    expect(pathFinding('.env.example', policy)?.rule).toBe('deny_paths: .env.example');
    expect(pathFinding('src/secrets.ts', policy)).toBeUndefined();
  });

  it('exempts allow_paths, matching them exactly (case and root anchoring)', () => {
    const policy = { allow_paths: ['test/fixtures/**', 'docs/example.pem', 'samples'] };
    expect(pathFinding('test/fixtures/keys/server.key', policy)).toBeUndefined();
    expect(pathFinding('test/fixtures/.env', policy)).toBeUndefined();
    expect(pathFinding('docs/example.pem', policy)).toBeUndefined();
    expect(pathFinding('a/samples/id_rsa', policy)).toBeUndefined();
    expect(pathFinding('src/test/fixtures/a.pem', policy)?.rule).toBe('PEM file');
    expect(pathFinding('Test/Fixtures/a.key', policy)?.rule).toBe('key file');
    expect(pathFinding('.env', policy)?.rule).toBe('.env file');
  });
});

/** One realistic fake secret per default rule, each preceded by two harmless lines. */
const samples: [rule: string, path: string, content: string][] = [
  ['service account key', 'gcp.json', `{\n  "type": "service_account",\n  "private_key": "${beginKey('')}\\n${alnum(64)}\\n"\n}`],
  ...['RSA', 'OPENSSH', 'EC', 'DSA', 'ENCRYPTED', ''].map((t): [string, string, string] => [
    'private key',
    `keys/${t || 'pkcs8'}.txt`,
    `# key\n\n${pemBlock(t)}`,
  ]),
  ['private key', 'keys/pgp.asc', `# key\n\n${['-----BEGIN', 'PGP PRIVATE KEY BLOCK-----'].join(' ')}\n${alnum(64)}\n`],
  ['AWS access key', 'config.ini', `[default]\nregion = eu-west-1\naws_access_key_id = ${awsKeyId}\n`],
  ['AWS access key', 'sts.json', `{\n  "x": 1,\n  "AccessKeyId": "${'ASIA' + 'Q2W3E4R5T6Y7U8I9'}"\n}`],
  ['AWS secret key', 'credentials.ini', `[default]\n\naws_secret_access_key = ${awsSecretValue}\n`],
  ['AWS secret key', 'ci.yml', `env:\n  REGION: eu\n  AWS_SECRET_ACCESS_KEY: "${awsSecretValue}"\n`],
  ['AWS secret key', 's3.ts', `new S3({\n  region,\n  credentials: { accessKeyId, secretAccessKey: '${awsSecretValue}' },\n});`],
  ...['ghp', 'gho', 'ghu', 'ghs', 'ghr'].map((p, i): [string, string, string] => ['GitHub token', `gh-${p}.ts`, `// gh\n\nconst t = "${p}_${alnum(36, i)}";`]),
  ['GitHub token', 'pat.sh', `#!/bin/sh\n\nexport GH_TOKEN=${'github_pat_' + alnum(22) + '_' + alnum(59, 1)}\n`],
  ['GitLab token', 'gl.sh', `#!/bin/sh\n\ncurl -H "PRIVATE-TOKEN: ${'glpat-' + alnum(20)}" https://gitlab.example.com\n`],
  ['Slack token', 'slack.py', `import os\n\nclient = WebClient("${'xoxb-' + '123456789012-1234567890123-' + alnum(24)}")\n`],
  ['Slack token', 'slack2.py', `import os\n\nUSER = "${'xoxp-' + '1234567890-1234567890-1234567890-' + alnum(32).toLowerCase()}"\n`],
  ['Slack webhook', 'notify.js', `// hook\n\nconst url = '${'https://hooks.slack.com/services/' + 'T0123ABCD/B0123ABCD/' + alnum(24)}';\n`],
  ['Stripe live key', 'pay.rb', `# pay\n\nStripe.api_key = "${'sk_live_' + alnum(24)}"\n`],
  ['Stripe live key', 'pay2.rb', `# pay\n\nKEY = "${'rk_live_' + alnum(24)}"\n`],
  ['Google API key', 'maps.html', `<html>\n<body>\n<script src="https://maps.googleapis.com/maps/api/js?key=${'AIza' + alnum(35)}"></script>\n`],
  ['Anthropic API key', 'claude.env.sh', `#!/bin/sh\n\nexport ANTHROPIC_API_KEY=${'sk-ant-api03-' + alnum(80) + '-' + alnum(6) + 'AA'}\n`],
  ['Anthropic API key', 'oauth.sh', `#!/bin/sh\n\nexport CLAUDE_CODE_OAUTH_TOKEN=${'sk-ant-oat01-' + alnum(60)}\n`],
  ['OpenAI API key', 'ai.py', `import openai\n\nclient = OpenAI(api_key="${'sk-proj-' + alnum(64)}")\n`],
  ['OpenAI API key', 'ai_legacy.py', `import openai\n\nopenai.api_key = "${'sk-' + alnum(48)}"\n`],
  ['Hugging Face token', 'hf.py', `from huggingface_hub import login\n\nlogin(token="${'hf_' + alnum(34)}")\n`],
  ['SendGrid API key', 'mail.js', `// mail\n\nsgMail.setApiKey('${'SG.' + alnum(22) + '.' + alnum(43, 1)}');\n`],
  ['npm token', 'publish.sh', `#!/bin/sh\n\nNODE_AUTH_TOKEN=${'npm_' + alnum(36)} npm publish\n`],
  ['npm auth token', '.npmrc', `registry=https://registry.npmjs.org/\n\n${'//registry.npmjs.org/:_authToken=' + '0123abcd-4567-89ef-0123-456789abcdef'}\n`],
  ['npm auth token', 'old.npmrc', `always-auth=true\n\n${'_authToken=' + alnum(32)}\n`],
  ['npm auth token', 'corp.npmrc', `always-auth=true\n\n${'//npm.corp.example:8443/repo/:_auth=' + Buffer.from('user:' + alnum(12)).toString('base64')}\n`],
  ['hard-coded password or token', 'db.py', `import db\n\npassword = "${'Tr0ub4dor&3' + 'xyzzy'}"\n`],
  ['hard-coded password or token', 'settings.py', `# settings\n\nSECRET_KEY = '${'django-insecure-' + alnum(40)}'\n`],
  ['hard-coded password or token', 'conf.json', `{\n  "host": "db",\n  "api_key": "${alnum(32)}"\n}`],
  ['hard-coded password or token', 'main.go', `package main\n\ntoken := "${alnum(24)}"\n`],
  ['hard-coded password or token', 'db.rb', `# db\n\nconnect(:password => '${alnum(16)}')\n`],
  ['hard-coded password or token', 'oauth.yml', `oauth:\n  id: web\n  client_secret: "${alnum(30)}"\n`],
];

describe('contentFindings', () => {
  it.each(samples)('finds a %s in %s, on its line', (rule, path, content) => {
    expect(contentFindings(path, text(content))).toEqual([{ path, rule, line: 3 }]);
  });

  it('has a sample for every default content rule', () => {
    expect(new Set(samples.map(([rule]) => rule))).toEqual(new Set(DEFAULT_CONTENT_RULES.map((r) => r.name)));
  });

  const harmless = [
    'password = os.environ["X"]',
    'token: string',
    'const token = process.env.TOKEN;',
    'export function login(password: string, token?: string): void {}',
    'DB_PASSWORD = os.getenv("DB_PASSWORD")',
    'password: "${DB_PASSWORD}"',
    'password: "{{ .Values.db.password }}"',
    'GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}',
    'token: "GITHUB_TOKEN_FOR_RELEASES"',
    "api_key = 'YOUR_API_KEY_HERE'",
    'api_key = "your-api-key-goes-here"',
    'secret: "************"',
    'token: "xxxxxxxxxxxxxxxxxxxxxxxx"',
    'password: "<password-goes-here>"',
    'password = "example-password-1"',
    'token = "short"',
    'max_tokens: 4096',
    'tokenizer = "bert-base-uncased-v2"',
    'password_hash = "pbkdf2-sha256-deadbeef00"',
    'secretName: my-tls-secret-2024',
    'if (password === "correct-horse-1") return;',
    '//registry.npmjs.org/:_authToken=${NPM_TOKEN}',
    'this._auth = createAuthentication(options);',
    '_auth = HTTPBasicAuth(user, password)',
    'pip install scikit-learn  # sk-learn, sk-learn-intelex',
    'const SK = "sk-" + suffix;',
    'className="sk-FadingCircleSpinnerContainerStyles"',
    'const AWS_SECRET_ACCESS_KEY = process.env.AWS_SECRET_ACCESS_KEY;',
    'aws_secret_access_key = awsSecretAccessKeyFromTheEnvironmentXY',
    'See https://hooks.slack.com/ for incoming webhooks',
    'xoxo-gossip-girl-forever-and-ever',
    'hf_hub_download(repo_id="gpt2", filename="config.json")',
    'const x = hf_abcdefghijklmnopqrstuvwxyzabcdefghij;',
    '-----BEGIN CERTIFICATE-----',
    '-----BEGIN PUBLIC KEY-----',
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq9 user@host',
    '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="',
    'The AKIA prefix marks a long-term AWS key; XAKIAABCDEFGHIJKLMNOP is not one.',
  ];
  it.each(harmless)('lets %j pass', (line) => {
    expect(contentFindings('src/app.ts', text(`${line}\n`))).toEqual([]);
  });

  it('numbers lines from 1, with CRLF endings too, in line order', () => {
    const content = ['first', `token = "${'ghp_' + alnum(36)}"`, 'x', 'y', `id = ${awsKeyId}`].join('\r\n');
    expect(contentFindings('a.txt', text(content))).toEqual([
      { path: 'a.txt', rule: 'GitHub token', line: 2 },
      { path: 'a.txt', rule: 'AWS access key', line: 5 },
    ]);
    expect(contentFindings('b.txt', text(awsKeyId))).toEqual([{ path: 'b.txt', rule: 'AWS access key', line: 1 }]);
  });

  it('reports one finding per line, the most specific rule', () => {
    const line = `token = "${'ghp_' + alnum(36)}" + "${'ghp_' + alnum(36, 1)}"`;
    expect(contentFindings('a.ts', text(line))).toEqual([{ path: 'a.ts', rule: 'GitHub token', line: 1 }]);
  });

  it('skips binary files: a NUL within the first 8000 bytes', () => {
    const secret = text(`\nid = ${awsKeyId}\n`);
    const withNulAt = (at: number): Buffer => Buffer.concat([Buffer.alloc(at, 'a'), Buffer.from([0]), secret]);
    expect(contentFindings('a.bin', withNulAt(0))).toEqual([]);
    expect(contentFindings('a.bin', withNulAt(BINARY_SNIFF_BYTES - 1))).toEqual([]);
    expect(rulesOf(contentFindings('a.bin', withNulAt(BINARY_SNIFF_BYTES)))).toEqual(['AWS access key']);
  });

  it(`skips files over ${MAX_SCAN_BYTES} bytes`, () => {
    const sized = (size: number): Buffer => {
      const b = Buffer.alloc(size, 'lorem ipsum\n');
      b.write(`id = ${awsKeyId}\n`);
      return b;
    };
    expect(rulesOf(contentFindings('big.txt', sized(MAX_SCAN_BYTES)))).toEqual(['AWS access key']);
    expect(contentFindings('big.txt', sized(MAX_SCAN_BYTES + 1))).toEqual([]);
  });

  it('adds deny_patterns, run per line (^ and $ at line ends) and named by position', () => {
    const leaked = 'ACME-' + '73519046';
    const policy = { deny_patterns: ['ACME-[0-9]{8}', '^internal:', leaked] };
    const found = contentFindings('notes.md', text(`intro\ninternal: yes\nref ${leaked}\nnot internal: here\n`), policy);
    expect(found).toEqual([
      { path: 'notes.md', rule: 'custom pattern #2', line: 2 },
      { path: 'notes.md', rule: 'custom pattern #1', line: 3 },
    ]);
    expect(describeFindings(found)).not.toContain(leaked);
    expect(contentFindings('notes.md', text(`id = ${awsKeyId}`), policy)).toEqual([{ path: 'notes.md', rule: 'AWS access key', line: 1 }]);
  });

  it('exempts allow_paths', () => {
    expect(contentFindings('test/fixtures/key.txt', text(pemBlock('RSA')), { allow_paths: ['test/fixtures/**'] })).toEqual([]);
    expect(rulesOf(contentFindings('test/key.txt', text(pemBlock('RSA')), { allow_paths: ['test/fixtures/**'] }))).toEqual(['private key']);
  });
});

describe('compilePolicy', () => {
  it('names a deny pattern that is not a regex', () => {
    expect(() => compilePolicy({ deny_patterns: ['ok', '(unclosed'] }, 'nodes.json')).toThrow(ConfigError);
    expect(() => compilePolicy({ deny_patterns: ['ok', '(unclosed'] }, 'nodes.json')).toThrow(
      /^nodes\.json: deny_patterns\[1\]: "\(unclosed" is not a valid regular expression/,
    );
    expect(() => scanFile('a.txt', text('x'), { deny_patterns: ['[z-a]'] })).toThrow(/"\[z-a\]"/);
  });

  it('refuses a deny pattern that matches empty text', () => {
    expect(() => compilePolicy({ deny_patterns: ['x*'] })).toThrow(/deny_patterns\[0\]: "x\*" matches empty text/);
  });

  it('refuses empty globs, bad classes and "!" in allow_paths', () => {
    expect(() => compilePolicy({ deny_paths: ['/'] })).toThrow(/deny_paths\[0\]: glob "\/" matches no path/);
    expect(() => compilePolicy({ deny_paths: ['file[z-a]'] })).toThrow(/deny_paths\[0\]/);
    expect(() => compilePolicy({ allow_paths: ['!.env'] })).toThrow(/allow_paths\[0\]/);
    expect(() => compilePolicy({ deny_paths: [''] })).toThrow(/deny_paths\[0\]: must be a non-empty string/);
  });

  it('gives a policy the scan functions take as it is', () => {
    const compiled = compilePolicy({ deny_paths: ['*.secret'] });
    expect(pathFinding('x/a.secret', compiled)?.rule).toBe('deny_paths: *.secret');
    expect(pathFinding('.env', compiled)?.rule).toBe('.env file');
  });
});

describe('scanFile', () => {
  it('reports a denied path once, without reading its content', () => {
    const content = text(`A=1\nAWS_ACCESS_KEY_ID=${awsKeyId}\n`);
    expect(scanFile('.env', content)).toEqual([{ path: '.env', rule: '.env file' }]);
    expect(scanFile('.env', undefined)).toEqual([{ path: '.env', rule: '.env file' }]);
  });

  it('scans the content of a path that may travel, templates included', () => {
    expect(scanFile('.env.example', text(`A=1\nAWS_ACCESS_KEY_ID=${awsKeyId}\n`))).toEqual([{ path: '.env.example', rule: 'AWS access key', line: 2 }]);
    expect(scanFile('.env.example', text('AWS_ACCESS_KEY_ID=\n'))).toEqual([]);
    expect(scanFile('src/a.ts', undefined)).toEqual([]);
  });

  it('lets allow_paths through both checks', () => {
    const policy = { allow_paths: ['test/fixtures/**'] };
    expect(scanFile('test/fixtures/id_rsa', text(pemBlock('OPENSSH')), policy)).toEqual([]);
    expect(scanFile('src/id_rsa', text(pemBlock('OPENSSH')), policy)).toEqual([{ path: 'src/id_rsa', rule: 'SSH private key' }]);
  });
});

describe('describeFindings', () => {
  const many: SecretFinding[] = Array.from({ length: 7 }, (_, i) => ({ path: `f${i}.ts`, rule: 'GitHub token', line: i + 1 }));

  it('says how many, then where and what, on one line', () => {
    expect(
      describeFindings([
        { path: '.env', rule: '.env file' },
        { path: 'src/a.ts', rule: 'AWS access key', line: 3 },
      ]),
    ).toBe('2 secret(s): .env (.env file), src/a.ts:3 (AWS access key)');
    expect(describeFindings([])).toBe('no secrets');
  });

  it('lists at most `limit` (5 by default) and counts the rest', () => {
    expect(describeFindings(many, 2)).toBe('7 secret(s): f0.ts:1 (GitHub token), f1.ts:2 (GitHub token), and 5 more');
    expect(describeFindings(many)).toMatch(/f4\.ts:5 \(GitHub token\), and 2 more$/);
    expect(describeFindings(many, 0)).toBe('7 secret(s)');
  });

  it('quotes a path holding a newline so the description stays one line', () => {
    const d = describeFindings([{ path: 'a\nb/.env', rule: '.env file' }]);
    expect(d).toBe('1 secret(s): "a\\nb/.env" (.env file)');
    expect(d).not.toContain('\n');
  });

  const upperDigits = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');
  const anyAlnum = fc.constantFrom(...ALNUM);
  const token = (prefix: string, unit: fc.Arbitrary<string>, length: number) =>
    fc.string({ unit, minLength: length, maxLength: length }).map((suffix) => ({ prefix, suffix }));

  it('never contains the secret, whatever its value', () => {
    const tokens = fc.oneof(
      token('AKIA', upperDigits, 16),
      token('ghp_', anyAlnum, 36),
      token('ghs_', anyAlnum, 40),
      token('glpat-', anyAlnum, 20),
      token('sk_live_', anyAlnum, 24),
      token('AIza', anyAlnum, 35),
      token('sk-ant-api03-', anyAlnum, 40),
      token('npm_', anyAlnum, 36),
    );
    fc.assert(
      fc.property(tokens, fc.nat(5), ({ prefix, suffix }, before) => {
        const content = `${'line\n'.repeat(before)}const value = "${prefix}${suffix}";\n`;
        const findings = scanFile('src/config.ts', text(content));
        expect(findings).toHaveLength(1);
        expect(findings[0]!.line).toBe(before + 1);
        const d = describeFindings(findings);
        expect(d).not.toContain(suffix);
        expect(JSON.stringify(findings)).not.toContain(suffix);
      }),
    );
  });
});

describe('this module and its test', () => {
  it('do not trip the default rules (gsync scans its own repository too)', () => {
    for (const file of ['../src/secrets.ts', './secrets.test.ts']) {
      expect(contentFindings(file, readFileSync(new URL(file, import.meta.url)))).toEqual([]);
    }
  });
});
