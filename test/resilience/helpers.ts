import 'reflect-metadata';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { RoleProcess } from '../../src/cli/child-process.js';
import {
  ApplicationServer,
  Client,
  EventKind,
  FrameParser,
  FunctionServer,
  encodeEventResponse,
  eventKindOf,
  isEvent,
  type ApplicationServerOptions,
  type FsState,
  type FunctionServerInfo,
  type FunctionServerOptions,
} from '../../src/index.js';
import { EchoPlugin } from '../../src/plugins/samples/echo-plugin.js';
import { whoPlugin } from './plugins.js';
import { waitFor, withTimeout } from '../fixtures/wait.js';

export * from './plugins.js';

export const HOST = '127.0.0.1';
/** The built CLI: child FSs run the same build the tests import from src/. */
export const DIST_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/** Plugin module for child FSs (plain JS on top of dist/): 3001 slow idempotent, 3003 who-am-i. */
export const CHILD_PLUGIN = fileURLToPath(new URL('./child-plugin.mjs', import.meta.url));

import { Cleanup } from '../fixtures/cleanup.js';

export { Cleanup, useCleanup } from '../fixtures/cleanup.js';

export { waitFor, withTimeout };

export function fsInfo(as: ApplicationServer, id: string): FunctionServerInfo | undefined {
  return as.listFunctionServers().find((f) => f.id === id);
}

export function servedBy(as: ApplicationServer, id: string): number {
  return fsInfo(as, id)?.served ?? 0;
}

/** Resolves on the 'fs-state' event that puts `id` in `state` (at once if it is there already). */
export function waitForState(as: ApplicationServer, id: string, state: FsState, timeoutMs = 3000): Promise<FunctionServerInfo> {
  const now = fsInfo(as, id);
  if (now?.state === state) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const on = (info: FunctionServerInfo): void => {
      if (info.id !== id || info.state !== state) return;
      clearTimeout(timer);
      as.off('fs-state', on);
      resolve(info);
    };
    const timer = setTimeout(() => {
      as.off('fs-state', on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${id} to be ${state} (now ${fsInfo(as, id)?.state ?? 'absent'})`));
    }, timeoutMs);
    as.on('fs-state', on);
  });
}

/** Resolves on the 'fs-left' event for `id`, with its reason. */
export function waitForLeft(as: ApplicationServer, id: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const on = (info: FunctionServerInfo, why: string): void => {
      if (info.id !== id) return;
      clearTimeout(timer);
      as.off('fs-left', on);
      resolve(why);
    };
    const timer = setTimeout(() => {
      as.off('fs-left', on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${id} to leave`));
    }, timeoutMs);
    as.on('fs-left', on);
  });
}

export async function startAs(c: Cleanup, opts: ApplicationServerOptions = {}): Promise<{ as: ApplicationServer; port: number; controlPort: number }> {
  // stop() drops its clients at once, as a lost AS would, and unknown keys are SERVICE_NOT_FOUND from
  // the start; tests of the drain or the start-up grace set their own.
  const as = new ApplicationServer({ clientDrainTimeoutMs: 0, startupGraceMs: 0, ...opts });
  const ports = await as.start();
  c.defer(() => as.stop());
  return { as, ...ports };
}

/** An in-process FS (echo and who-am-i unless told otherwise) that registers by HELLO when given `controlPort`. */
export async function startFs(c: Cleanup, name: string, controlPort: number | undefined, opts: Partial<FunctionServerOptions> = {}): Promise<FunctionServer> {
  const fs = new FunctionServer({
    name,
    plugins: [EchoPlugin, whoPlugin(name)],
    applicationServer: controlPort === undefined ? undefined : { host: HOST, port: controlPort },
    drainTimeoutMs: 2000,
    ...opts,
  });
  await fs.start();
  c.defer(() => fs.stop());
  return fs;
}

export async function connectClient(c: Cleanup, port: number): Promise<Client> {
  const client = await Client.connect({ port, heartbeatMs: 200 });
  c.defer(() => client.close());
  return client;
}

/**
 * An FS child process through the built CLI. Teardown is by PID: SIGCONT first (a stopped process
 * cannot die of SIGTERM and is slow to reap), then SIGKILL.
 */
