import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encodeRequest, encodeResponse } from '../../src/protocol/codec.js';
import { Status } from '../../src/protocol/status.js';
import { OFFSET } from '../../src/protocol/header.js';
import { Dispatcher, type IngressSession } from '../../src/application-server/routing/dispatcher.js';
import type { FsManager } from '../../src/application-server/registry/fs-manager.js';
import type { FunctionServerEntry } from '../../src/application-server/registry/function-server-entry.js';
import type { SchedulingStrategy } from '../../src/application-server/routing/scheduler.js';
import { PendingRequest, UpstreamConnection } from '../../src/application-server/registry/upstream-connection.js';
import type { FrameConnection } from '../../src/protocol/frame-connection.js';

/**
 * The dispatcher against fake FSs. Frames: the AS forwards request frames by reference (a view of
 * the client's read chunk), rewriting the request id and budget in place. A re-send or a hedge of the
 * same frame must not rewrite the bytes of a first send that a backed-up socket may still hold: the
 * fakes hold every forwarded frame by reference, as such a socket would, and check it still reads
 * as it was sent. Timers: the deadline sweep runs only while something is pending.
 */

interface FakeFs {
  entry: FunctionServerEntry;
  up: UpstreamConnection;
  /** What the AS forwarded to this FS, held by reference. */
  held: Buffer[];
}

function fakeFs(id: string): FakeFs {
  const held: Buffer[] = [];
  const pool: { owner?: unknown; rent: () => UpstreamConnection; connections: () => UpstreamConnection[] } = { rent: () => up, connections: () => [up] };
  const conn = { closed: false, blocked: false, owner: pool, forward: (buf: Buffer, off: number, len: number) => held.push(buf.subarray(off, off + len)) };
  const up = new UpstreamConnection(conn as unknown as FrameConnection);
  const entry = { id, inflight: 0, served: 0, retired: false, readsExtension: true, isIdempotent: () => true, pool } as unknown as FunctionServerEntry;
  pool.owner = entry;
  return { entry, up, held };
}

/** The FS with the fewest requests in flight, the first on a tie. */
const fewestInFlight: SchedulingStrategy = {
  name: 'fewest-in-flight',
  pick: (candidates) => candidates.reduce<(typeof candidates)[number] | undefined>((best, c) => (best === undefined || (c as unknown as FunctionServerEntry).inflight < (best as unknown as FunctionServerEntry).inflight ? c : best), undefined),
};

function session(): IngressSession {
  const s = {
    blocked: false,
    closed: false,
    inflight: 0,
    lastRequestAt: 0,
    maxInflight: 100,
    admit() {
      this.inflight++;
    },
    done() {},
    refuse() {},
    reply() {},
    replyFrom() {},
    pause() {},
    resume() {},
  };
  return s as IngressSession;
}

/** Whether two buffers are the same memory (not merely equal bytes). */
const sameMemory = (x: Buffer, y: Buffer): boolean => x.buffer === y.buffer && x.byteOffset === y.byteOffset;
const readId = (b: Buffer): number => b.readUInt32BE(OFFSET.requestId);
const readBudget = (b: Buffer): number => b.readUInt32BE(OFFSET.budget);

let dispatcher: Dispatcher | undefined;
afterEach(() => dispatcher?.close());

function setup() {
  const a = fakeFs('fs-a');
  const b = fakeFs('fs-b');
  // B has a request pending already, so the ids the AS gives on A and on B differ.
  b.up.pending.add(new PendingRequest(session(), 99, 1, 0, Number.MAX_SAFE_INTEGER, 0, 10, null, 1));
  return { a, b, d: startDispatcher([a, b], { maxAttempts: 3, sweepMs: 60_000, hedgeAfterRatio: 0.5 }) };
}

/** A dispatcher over the fake FSs, all active for every key. */
function startDispatcher(fss: FakeFs[], o: { maxAttempts: number; sweepMs: number; hedgeAfterRatio: number }): Dispatcher {
  const entries = fss.map((f) => f.entry);
  const manager = {
    candidates: () => ({ active: entries, standby: [], known: true }),
    withConnections: () => entries,
    recordOutcome: () => undefined,
    closeIfRetiredAndIdle: () => undefined,
  } as unknown as FsManager;
  dispatcher = new Dispatcher({ strategy: fewestInFlight, defaultTimeoutMs: 5000, maxInflightPerFs: 100, minTimeoutMs: 0, logger: pino({ level: 'silent' }), ...o });
  dispatcher.attach(manager);
  return dispatcher;
}

