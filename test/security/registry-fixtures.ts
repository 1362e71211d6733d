import 'reflect-metadata';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { container as rootContainer } from 'tsyringe';
import {
  EventKind,
  FrameConnection,
  FunctionServer,
  Status,
  decodeBody,
  encodeEventRequest,
  encodeEventResponse,
  eventKindOf,
  isRequest,
  requestIdOf,
  statusOf,
  type ApplicationServer,
  type CloseReason,
  type FunctionServerInfo,
  type FunctionServerOptions,
  type Hello,
  type LoadReport,
  type ServiceDescriptor,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { backgroundEcho, steadyMonitor, type Background, type Harness } from '../fixtures/cluster.js';
import { FS_NAME, WhoAmIPlugin } from '../fixtures/test-plugins.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

export const HOST = '127.0.0.1';

/** The answer to a two-way control event: its status and decoded body. */
export interface EventAnswer {
  status: number;
  body: { code?: string; message?: string; fsId?: string } | undefined;
}

/** A HELLO body: `name` at `endpoint`, serving `keys` (none idempotent unless given as descriptors). */
export function helloFor(name: string, endpoint: { host: string; port: number }, keys: readonly (number | ServiceDescriptor)[] = [1]): Hello {
  return {
    name,
    poolType: 0,
    standby: false,
    endpoint,
    services: keys.map((k) => (typeof k === 'number' ? { key: k, idempotent: false } : k)),
  };
}

/** A LOAD body reporting `elu` (and the same CPU). */
export function loadOf(elu: number): LoadReport {
  return { cpu: elu, elu, rssBytes: 1e6, heapUsedBytes: 1e6, memory: 0.01, inflight: 0 };
}

/**
 * A control-port peer that is not a FunctionServer: it says whatever HELLO, LOAD and DRAIN it is
 * told to. It answers the AS's heartbeats (FrameConnection does), so it stays up for the test.
 */
export class ControlPeer {
  readonly conn: FrameConnection;
  readonly closed: Promise<CloseReason>;
  #isClosed = false;
  #nextId = 1;
  readonly #waiters = new Map<number, (a: EventAnswer) => void>();

  private constructor(socket: Socket) {
    let done!: (r: CloseReason) => void;
    this.closed = new Promise((r) => (done = r));
    this.conn = new FrameConnection(socket, {
      heartbeatMs: 0,
      onEvent: (frame) => {
        if (isRequest(frame)) return;
        const w = this.#waiters.get(requestIdOf(frame));
        if (!w) return;
        this.#waiters.delete(requestIdOf(frame));
        w({ status: statusOf(frame), body: decodeBody(frame) as EventAnswer['body'] });
      },
      onClose: (reason) => {
        this.#isClosed = true;
        done(reason);
      },
    });
  }

  static async connect(h: Harness, port = h.controlPort): Promise<ControlPeer> {
    const socket = connect({ host: HOST, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const peer = new ControlPeer(socket);
    h.defer(() => peer.destroy());
    return peer;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sends a two-way event and resolves with its answer. */
  request(kind: number, body: unknown, timeoutMs = 2000): Promise<EventAnswer> {
    const id = this.#nextId++;
    const answered = new Promise<EventAnswer>((r) => this.#waiters.set(id, r));
    this.conn.send(encodeEventRequest(kind, id, body, true));
    return withTimeout(answered, timeoutMs, `the answer to event ${kind} #${id}`);
  }

  hello(h: Hello): Promise<EventAnswer> {
    return this.request(EventKind.HELLO, h);
  }

  /** Sends a one-way event (LOAD, say). */
  send(kind: number, body: unknown): void {
    this.conn.send(encodeEventRequest(kind, 0, body, false));
  }

  /** Waits until the AS closes this link; resolves with the reason this side saw. */
  waitClosed(timeoutMs = 3000): Promise<CloseReason> {
    return withTimeout(this.closed, timeoutMs, 'the AS to close the control link');
  }

  destroy(): Promise<CloseReason> {
    this.conn.destroy('local');
    return this.closed;
  }
}

export interface FakeFsOptions {
  /** The name its DESCRIBE answer gives. */
  name: string;
  services: readonly { key: number; idempotent?: boolean; timeoutMs?: number }[];
  /** What DESCRIBE answers; defaults to { name, poolType 0, standby false, services }. */
  describe?: unknown;
  /** What to do with a request frame (a copy); default: swallow it (a black hole). */
  onRequest?: (frame: Buffer, conn: FrameConnection) => void;
  /** Closes each accepted socket at once (a port whose process is gone but whose address still takes the SYN). */
  slam?: boolean;
}

/**
 * A pool-side FS made of a net server and FrameConnections: it answers heartbeats and DESCRIBE
 * and does with requests what it is told (by default nothing: a black hole).
 */
export class FakeFs {
  readonly conns = new Set<FrameConnection>();
  readonly requests: Buffer[] = [];
  accepted = 0;
  port = 0;
  readonly #sockets = new Set<Socket>();
  readonly #server = createServer((s) => this.#accept(s));

  private constructor(readonly o: FakeFsOptions) {}

  static async start(h: Harness, o: FakeFsOptions, host = HOST): Promise<FakeFs> {
    const f = new FakeFs(o);
    await new Promise<void>((resolve, reject) => {
      f.#server.once('error', reject);
      f.#server.listen(0, host, () => resolve());
    });
    f.port = (f.#server.address() as AddressInfo).port;
    h.defer(() => f.stop());
    return f;
  }

  get endpoint(): { host: string; port: number } {
    return { host: HOST, port: this.port };
  }

  /** Sends DRAIN on every pool connection, as a stopping FS does. */
  drainAll(): void {
    for (const c of this.conns) c.send(encodeEventRequest(EventKind.DRAIN, 0, {}, false));
  }

  /** Closes the listener and every connection at once: the process is gone. */
  stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    for (const c of this.conns) c.destroy('local');
    return new Promise((r) => this.#server.close(() => r()));
  }

  #accept(s: Socket): void {
    this.accepted++;
    this.#sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => this.#sockets.delete(s));
    if (this.o.slam) {
      s.destroy();
      return;
    }
    const conn = new FrameConnection(s, {
      heartbeatMs: 0,
      onFrame: (frame, c) => {
        if (!isRequest(frame)) return;
        const copy = Buffer.from(frame);
        this.requests.push(copy);
        this.o.onRequest?.(copy, c);
      },
      onEvent: (frame, c) => {
        if (isRequest(frame) && eventKindOf(frame) === EventKind.DESCRIBE) {
          const body = this.o.describe ?? { name: this.o.name, poolType: 0, standby: false, services: this.o.services };
          c.send(encodeEventResponse(EventKind.DESCRIBE, requestIdOf(frame), body, Status.OK));
        }
      },
      onClose: (_r, _e, c) => this.conns.delete(c),
    });
    this.conns.add(conn);
  }
}

/**
 * An in-process FS whose DESCRIBE answer gives `name` while its who-am-i service answers `whoAmI`:
 * a process that claims another's name, and whose answers tell it apart. Not registered.
 */
export async function startLookalikeFs(h: Harness, name: string, whoAmI: string, opts: Partial<FunctionServerOptions> = {}): Promise<FunctionServer> {
  const container = rootContainer.createChildContainer();
  container.register(FS_NAME, { useValue: whoAmI });
  const fs = new FunctionServer({ name, plugins: [EchoPlugin, WhoAmIPlugin], monitor: steadyMonitor(0.1), drainTimeoutMs: 1000, container, ...opts });
  await fs.start();
  h.defer(() => fs.stop());
  return fs;
}

/**
 * The harness's background echo client, without its 20 000-call cap (4 lanes of in-process echo
 * use that up in a few seconds, and a test that runs longer would see its traffic "stop"), and
 * already flowing when it resolves.
 */
export async function steadyBackground(h: Harness, lanes = 2): Promise<Background> {
  const bg = backgroundEcho(await h.client(), lanes, 10_000_000);
  h.defer(() => bg.stop());
  // Flowing before the test does anything to the cluster.
  await waitFor(() => bg.ok() >= 20, 'background traffic to start');
  return bg;
}

export function fsInfo(as: ApplicationServer, id: string): FunctionServerInfo | undefined {
  return as.listFunctionServers().find((f) => f.id === id);
}

/** Resolves with the reason once `id` leaves the registry. */
export function waitForLeft(as: ApplicationServer, id: string, timeoutMs = 3000): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve) => {
      const on = (info: FunctionServerInfo, why: string): void => {
        if (info.id !== id) return;
        as.off('fs-left', on);
        resolve(why);
      };
      as.on('fs-left', on);
    }),
    timeoutMs,
    `${id} to leave the registry (now ${fsInfo(as, id)?.state ?? 'absent'})`,
  );
}

/** The q-quantile (0..1) of `xs`, nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export type Settled = { ok: true; value: unknown } | { ok: false; error: Error };

/** Settles `p` at once into a value or an error, so that a test failing early leaves no unhandled rejection. */
export function settled(p: Promise<unknown>): Promise<Settled> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: Error) => ({ ok: false as const, error }),
  );
}

/** The error a promise rejects with; fails if it resolves. */
export function failure(p: Promise<unknown>): Promise<Error & { code?: string; status?: number }> {
  return p.then(
    () => {
      throw new Error('the call succeeded; it should have failed');
    },
    (e: Error) => e,
  );
}
