import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { AsState, Head, decodePairMessage, encodePairMessage, type DropReason, type PairMessage } from '../../src/application-server/pair/pair-datagram.js';
import { DROP_REASONS, PAIR_RECV_BUFFER_BYTES, PairTransport, type PairTransportOptions } from '../../src/application-server/pair/pair-transport.js';
import { rmemMax } from '../fixtures/kernel.js';

/*
 * PairTransport over real UDP sockets on 127.0.0.1: what reaches the state machine, and what is
 * dropped and counted under which reason.
 */

const HOST = '127.0.0.1';
const SECRET = Buffer.alloc(32, 0x5a);
const ID_RECEIVER = '1111111111111111';
const ID_SIBLING = '2222222222222222';
/** The receiving side's clock, injected: the datagrams it is sent are stamped near it. */
const NOW = 1_700_000_000_000;
const SKEW = 60_000;

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

type Event = { kind: 'message'; m: PairMessage } | { kind: 'drop'; reason: DropReason; from: string; message: string };

/** Collects what a transport reports, in order; next() waits for the next report. */
class Events {
  readonly all: Event[] = [];
  #taken = 0;
  #wake: (() => void) | undefined;

  push(e: Event): void {
    this.all.push(e);
    this.#wake?.();
  }

  async next(ms = 2000): Promise<Event> {
    const deadline = Date.now() + ms;
    while (this.#taken >= this.all.length) {
      if (Date.now() > deadline) throw new Error(`nothing reported within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    return this.all[this.#taken++];
  }

  get messages(): PairMessage[] {
    return this.all.flatMap((e) => (e.kind === 'message' ? [e.m] : []));
  }
}

interface Raw {
  socket: Socket;
  port: number;
  received: Buffer[];
  send(b: Buffer, port: number): Promise<void>;
  /** Waits until `count` datagrams have arrived. */
  waitFor(count: number): Promise<void>;
}

async function raw(): Promise<Raw> {
  const socket = createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (b) => received.push(b));
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  closers.push(() => socket.close());
  return {
    socket,
    port: socket.address().port,
    received,
    send: (b, port) => new Promise<void>((resolve, reject) => socket.send(b, port, HOST, (err) => (err ? reject(err) : resolve()))),
    async waitFor(count) {
      const deadline = Date.now() + 2000;
      while (received.length < count) {
        if (Date.now() > deadline) throw new Error(`${received.length} of ${count} datagrams arrived`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
}

interface Bound {
  t: PairTransport;
  port: number;
  events: Events;
  opts: PairTransportOptions;
}

/** A transport on 127.0.0.1:0 whose sibling is `peerPort`. */
async function transport(nodeId: string, peerPort: number, over: Partial<PairTransportOptions> = {}): Promise<Bound> {
  const events = new Events();
  const opts: PairTransportOptions = {
    host: HOST,
    port: 0,
    peer: { host: HOST, port: peerPort },
    secret: SECRET,
    maxClockSkewMs: SKEW,
    onMessage: (m) => events.push({ kind: 'message', m }),
    onDrop: (reason, from, message) => events.push({ kind: 'drop', reason, from, message }),
    now: () => NOW,
    ...over,
  };
  const t = new PairTransport(nodeId, opts);
  closers.push(() => t.close());
  const port = await t.bind();
  return { t, port, events, opts };
}

function message(over: Partial<PairMessage> = {}): PairMessage {
  return {
    head: Head.CONNECTED,
    state: AsState.ACTIVE,
    id: 1,
    nodeId: ID_SIBLING,
    priority: 150,
    preempt: false,
    epoch: 3,
    seq: BigInt(NOW) * 1000n,
    data: { client: { host: '10.0.0.1', port: 7100 } },
    ...over,
  };
}

/** A datagram as the sibling would send it: signed, stamped `ms` from the receiver's clock. */
const datagram = (over: Partial<PairMessage> = {}, secret = SECRET): Buffer => encodePairMessage(message(over), secret);
const at = (ms: number): bigint => BigInt(NOW + ms) * 1000n;

function counts(t: PairTransport): Partial<Record<DropReason, number>> {
  return Object.fromEntries([...t.dropped].filter(([, n]) => n > 0));
}

/** A receiver and the raw socket it takes as its sibling. */
async function receiverWithRawSibling(over: Partial<PairTransportOptions> = {}): Promise<{ r: Bound; sibling: Raw }> {
  const sibling = await raw();
  const r = await transport(ID_RECEIVER, sibling.port, over);
  return { r, sibling };
}

describe('PairTransport: what is delivered', () => {
  it('a datagram from one transport reaches its sibling transport, checked and decoded', async () => {
    // a's sibling port is known only once b is bound: a reads its peer when it sends.
    const a = await transport(ID_SIBLING, 0, { now: Date.now });
    const b = await transport(ID_RECEIVER, a.port, { now: Date.now });
    a.opts.peer.port = b.port;
    const m = message({ seq: 0n, head: Head.NEGOTIATE, state: AsState.INITIAL, data: { token: Buffer.from('0102030405060708', 'hex') } });
    const { seq: _seq, ...unsequenced } = m;
    a.t.send(unsequenced);
    const e = await b.events.next();
    expect(e.kind).toBe('message');
    const got = (e as { m: PairMessage }).m;
    expect({ ...got, seq: 0n }).toEqual(m);
    expect(Math.abs(Number(got.seq / 1000n) - Date.now())).toBeLessThan(5000);
    expect([a.t.sent, b.t.received]).toEqual([1, 1]);
    expect(counts(b.t)).toEqual({});
    // and back
    b.t.send({ ...unsequenced, nodeId: ID_RECEIVER, head: Head.RESPONSED, data: {} });
    expect(await a.events.next()).toMatchObject({ kind: 'message', m: { head: Head.RESPONSED, nodeId: ID_RECEIVER } });
  });

  it('every drop counter starts at zero', async () => {
    const { r } = await receiverWithRawSibling();
    expect([...r.t.dropped.keys()].sort()).toEqual([...DROP_REASONS].sort());
    expect([...r.t.dropped.values()].every((n) => n === 0)).toBe(true);
    expect(DROP_REASONS).toHaveLength(9);
  });
});

describe('PairTransport: what is dropped, and under which reason', () => {
  const garbage = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0x7f));
  const cases: { what: string; reason: DropReason; bytes: () => Buffer }[] = [
    { what: 'a few bytes of garbage', reason: 'short', bytes: () => Buffer.from('hello') },
    { what: 'a hundred bytes of garbage', reason: 'frame-head', bytes: () => garbage },
    { what: 'a truncated datagram (the tag cut short)', reason: 'short', bytes: () => datagram().subarray(0, datagram().length - 1) },
    { what: 'a truncated datagram (half a header)', reason: 'short', bytes: () => datagram().subarray(0, 16) },
    {
      what: 'a wrong frame head',
      reason: 'frame-head',
      bytes: () => {
        const b = datagram();
        b[0] = 0xfe;
        return b;
      },
    },
    {
      what: 'a wrong version',
      reason: 'version',
      bytes: () => {
        const b = datagram();
        b[3] = 2;
        return b;
      },
    },
    { what: 'a forged datagram (another secret)', reason: 'tag', bytes: () => datagram({}, Buffer.alloc(32, 0x5b)) },
    {
      what: 'a damaged datagram (one bit of the epoch)',
      reason: 'tag',
      bytes: () => {
        const b = datagram();
        b[23] ^= 1;
        return b;
      },
    },
    { what: 'an unknown head, well signed', reason: 'malformed', bytes: () => datagram({ head: 0xa1 as never }) },
    { what: 'a clock too far ahead', reason: 'clock', bytes: () => datagram({ seq: at(SKEW + 1) }) },
    { what: 'a clock too far behind', reason: 'clock', bytes: () => datagram({ seq: at(-SKEW - 1) }) },
    { what: 'our own node id', reason: 'self', bytes: () => datagram({ nodeId: ID_RECEIVER }) },
  ];

  it.each(cases)('$what → $reason, and the next good one still gets through', async ({ reason, bytes }) => {
    const { r, sibling } = await receiverWithRawSibling();
    await sibling.send(bytes(), r.port);
    const e = await r.events.next();
    expect(e).toMatchObject({ kind: 'drop', reason, from: `${HOST}:${sibling.port}` });
    expect(counts(r.t)).toEqual({ [reason]: 1 });
    expect(r.t.received).toBe(0);
    await sibling.send(datagram({ id: 2 }), r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'message', m: { id: 2 } });
    expect(r.events.messages).toHaveLength(1);
    expect(r.t.received).toBe(1);
    expect(counts(r.t)).toEqual({ [reason]: 1 });
  });

  it('a replay of a captured datagram → replay', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    const captured = datagram({ id: 7 });
    await sibling.send(captured, r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'message', m: { id: 7 } });
    await sibling.send(captured, r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'drop', reason: 'replay' });
    expect(counts(r.t)).toEqual({ replay: 1 });
    expect(r.events.messages).toHaveLength(1);
  });

  it('an older sequence, or the same one, from the same node → replay; a later one is taken', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    await sibling.send(datagram({ id: 1, seq: at(0) }), r.port);
    await sibling.send(datagram({ id: 2, seq: at(0) - 1n }), r.port);
    await sibling.send(datagram({ id: 3, seq: at(0) }), r.port);
    await sibling.send(datagram({ id: 4, seq: at(0) + 1n }), r.port);
    const seen = [];
    for (let i = 0; i < 4; i++) {
      const e = await r.events.next();
      seen.push(e.kind === 'message' ? e.m.id : e.reason);
    }
    expect(seen).toEqual([1, 'replay', 'replay', 4]);
    expect(counts(r.t)).toEqual({ replay: 2 });
    expect(r.t.received).toBe(2);
  });

  it('across node ids too: a recording of an earlier incarnation → replay; a restarted sibling, stamping later, is taken', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    const OLD = '4444444444444444';
    const CURRENT = '5555555555555555';
    // Captured from the sibling's earlier incarnation (an active of epoch 4), 1.4 s ago.
    const recording = datagram({ id: 1, nodeId: OLD, epoch: 4, seq: at(-1400) });
    // The sibling as it runs now (restarted: a new node id, epoch 1), heard first.
    await sibling.send(datagram({ id: 2, nodeId: CURRENT, epoch: 1, seq: at(-200) }), r.port);
    await sibling.send(recording, r.port);
    // Its own later datagram, and a later restart of it, are taken.
    await sibling.send(datagram({ id: 3, nodeId: CURRENT, epoch: 1, seq: at(0) }), r.port);
    await sibling.send(datagram({ id: 4, nodeId: '6666666666666666', epoch: 1, seq: at(100) }), r.port);
    // And the one before that restart is now old news too.
    await sibling.send(datagram({ id: 5, nodeId: CURRENT, epoch: 1, seq: at(50) }), r.port);
    const seen = [];
    for (let i = 0; i < 5; i++) {
      const e = await r.events.next();
      seen.push(e.kind === 'message' ? e.m.id : e.reason);
    }
    expect(seen).toEqual([2, 'replay', 3, 4, 'replay']);
    expect(counts(r.t)).toEqual({ replay: 2 });
  });

  it('a clock exactly maxClockSkewMs away is taken; one dropped for its clock does not move the replay window', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    // Far ahead: dropped, and not remembered (else every honest datagram after it would be a "replay").
    await sibling.send(datagram({ id: 1, seq: at(10 * SKEW) }), r.port);
    await sibling.send(datagram({ id: 2, seq: at(-SKEW) }), r.port);
    await sibling.send(datagram({ id: 3, seq: at(SKEW) }), r.port);
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const e = await r.events.next();
      seen.push(e.kind === 'message' ? e.m.id : e.reason);
    }
    expect(seen).toEqual(['clock', 2, 3]);
    expect(counts(r.t)).toEqual({ clock: 1 });
  });

  it('the clock check follows the injected now', async () => {
    const { r, sibling } = await receiverWithRawSibling({ now: () => NOW + 10 * SKEW });
    await sibling.send(datagram({ id: 1, seq: at(0) }), r.port);
    await sibling.send(datagram({ id: 2, seq: at(10 * SKEW) }), r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'drop', reason: 'clock' });
    expect(await r.events.next()).toMatchObject({ kind: 'message', m: { id: 2 } });
    expect(counts(r.t)).toEqual({ clock: 1 });
  });

  it('a third node with the same secret, from another port → stranger', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    const third = await raw();
    await third.send(datagram({ nodeId: '3333333333333333' }), r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'drop', reason: 'stranger', from: `${HOST}:${third.port}` });
    // Even a copy of the sibling's own datagram, sent from elsewhere.
    await third.send(datagram({ id: 9 }), r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'drop', reason: 'stranger' });
    expect(counts(r.t)).toEqual({ stranger: 2 });
    expect(r.t.received).toBe(0);
    // The stranger's datagram did not use up the sibling's sequence: the same one from the sibling is taken.
    await sibling.send(datagram({ id: 9 }), r.port);
    expect(await r.events.next()).toMatchObject({ kind: 'message', m: { id: 9 } });
  });

  it("another address, from the sibling's port number → stranger", async () => {
    const { r, sibling } = await receiverWithRawSibling();
    // 127.0.0.2 is loopback too (Linux answers for all of 127/8): same port, another host.
    const other = createSocket('udp4');
    closers.push(() => other.close());
    await new Promise<void>((resolve) => other.bind(sibling.port, '127.0.0.2', resolve));
    await new Promise<void>((resolve, reject) => other.send(datagram(), r.port, HOST, (err) => (err ? reject(err) : resolve())));
    expect(await r.events.next()).toMatchObject({ kind: 'drop', reason: 'stranger', from: `127.0.0.2:${sibling.port}` });
    expect(counts(r.t)).toEqual({ stranger: 1 });
    expect(r.t.received).toBe(0);
  });

  it('nothing dropped reaches onMessage', async () => {
    const { r, sibling } = await receiverWithRawSibling();
    for (const c of cases) await sibling.send(c.bytes(), r.port);
    for (let i = 0; i < cases.length; i++) expect((await r.events.next()).kind).toBe('drop');
    expect(r.events.messages).toEqual([]);
    expect(r.t.received).toBe(0);
    const expected: Partial<Record<DropReason, number>> = {};
    for (const c of cases) expected[c.reason] = (expected[c.reason] ?? 0) + 1;
    expect(counts(r.t)).toEqual(expected);
  });
});

describe('PairTransport: the sequence it sends', () => {
  async function sender(now: () => number): Promise<{ s: Bound; capture: Raw }> {
    const capture = await raw();
    const s = await transport(ID_SIBLING, capture.port, { now });
    return { s, capture };
  }

  const unsequenced = (id: number): Omit<PairMessage, 'seq'> => {
    const { seq: _seq, ...m } = message({ id });
    return m;
  };

  it('is the clock in µs, strictly increasing even when now() does not move or goes back', async () => {
    let clock = 5000;
    const { s, capture } = await sender(() => clock);
    s.t.send(unsequenced(1));
    s.t.send(unsequenced(2));
    s.t.send(unsequenced(3));
    clock = 5001;
    s.t.send(unsequenced(4));
    clock = 4000; // stepped back
    s.t.send(unsequenced(5));
    clock = 9000;
    s.t.send(unsequenced(6));
    await capture.waitFor(6);
    const bySeq = new Map(capture.received.map((b) => decodePairMessage(b, SECRET)).map((m) => [m.id, m.seq]));
    expect([1, 2, 3, 4, 5, 6].map((id) => bySeq.get(id))).toEqual([5_000_000n, 5_000_001n, 5_000_002n, 5_001_000n, 5_001_001n, 9_000_000n]);
    expect(s.t.sent).toBe(6);
  });

  it('signs with the secret and sends to the configured sibling', async () => {
    const { s, capture } = await sender(() => NOW);
    s.t.send(unsequenced(1));
    await capture.waitFor(1);
    expect(decodePairMessage(capture.received[0], SECRET)).toMatchObject({ id: 1, nodeId: ID_SIBLING, seq: at(0) });
    expect(() => decodePairMessage(capture.received[0], Buffer.alloc(32, 0x5b))).toThrow(/tag/);
  });
});

describe('PairTransport: its receive buffer', () => {
  // Linux gives min(asked, net.core.rmem_max) and reports twice that; without asking, a socket has
  // net.core.rmem_default (about 200 KiB), which a flood at the pair port fills in a moment.
  it.skipIf(rmemMax() === undefined)('asks the kernel for 4 MiB (or recvBufferBytes) and reads back what it gave', async () => {
    const cap = rmemMax() as number;
    expect(PAIR_RECV_BUFFER_BYTES).toBe(4 * 1024 * 1024);
    const plain = await raw();
    const { t } = await transport(ID_RECEIVER, plain.port);
    expect(t.recvBufferAsked).toBe(PAIR_RECV_BUFFER_BYTES);
    expect(t.recvBufferSize).toBe(2 * Math.min(PAIR_RECV_BUFFER_BYTES, cap));
    expect(t.recvBufferSize).toBeGreaterThan(plain.socket.getRecvBufferSize());
    const { t: small } = await transport(ID_RECEIVER, plain.port, { recvBufferBytes: 1024 * 1024 });
    expect(small.recvBufferAsked).toBe(1024 * 1024);
    expect(small.recvBufferSize).toBe(2 * Math.min(1024 * 1024, cap));
  });
});
