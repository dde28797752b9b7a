import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { cleanupTempDirs } from './helpers/git-repo.js';
import { startSshNodes, type SshNode, type SshWorld } from './helpers/sshd.js';

/**
 * The fault proxy against a plain loopback server (exact offsets, plan queue,
 * backpressure, close) and in front of a real sshd with the real ssh client.
 */
const proxies: FaultProxy[] = [];
const servers: { server: Server; sockets: Set<Socket> }[] = [];

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  for (const { server, sockets } of servers.splice(0)) {
    for (const s of sockets) s.destroy();
    server.close();
  }
});

async function proxyTo(port: number): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port });
  proxies.push(proxy);
  return proxy;
}

/** A loopback server that runs `serve` on every connection; torn down after each test. */
async function target(serve: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    serve(s);
  });
  servers.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Sends `payload` to every client, then ends (unless `hold`). */
const source = (payload: Buffer, hold = false) => target((s) => (hold ? s.write(payload) : s.end(payload)));

/** Collects what each client sent; `got(i)` resolves when connection i closes. */
async function sink(): Promise<{ port: number; got(i: number): Promise<Buffer> }> {
  const results: Promise<Buffer>[] = [];
  const settle: ((b: Buffer) => void)[] = [];
  const slot = (i: number) => (results[i] ??= new Promise((resolve) => (settle[i] = resolve)));
  let n = 0;
  const port = await target((s) => {
    const i = n++;
    slot(i);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => settle[i]!(Buffer.concat(chunks)));
  });
  return { port, got: slot };
}

/** Connects, optionally sends, and resolves with everything received once the socket closes. */
function client(port: number, send?: Buffer, onData?: (total: number, s: Socket) => void): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let total = 0;
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      total += c.length;
      onData?.(total, s);
    });
    s.on('close', () => resolve(Buffer.concat(chunks)));
    if (send) s.end(send);
  });
}

