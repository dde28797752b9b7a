import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { tempDir } from './git-repo.js';

/**
 * A git remote over HTTPS for tests: git's own `http-backend` (CGI) behind a Node HTTPS
 * server with a self-signed certificate, which answers 401 to any request that does not
 * carry the token as the Basic password. Repositories live under `root`.
 */
export interface HttpsRemote {
  root: string;
  /** The certificate to trust (GIT_SSL_CAINFO); readable by every user. */
  caFile: string;
  url(name: string): string;
  /** Requests answered 401, and requests served. */
  counts: { refused: number; served: number };
  stop(): Promise<void>;
}

export async function startHttpsRemote(token: string): Promise<HttpsRemote> {
  const dir = tempDir('gsync-https-');
  chmodSync(dir, 0o755);
  const key = join(dir, 'key.pem');
  const caFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      caFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  chmodSync(caFile, 0o644);
  const root = join(dir, 'repos');
  execFileSync('mkdir', ['-p', root]);
  const counts = { refused: 0, served: 0 };
  const expected = `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;

  const server: Server = createServer({ key: readFileSync(key), cert: readFileSync(caFile) }, (req, res) => {
    if (req.headers.authorization !== expected) {
      counts.refused++;
      req.resume();
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="gsync-test"' }).end('token required\n');
      return;
    }
    counts.served++;
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        REMOTE_USER: 'x-access-token',
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin);
    // The CGI answer: header lines, a blank line, then the body as it comes.
    let head = Buffer.alloc(0);
    let inBody = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (inBody) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const [name, value] = [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
        if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
        else if (name) res.setHeader(name, value);
      }
      res.writeHead(status);
      inBody = true;
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => res.end());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return {
    root,
    caFile,
    counts,
    url: (name) => `https://127.0.0.1:${port}/${name}.git`,
    stop: () => new Promise<void>((done) => server.close(() => done())),
  };
}
