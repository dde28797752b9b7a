import { connect, createServer, type Socket } from 'node:net';

/**
 * A loopback TCP proxy that breaks connections on purpose, for tests that
 * need a link to die or hang at an exact byte offset.
 *
 * A fault fires when the proxy would have to forward the byte after `bytes`
 * in its direction: exactly `bytes` bytes pass, the next one never does. So
 * a stream of exactly `bytes` bytes (or fewer) passes untouched and ends as
 * 'closed'. When several faults could fire, the first one reached wins.
 */
export interface FaultPlan {
  /** Cut the connection (destroy both sockets) after this many bytes have passed in the given direction ('up' = client→server, 'down' = server→client). */
  cutAfterBytes?: { direction: 'up' | 'down'; bytes: number };
  /** Instead of cutting, stall (stop forwarding, keep sockets open) after N bytes: simulates a hung link. Both directions stop; only close() ends the sockets. */
  stallAfterBytes?: { direction: 'up' | 'down'; bytes: number };
}

export interface ConnectionRecord {
  up: number;
  down: number;
  ended: 'open' | 'closed' | 'cut' | 'stalled';
}

export interface FaultProxy {
  /** Listening on 127.0.0.1. */
  port: number;
  /** The plan for the NEXT accepted connection(s): a queue; each new connection takes the next plan, and when the queue is empty connections pass through untouched. */
  plan(...plans: FaultPlan[]): void;
  /** Bytes forwarded per connection so far, and how each connection ended ('closed' | 'cut' | 'stalled'), in accept order. */
  connections(): ConnectionRecord[];
  /** Closes the listener and every socket. */
  close(): Promise<void>;
}

type Direction = 'up' | 'down';
interface Fault {
  kind: 'cut' | 'stall';
  direction: Direction;
  bytes: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
/** How long a cut waits for the bytes before the offset to reach the kernel, if the receiver has stopped reading. */
const CUT_FLUSH_MS = 2_000;

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  // The proxy is a test tool: it must never become a way to reach another machine.
  if (!LOOPBACK.has(target.host)) throw new Error(`fault proxy: target host ${JSON.stringify(target.host)} is not loopback (127.0.0.1, localhost or ::1)`);
  const queue: Fault[][] = [];
  const records: ConnectionRecord[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    track(client);
    track(upstream);
    const record: ConnectionRecord = { up: 0, down: 0, ended: 'open' };
    records.push(record);
    splice(client, upstream, queue.shift() ?? [], record);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });

  return {
    port: (server.address() as { port: number }).port,
    plan(...plans) {
      queue.push(...plans.map(faultsOf));
    },
    connections() {
      return records.map((r) => ({ ...r }));
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const gone = [...sockets].map((s) => new Promise((resolve) => s.once('close', resolve)));
      for (const s of sockets) s.destroy();
      for (const r of records) if (r.ended === 'open') r.ended = 'closed';
      await Promise.all([closed, ...gone]);
    },
  };
}

function faultsOf(plan: FaultPlan): Fault[] {
  const faults: Fault[] = [];
  for (const [kind, spec] of [
    ['cut', plan.cutAfterBytes],
    ['stall', plan.stallAfterBytes],
  ] as const) {
    if (!spec) continue;
    if (spec.direction !== 'up' && spec.direction !== 'down')
      throw new Error(`fault proxy: ${kind} direction must be 'up' or 'down', got ${String(spec.direction)}`);
    if (!Number.isSafeInteger(spec.bytes) || spec.bytes < 0) throw new Error(`fault proxy: ${kind} bytes must be a non-negative integer, got ${spec.bytes}`);
    faults.push({ kind, direction: spec.direction, bytes: spec.bytes });
  }
  return faults;
}

/** The fault that fires first in one direction; a cut beats a stall at the same offset. */
function faultFor(faults: Fault[], direction: Direction): Fault | undefined {
  return faults.filter((f) => f.direction === direction).sort((a, b) => a.bytes - b.bytes || (a.kind === 'cut' ? -1 : 1))[0];
}

function splice(client: Socket, upstream: Socket, faults: Fault[], record: ConnectionRecord): void {
  let faulted = false;

  const fire = (fault: Fault, src: Socket, dst: Socket, head: Buffer) => {
    faulted = true;
    record.ended = fault.kind === 'cut' ? 'cut' : 'stalled';
    if (fault.kind === 'stall') {
      dst.write(head);
      client.pause();
      upstream.pause();
      return;
    }
    // destroy() would drop bytes still queued in Node, so the cut waits until
    // everything up to the offset is in the kernel. Reading (and dropping) what
    // dst sends meanwhile keeps its receive queue empty, so closing it sends a
    // FIN after the data rather than a RST that could discard it.
    src.pause();
    dst.resume();
    let timer: NodeJS.Timeout | undefined;
    const cut = () => {
      clearTimeout(timer);
      client.destroy();
      upstream.destroy();
    };
    if (dst.destroyed) return cut();
    timer = setTimeout(cut, CUT_FLUSH_MS);
    dst.once('finish', cut);
    dst.once('close', cut);
    dst.end(head);
  };

  const forward = (src: Socket, dst: Socket, direction: Direction) => {
    const fault = faultFor(faults, direction);
    src.on('data', (chunk: Buffer) => {
      if (faulted) return;
      const room = fault ? fault.bytes - record[direction] : Infinity;
      if (fault && chunk.length > room) {
        const head = chunk.subarray(0, room);
        record[direction] += head.length;
        fire(fault, src, dst, head);
        return;
      }
      record[direction] += chunk.length;
      if (!dst.write(chunk)) {
        src.pause();
        dst.once('drain', () => {
          if (!faulted) src.resume();
        });
      }
    });
    src.on('end', () => {
      if (!faulted) dst.end();
    });
    // Errors (resets, a refused upstream) end the connection like a close does.
    src.on('error', () => {});
    src.on('close', () => {
      if (faulted) return;
      if (record.ended === 'open') record.ended = 'closed';
      dst.destroy();
    });
  };

  forward(client, upstream, 'up');
  forward(upstream, client, 'down');
}