describe('Dispatcher: frames forwarded by reference', () => {
  it('forwards the client chunk itself, with the AS id and the budget left rewritten in place', () => {
    const { a, d } = setup();
    const chunk = encodeRequest(7, 1, { city: 'Beijing' }, { budgetMs: 1000 });
    d.dispatch(session(), chunk, 0, chunk.length);
    expect(a.held).toHaveLength(1);
    expect(sameMemory(a.held[0], chunk)).toBe(true); // no copy
    expect(readId(a.held[0])).toBe(1);
    expect(readBudget(a.held[0])).toBeGreaterThan(990);
  });

  it('a hedge sends its own copy: the first send, still held, keeps its id and budget', () => {
    const { a, b, d } = setup();
    const chunk = encodeRequest(7, 1, { city: 'Beijing' }, { budgetMs: 1000 });
    d.dispatch(session(), chunk, 0, chunk.length);
    const first = a.held[0];
    const [id, budget] = [readId(first), readBudget(first)];
    d.sweep(Date.now() + 600); // past half the budget: hedged to the other FS
    expect(d.hedged).toBe(1);
    expect(b.held).toHaveLength(1);
    expect(readId(b.held[0])).toBe(2);
    expect(readBudget(b.held[0])).toBeLessThan(500);
    expect(sameMemory(b.held[0], chunk)).toBe(false);
    expect(readId(first)).toBe(id);
    expect(readBudget(first)).toBe(budget);
  });

  it('a re-send after a lost connection sends its own copy too', () => {
    const { a, b, d } = setup();
    const chunk = encodeRequest(7, 1, { city: 'Beijing' }, { budgetMs: 1000 });
    d.dispatch(session(), chunk, 0, chunk.length);
    const first = a.held[0];
    const id = readId(first);
    d.orphaned(a.entry, a.up.takeAllPending());
    expect(d.resent).toBe(1);
    expect(readId(b.held[0])).toBe(2);
    expect(sameMemory(b.held[0], chunk)).toBe(false);
    expect(readId(first)).toBe(id);
  });
});

describe('Dispatcher: the deadline sweep runs only while requests are pending', () => {
  afterEach(() => vi.useRealTimers());

  function idleSetup() {
    vi.useFakeTimers();
    const a = fakeFs('fs-a');
    const d = startDispatcher([a], { maxAttempts: 1, sweepMs: 20, hedgeAfterRatio: 0 });
    const answers: number[] = [];
    const client = { ...session(), reply: (frame: Buffer) => answers.push(frame[OFFSET.status]) } as IngressSession;
    return { a, d, client, answers };
  }

  it('an idle AS holds no sweep timer; a request starts it and it stops once nothing is pending', () => {
    const { d, client, answers } = idleSetup();
    expect(d.sweeping).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    const chunk = encodeRequest(7, 1, { n: 1 }, { budgetMs: 100 });
    d.dispatch(client, chunk, 0, chunk.length);
    expect(d.sweeping).toBe(true);
    vi.advanceTimersByTime(140); // the FS never answers: the sweep fails it at its deadline
    expect(answers).toEqual([Status.TIMEOUT]);
    expect(d.sweeping).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('after an idle spell, a new request still gets its deadline (the sweep starts again)', () => {
    const { d, client, answers } = idleSetup();
    const first = encodeRequest(7, 1, { n: 1 }, { budgetMs: 100 });
    d.dispatch(client, first, 0, first.length);
    vi.advanceTimersByTime(10_000);
    expect(d.sweeping).toBe(false);
    const second = encodeRequest(8, 1, { n: 2 }, { budgetMs: 100 });
    d.dispatch(client, second, 0, second.length);
    vi.advanceTimersByTime(99);
    expect(answers).toEqual([Status.TIMEOUT]);
    vi.advanceTimersByTime(41);
    expect(answers).toEqual([Status.TIMEOUT, Status.TIMEOUT]);
  });

  it('stops after the last answer, and a closed dispatcher starts no sweep', () => {
    const { a, d, client } = idleSetup();
    const chunk = encodeRequest(7, 1, { n: 1 }, { budgetMs: 1000 });
    d.dispatch(client, chunk, 0, chunk.length);
    const answer = encodeResponse(readId(a.held[0]), Status.OK, { ok: true });
    d.response(a.up, answer, 0, answer.length);
    expect(d.sweeping).toBe(true); // until the next sweep sees nothing pending
    vi.advanceTimersByTime(20);
    expect(d.sweeping).toBe(false);
    d.close();
    const late = encodeRequest(9, 1, { n: 3 }, { budgetMs: 1000 });
    d.dispatch(client, late, 0, late.length);
    expect(d.sweeping).toBe(false);
  });
});