/** The proxy learns of a clean close a moment after the client does. */
async function settled(proxy: FaultProxy): Promise<ReturnType<FaultProxy['connections']>> {
  for (let i = 0; i < 100 && proxy.connections().some((c) => c.ended === 'open'); i++) await sleep(10);
  return proxy.connections();
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cutDown = (bytes: number) => ({ cutAfterBytes: { direction: 'down' as const, bytes } });
const cutUp = (bytes: number) => ({ cutAfterBytes: { direction: 'up' as const, bytes } });

describe('fault proxy over plain TCP', () => {
  const payload = randomBytes(4096);

  it('cuts after exactly 0, 1 and a mid-chunk number of bytes, down and up', async () => {
    const down = await proxyTo(await source(payload));
    for (const n of [0, 1, 1234]) {
      down.plan(cutDown(n));
      expect(await client(down.port)).toEqual(payload.subarray(0, n));
    }
    expect(down.connections()).toEqual([0, 1, 1234].map((n) => ({ up: 0, down: n, ended: 'cut' })));

    const { port, got } = await sink();
    const up = await proxyTo(port);
    for (const [i, n] of [0, 1, 1234].entries()) {
      up.plan(cutUp(n));
      await client(up.port, payload);
      expect(await got(i)).toEqual(payload.subarray(0, n));
    }
    expect(up.connections()).toEqual([0, 1, 1234].map((n) => ({ up: n, down: 0, ended: 'cut' })));
  });

  it('cuts exactly at a chunk boundary', async () => {
    let firstArrived!: () => void;
    const gate = new Promise<void>((r) => (firstArrived = r));
    const port = await target((s) => {
      s.write(payload.subarray(0, 1000));
      // The second write waits until the first is through, so they cannot share a chunk.
      void gate.then(() => s.end(payload.subarray(1000)));
    });
    const proxy = await proxyTo(port);
    proxy.plan(cutDown(1000));
    const got = await client(proxy.port, undefined, (total) => total === 1000 && firstArrived());
    expect(got).toEqual(payload.subarray(0, 1000));
    expect(proxy.connections()).toEqual([{ up: 0, down: 1000, ended: 'cut' }]);
  });

  it('does not cut when the offset is at or past the end of the stream', async () => {
    const proxy = await proxyTo(await source(payload));
    proxy.plan(cutDown(payload.length), cutDown(payload.length + 1), cutUp(0));
    for (let i = 0; i < 3; i++) expect(sha(await client(proxy.port))).toBe(sha(payload));
    expect(await settled(proxy)).toEqual(Array(3).fill({ up: 0, down: payload.length, ended: 'closed' }));
  });

  it('applies queued plans to successive connections, then passes through', async () => {
    const proxy = await proxyTo(await source(payload));
    proxy.plan(cutDown(10), {}, cutDown(20));
    const lengths = [];
    for (let i = 0; i < 4; i++) lengths.push((await client(proxy.port)).length);
    expect(lengths).toEqual([10, 4096, 20, 4096]);
    expect((await settled(proxy)).map((c) => c.ended)).toEqual(['cut', 'closed', 'cut', 'closed']);
  });

  it('stalls: forwards exactly N bytes, then nothing either way, sockets left open', async () => {
    // A server that both sends and listens, and never closes on its own.
    const received: Buffer[] = [];
    const port = await target((s) => {
      s.on('data', (c: Buffer) => received.push(c));
      s.write(payload);
    });
    const proxy = await proxyTo(port);
    proxy.plan({ stallAfterBytes: { direction: 'down', bytes: 100 } });
    let total = 0;
    let closed = false;
    const s = connect(proxy.port, '127.0.0.1');
    s.on('data', (c: Buffer) => (total += c.length));
    s.on('close', () => (closed = true));
    await sleep(150);
    s.write('ping after the stall');
    await sleep(250);
    expect([total, closed, received.length]).toEqual([100, false, 0]);
    expect(proxy.connections()).toEqual([{ up: 0, down: 100, ended: 'stalled' }]);
    await proxy.close();
    await sleep(20);
    expect(closed).toBe(true);
    expect(proxy.connections()[0]!.ended).toBe('stalled');
  });

  it('moves 20 MiB each way intact, holding back while the receiver does not read', async () => {
    const big = randomBytes(20 * 1024 * 1024);
    const down = await proxyTo(await source(big));
    const chunks: Buffer[] = [];
    const s = connect(down.port, '127.0.0.1');
    await sleep(300);
    // Without backpressure the proxy would have buffered all 20 MiB by now.
    expect(down.connections()[0]!.down).toBeLessThan(big.length / 2);
    await new Promise((resolve) => {
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('close', resolve);
    });
    expect(sha(Buffer.concat(chunks))).toBe(sha(big));
    expect(await settled(down)).toEqual([{ up: 0, down: big.length, ended: 'closed' }]);

    const { port, got } = await sink();
    const up = await proxyTo(port);
    await client(up.port, big);
    expect(sha(await got(0))).toBe(sha(big));
    expect(await settled(up)).toEqual([{ up: big.length, down: 0, ended: 'closed' }]);
  });

  it('close() ends the listener and every connection, open or stalled', async () => {
    const proxy = await proxyTo(await source(payload, true));
    proxy.plan({}, { stallAfterBytes: { direction: 'down', bytes: 10 } });
    const open = client(proxy.port);
    const stalled = client(proxy.port);
    await sleep(100);
    await proxy.close();
    expect((await open).length).toBe(4096);
    expect((await stalled).length).toBe(10);
    expect(proxy.connections().map((c) => c.ended)).toEqual(['closed', 'stalled']);
    const refused = await new Promise<string>((resolve) => {
      const s = connect(proxy.port, '127.0.0.1', () => resolve('connected'));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(refused).toBe('ECONNREFUSED');
  });

  it('refuses a target that is not loopback, and a malformed plan', async () => {
    for (const host of ['10.0.0.1', '0.0.0.0', 'example.com', '127.0.0.2']) {
      await expect(startFaultProxy({ host, port: 22 })).rejects.toThrow(/not loopback/);
    }
    const proxy = await proxyTo(await source(payload));
    expect(() => proxy.plan(cutUp(-1))).toThrow(/non-negative integer/);
    expect(() => proxy.plan(cutUp(1.5))).toThrow(/non-negative integer/);
  });
});

describe('fault proxy in front of a real sshd', () => {
  let world: SshWorld;
  let node: SshNode;
  let blob: Buffer;
  let blobPath: string;

  beforeAll(async () => {
    world = await startSshNodes([{ name: 'n1' }], 'gsproxy');
    node = world.node('n1');
    blob = randomBytes(1024 * 1024);
    // world.dir is world-readable, so the node user can cat the file there.
    blobPath = join(world.dir, 'blob.bin');
    writeFileSync(blobPath, blob, { mode: 0o644 });
  });

  afterAll(async () => {
    await world?.stop();
    cleanupTempDirs();
  });

  /**
   * The real ssh client through the proxy. known_hosts holds the key under
   * `[127.0.0.1]:<sshd port>`; HostKeyAlias makes ssh look it up there even
   * though it connects to the proxy's port.
   */
  function ssh(proxy: FaultProxy, extra: string[] = []): Promise<{ code: number | null; stdout: Buffer; stderr: string; ms: number }> {
    const args = ['-F', world.sshConfig, '-o', `Port=${proxy.port}`, '-o', `HostKeyAlias=[127.0.0.1]:${node.port}`];
    args.push('-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=5', ...extra, node.alias, `cat ${blobPath}`);
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn('ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr, ms: Date.now() - started }));
    });
  }

  it('passes a 1 MiB file through intact with no plan', async () => {
    const proxy = await proxyTo(node.port);
    const r = await ssh(proxy);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(sha(r.stdout)).toBe(sha(blob));
    expect(await settled(proxy)).toMatchObject([{ ended: 'closed' }]);
    expect(proxy.connections()[0]!.down).toBeGreaterThan(blob.length);
  });

  it('a cut mid-transfer fails the ssh command after exactly that many bytes', async () => {
    const proxy = await proxyTo(node.port);
    proxy.plan(cutDown(300_000));
    const r = await ssh(proxy);
    expect(r.code).toBe(255);
    expect(r.stdout.length).toBeLessThan(300_000);
    expect(blob.subarray(0, r.stdout.length).equals(r.stdout)).toBe(true);
    expect(proxy.connections()).toMatchObject([{ down: 300_000, ended: 'cut' }]);
    console.log(`ssh on a cut: exit ${r.code}, ${r.stdout.length} bytes of stdout, stderr ${JSON.stringify(r.stderr.trim())}`);
  });

  it('a stall hangs the ssh command until its keepalive timeout', async () => {
    const proxy = await proxyTo(node.port);
    proxy.plan({ stallAfterBytes: { direction: 'down', bytes: 300_000 } });
    const r = await ssh(proxy, ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Timeout, server .* not responding/);
    expect(r.ms).toBeGreaterThan(1_500);
    expect(proxy.connections()).toMatchObject([{ down: 300_000, ended: 'stalled' }]);
    console.log(`ssh on a stall: exit ${r.code} after ${r.ms} ms, ${r.stdout.length} bytes of stdout, stderr ${JSON.stringify(r.stderr.trim())}`);
  });
});
