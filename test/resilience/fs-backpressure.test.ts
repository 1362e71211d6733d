import { describe, expect, it } from 'vitest';
import {
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HEADER_SIZE,
  Serialization,
  Status,
  decodeBody,
  encodeFrameRaw,
  encodeResponse,
  isEvent,
  requestIdOf,
  statusOf,
  type ApplicationServer,
  type Client,
  type FrameConnection,
} from '../../src/index.js';
import type { ClientSession } from '../../src/application-server/ingress/client-session.js';
import { ECHO } from '../../src/plugins/samples/echo-plugin.js';
import { useHarness, waitFor, waitForAvailable, type RawSocket } from '../fixtures/cluster.js';
import { FakeFs, HOST, fsInfo } from '../security/registry-fixtures.js';

// What holds a client's reading, besides its own full socket: the FS connection its requests go
// to being backed up (Dispatcher: pause when up.conn.blocked), and its own byte budget in flight
// (ClientSession.admit/done, maxInflightBytesPerClient). Both are watched through the AS's own
// state: the FS entry's in-flight count (requests forwarded and not answered), the upstream
// connection's `waiting` set, and what the FS received.
const h = useHarness();
const KEY = 77;
const BODY_BYTES = 8 * 1024;
/** One request's length: what it holds of its client's byte budget. */
const FRAME_BYTES = HEADER_SIZE + BODY_BYTES;

/** A two-way raw-bodied request of 8 KiB whose body starts with `tag` and the client's id, so the FS can tell whose it is. */
function request(id: number, tag: number): Buffer {
  const body = Buffer.alloc(BODY_BYTES, 0x2e);
  body[0] = tag;
  body.writeUInt32BE(id, 1);
  return encodeFrameRaw({ flags: FLAG_REQUEST | FLAG_TWO_WAY | Serialization.RAW, requestId: id, serviceKey: KEY }, body);
}

const tagOf = (frame: Buffer): number => frame[HEADER_SIZE];
const answersTo = (raw: RawSocket): Buffer[] => raw.frames.filter((f) => !isEvent(f));

function inflightOf(as: ApplicationServer, id: string): number {
  return fsInfo(as, id)?.inflight ?? -1;
}

/**
 * Round trips through the AS (to another FS) until `probe` has given the same value 10 times in a
 * row: the AS went around its event loop that often and nothing changed. A paused client's bytes
 * wait in the kernel, so had the AS been reading them, each round trip would have moved `probe`.
 */