export function spawnFs(c: Cleanup, name: string, args: string[]): RoleProcess {
  const p = new RoleProcess(name, ['fs', '--name', name, '--host', HOST, ...args], { cliPath: DIST_CLI });
  c.defer(async () => {
    p.signal('SIGCONT');
    await p.stop('SIGKILL', 2000);
  });
  return p;
}

/** Listens on `port` (0 = any) and calls `onSocket` for each accepted socket; closed (sockets too) at teardown. */
export async function listenRaw(c: Cleanup, port: number, onSocket: (s: Socket) => void): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve());
  });
  c.defer(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

/** A raw TCP peer that collects the frames it reads (heartbeats included). */
export class RawPeer {
  readonly frames: Buffer[] = [];
  readonly closed: Promise<void>;
  isClosed = false;

  constructor(readonly socket: Socket) {
    const parser = new FrameParser({ maxBodyBytes: 64 << 20, onFrame: (f) => this.frames.push(Buffer.from(f)), onError: () => undefined });
    socket.on('data', (chunk: Buffer) => parser.push(chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
    void this.closed.then(() => (this.isClosed = true));
  }

  static async connect(c: Cleanup, port: number): Promise<RawPeer> {
    const s = connect({ host: HOST, port });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.once('connect', () => resolve());
    });
    const p = new RawPeer(s);
    c.defer(() => s.destroy());
    return p;
  }

  /**
   * Writes `bytes` one byte every `everyMs` (a slowloris) until they run out or the socket closes;
   * returns a function that stops it. Bytes keep arriving, so the peer is never silent for the
   * heartbeat rule, while a frame they belong to stays unfinished.
   */
  trickle(bytes: Buffer, everyMs: number): () => void {
    let i = 0;
    const timer = setInterval(() => {
      if (this.isClosed || this.socket.destroyed || i >= bytes.length) {
        clearInterval(timer);
        return;
      }
      this.socket.write(bytes.subarray(i, ++i));
    }, everyMs);
    void this.closed.then(() => clearInterval(timer));
    return () => clearInterval(timer);
  }

  /**
   * Sends a pong (a HEARTBEAT event response, request id 0) every `everyMs` without reading
   * anything: bytes keep arriving at the other side even though this peer never answers a ping.
   * Returns a function that stops it.
   */
  blindPongs(everyMs: number): () => void {
    const pong = encodeEventResponse(EventKind.HEARTBEAT, 0, undefined);
    const timer = setInterval(() => {
      if (this.isClosed || this.socket.destroyed) clearInterval(timer);
      else this.socket.write(pong);
    }, everyMs);
    void this.closed.then(() => clearInterval(timer));
    return () => clearInterval(timer);
  }

  /** Frames that are not heartbeats. */
  traffic(): Buffer[] {
    return this.frames.filter((f) => !(isEvent(f) && eventKindOf(f) === EventKind.HEARTBEAT));
  }
}

export interface LoadResult {
  ok: number;
  errors: string[];
}

/**
 * Keeps `lanes` callers busy until stopped (bounded by `max` calls): each lane awaits its call,
 * then makes the next one. `call(i)` returns the promise of call number i.
 */
export function steadyLoad(lanes: number, call: (i: number) => Promise<unknown>, max = 50_000): { ok(): number; stop(): Promise<LoadResult> } {
  let stopped = false;
  let n = 0;
  let ok = 0;
  const errors: string[] = [];
  const lane = async (): Promise<void> => {
    while (!stopped && n < max) {
      const i = n++;
      try {
        await call(i);
        ok++;
      } catch (err) {
        errors.push(`call ${i}: ${(err as Error).message}`);
      }
    }
  };
  const running = Promise.all(Array.from({ length: lanes }, lane));
  return {
    ok: () => ok,
    stop: async () => {
      stopped = true;
      await running;
      return { ok, errors };
    },
  };
}

/** The outcome of a promise without throwing: the value, or the error and when it came. */
export async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T; at: number } | { ok: false; error: Error & { status?: number }; at: number }> {
  try {
    const value = await p;
    return { ok: true, value, at: performance.now() };
  } catch (error) {
    return { ok: false, error: error as Error & { status?: number }, at: performance.now() };
  }
}