async function steady<T>(other: Client, probe: () => T): Promise<T> {
  let last = probe();
  let same = 0;
  for (let i = 0; same < 10; i++) {
    if (i > 5000) throw new Error(`still changing after ${i} round trips (now ${String(last)})`);
    expect(await other.call(ECHO, i)).toBe(i);
    const now = probe();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

describe('backpressure from an FS connection', () => {
  it('pauses a client whose FS connection is backed up, far below what it wrote, and lets the rest flow once the FS reads again', async () => {
    const N = 4000;
    // Heartbeats off: no rule may close the pool connection the FS stops reading. The client
    // limits are far away, so neither of them is what holds the client.
    const as = await h.startAs({ heartbeatMs: 0, maxInflightPerClient: 100_000, maxInflightBytesPerClient: 1 << 30 });
    let stuck: FrameConnection | undefined;
    const fake = await FakeFs.start(h, {
      name: 'fs-stuck',
      services: [{ key: KEY }],
      onRequest: (_f, conn) => {
        if (stuck !== undefined) return;
        stuck = conn;
        conn.pauseReading(); // reads nothing more, answers nothing
      },
    });
    as.addFunctionServer({ host: HOST, port: fake.port, name: 'fs-stuck' });
    await h.startFs({ name: 'fs-ok' }); // serves echo, for the other client
    await waitForAvailable(as, 2);
    const other = await h.client();
    const flood = await h.raw();
    const frames: Buffer[] = [];
    for (let id = 1; id <= N; id++) frames.push(request(id, 0xa));
    flood.write(Buffer.concat(frames)); // 32 MiB

    const up = as.manager.get('fs-stuck')?.pool.connections()[0];
    if (up === undefined) throw new Error('fs-stuck has no pool connection');
    await waitFor(() => up.waiting.size === 1, 'the AS to hold the client on the backed-up FS connection');
    // Forwarding stops: the kernel buffers between the AS and the FS fill, then nothing moves.
    const plateau = await steady(other, () => `${inflightOf(as, 'fs-stuck')}/${up.conn.socket.writableLength}`);
    const forwarded = inflightOf(as, 'fs-stuck');
    expect(plateau.startsWith(`${forwarded}/`)).toBe(true);
    expect(forwarded).toBeGreaterThan(0);
    expect(forwarded).toBeLessThan(N / 4);
    // Held by the mechanism: the FS connection is blocked and the client's reading is paused on it.
    expect(up.blocked).toBe(true);
    const held = [...up.waiting][0] as ClientSession;
    expect(held.paused).toBe(true);
    expect(held.conn.socket.isPaused()).toBe(true);
    // What was not forwarded was not read either: it still waits on the client's side.
    expect(flood.socket.writableLength).toBeGreaterThan(0);
    expect(flood.isClosed).toBe(false);

    // The FS reads again: its connection drains, the AS resumes the client, and every request flows.
    (stuck as FrameConnection).resumeReading();
    await waitFor(() => inflightOf(as, 'fs-stuck') === N, `all ${N} requests to be forwarded`, 15_000);
    await waitFor(() => fake.requests.length === N, `the FS to receive all ${N}`, 5000);
    expect(up.waiting.size).toBe(0);
    expect(held.paused).toBe(false);
    expect(new Set(fake.requests.map((f) => f.readUInt32BE(HEADER_SIZE + 1))).size).toBe(N); // each request once
    console.info(`forwarding stopped at ${forwarded} of ${N} requests while the FS connection was backed up`);
  });
});

describe('the per-client byte budget (maxInflightBytesPerClient)', () => {
  it("stops reading a client once its budget is in flight, resumes when half is answered, and does not hold another client", async () => {
    const BUDGET = 64 * 1024;
    const N = 40;
    const as = await h.startAs({ heartbeatMs: 0, maxInflightBytesPerClient: BUDGET });
    let fsConn: FrameConnection | undefined;
    // A slow FS: it reads everything at once (its connection never backs up) and answers only when told.
    const fake = await FakeFs.start(h, { name: 'fs-slow', services: [{ key: KEY }], onRequest: (_f, c) => (fsConn = c) });
    as.addFunctionServer({ host: HOST, port: fake.port, name: 'fs-slow' });
    await waitForAvailable(as, 1);
    const a = await h.raw();
    const b = await h.raw();
    const answered = new Set<Buffer>();
    const fromA = (): Buffer[] => fake.requests.filter((f) => tagOf(f) === 0xa);
    const answer = (f: Buffer): void => {
      answered.add(f);
      (fsConn as FrameConnection).send(encodeResponse(requestIdOf(f), Status.OK, f.readUInt32BE(HEADER_SIZE + 1), KEY));
    };
    let bSeq = 0;
    /** One request from client b, through the same FS: answered, so b is not held. */
    const roundTripB = async (): Promise<void> => {
      const id = ++bSeq;
      b.write(request(id, 0xb));
      await waitFor(() => fake.requests.some((f) => tagOf(f) === 0xb && f.readUInt32BE(HEADER_SIZE + 1) === id), `b's request ${id} at the FS`);
      answer(fake.requests.find((f) => tagOf(f) === 0xb && f.readUInt32BE(HEADER_SIZE + 1) === id) as Buffer);
      const got = await b.nextFrame();
      expect([requestIdOf(got), statusOf(got), decodeBody(got)]).toEqual([id, Status.OK, id]);
    };

    const all: Buffer[] = [];
    for (let id = 1; id <= N; id++) all.push(request(id, 0xa));
    a.write(Buffer.concat(all)); // 320 KiB: five times the budget
    const fill = Math.ceil(BUDGET / FRAME_BYTES); // the request that spends the budget: 8
    await waitFor(() => fromA().length >= fill, 'the budget to be in flight');
    // b is served while a is held; by the time b's request is through, every request a's last
    // read held has been forwarded ahead of it (same FS connection, in order).
    for (let i = 0; i < 3; i++) await roundTripB();
    const taken = fromA().length;
    // The budget, plus what was left of the read that spent it (at most one 64 KiB chunk).
    expect(taken).toBeGreaterThanOrEqual(fill);
    expect(taken).toBeLessThanOrEqual(fill + Math.ceil((64 * 1024) / FRAME_BYTES));
    expect(taken).toBeLessThan(N);
    expect(inflightOf(as, 'fs-slow')).toBe(taken);

    // Answer a's requests one by one: reading stays stopped while more than half the budget is in flight.
    const toResume = taken - Math.floor((BUDGET / 2 - 1) / FRAME_BYTES); // in flight must fall below BUDGET / 2
    const first = fromA();
    for (let j = 1; j < toResume; j++) {
      answer(first[j - 1]);
      await waitFor(() => answersTo(a).length === j, `a's answer ${j}`);
      await roundTripB(); // a would have been read before b's request, had it been resumed
      expect(fromA().length, `after ${j} answers, ${(taken - j) * FRAME_BYTES} bytes in flight`).toBe(taken);
    }
    answer(first[toResume - 1]); // now below half the budget: a is read again
    await waitFor(() => fromA().length > taken, "a's reading to resume once half the budget is answered");

    // The rest flows, a budget at a time, as the FS answers.
    await waitFor(() => {
      for (const f of fromA()) if (!answered.has(f)) answer(f);
      return answersTo(a).length === N;
    }, `all ${N} of a's requests to be answered`);
    const answers = answersTo(a);
    expect(answers.map(statusOf)).toEqual(Array(N).fill(Status.OK));
    expect(answers.map(requestIdOf).sort((x, y) => x - y)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(answers.map((f) => decodeBody(f))).toEqual(answers.map(requestIdOf));
    await roundTripB();
  });
});
