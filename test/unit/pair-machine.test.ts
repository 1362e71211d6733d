import { describe, expect, it } from 'vitest';
import { AsState, Head, decodePairMessage, encodePairMessage, type HeadValue, type PairData, type PairMessage } from '../../src/application-server/pair/pair-datagram.js';
import { PairMachine, type PairRole } from '../../src/application-server/pair/pair-machine.js';
import type { Timers } from '../../src/protocol/timers.js';

/*
 * PairMachine against docs/pair.md §3, on a virtual clock, with two machines wired to each other
 * through an in-memory link the tests control (drop, delay, duplicate, cut; every message captured).
 */

// ---------------------------------------------------------------------------------------------
// A virtual clock. Every timer belongs to a lane (one per node), so one node can be frozen: its
// timers and the datagrams addressed to it wait, and run (in time order) when it resumes.

interface Task {
  at: number;
  order: number;
  fn: () => void;
  every?: number;
  lane: Lane;
}

class Lane {
  paused = false;
  readonly timers: Timers;
  constructor(readonly clock: Clock) {
    this.timers = {
      now: () => clock.now,
      setInterval: (fn, ms) => clock.schedule(this, ms, fn, ms),
      clearInterval: (h) => clock.cancel(h),
      setTimeout: (fn, ms) => clock.schedule(this, ms, fn),
      clearTimeout: (h) => clock.cancel(h),
    };
  }
}

class Clock {
  now = 0;
  #order = 0;
  readonly #tasks = new Set<Task>();

  schedule(lane: Lane, delay: number, fn: () => void, every?: number): Task {
    const t: Task = { at: this.now + delay, order: this.#order++, fn, every, lane };
    this.#tasks.add(t);
    return t;
  }

  cancel(h: unknown): void {
    this.#tasks.delete(h as Task);
  }

  /** Runs everything due by now + ms (on lanes not paused) in time order, ties in the order scheduled. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (let steps = 0; ; steps++) {
      if (steps > 100_000) throw new Error('the virtual clock runs away');
      let next: Task | undefined;
      for (const t of this.#tasks) {
        if (t.lane.paused || t.at > until) continue;
        if (!next || t.at < next.at || (t.at === next.at && t.order < next.order)) next = t;
      }
      if (!next) break;
      this.now = Math.max(this.now, next.at);
      if (next.every === undefined) this.#tasks.delete(next);
      else {
        next.at = this.now + next.every;
        next.order = this.#order++;
      }
      next.fn();
    }
    this.now = until;
  }

  advanceTo(t: number): void {
    this.advance(t - this.now);
  }
}

// ---------------------------------------------------------------------------------------------
// The link between side a and side b.

type Side = 'a' | 'b';
const otherSide = (s: Side): Side => (s === 'a' ? 'b' : 'a');
const SECRET = Buffer.alloc(32, 7);

interface Wire {
  /** When it was sent. */
  at: number;
  from: Side;
  m: PairMessage;
  dropped: boolean;
}

interface Delivery extends Wire {
  to: Side;
  deliveredAt: number;
}

class Net {
  readonly clock = new Clock();
  readonly lanes: Record<Side, Lane> = { a: new Lane(this.clock), b: new Lane(this.clock) };
  readonly nodes: Partial<Record<Side, Node>> = {};
  /** Everything sent, lost or not, in order. */
  readonly sent: Wire[] = [];
  readonly delivered: Delivery[] = [];
  /** cut[from]: everything `from` sends is lost. */
  readonly cut: Record<Side, boolean> = { a: false, b: false };
  /** Extra delay of what `from` sends. 0: delivered after the current call, at the same time. */
  readonly latency: Record<Side, number> = { a: 0, b: 0 };
  drop: (w: Wire) => boolean = () => false;
  duplicate: (w: Wire) => boolean = () => false;

  send(from: Side, m: PairMessage): void {
    // Through the real encoder and decoder: what the machine sends must be what the wire can carry.
    const w: Wire = { at: this.clock.now, from, m: decodePairMessage(encodePairMessage(m, SECRET), SECRET), dropped: false };
    this.sent.push(w);
    if (this.cut[from] || this.drop(w)) {
      w.dropped = true;
      return;
    }
    const to = otherSide(from);
    const copies = this.duplicate(w) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.clock.schedule(this.lanes[to], this.latency[from], () => {
        const n = this.nodes[to];
        if (!n) return;
        this.delivered.push({ ...w, to, deliveredAt: this.clock.now });
        n.received.push(w.m);
        n.machine.receive(w.m, this.clock.now);
      });
    }
  }

  sentBy(side: Side, head?: HeadValue): Wire[] {
    return this.sent.filter((w) => w.from === side && (head === undefined || w.m.head === head));
  }

  deliveredTo(side: Side, head?: HeadValue): Delivery[] {
    return this.delivered.filter((d) => d.to === side && (head === undefined || d.m.head === head));
  }
}

interface RoleEvent {
  at: number;
  from: PairRole;
  to: PairRole;
  reason: string;
  epoch: number;
  /** How many datagrams this machine had been handed when it changed. */
  heard: number;
}

interface SiblingEvent {
  at: number;
  online: boolean;
  reason: string;
}

interface Node {
  side: Side;
  nodeId: string;
  priority: number;
  machine: PairMachine;
  /** Every datagram handed to this machine. */
  received: PairMessage[];
  roles: RoleEvent[];
  siblings: SiblingEvent[];
}

interface NodeSpec {
  nodeId?: string;
  priority?: number;
  preempt?: boolean;
  random?: () => number;
  epoch?: number;
  negotiationTimeoutMs?: number;
  advertMs?: number;
}

const ID_A = 'aaaaaaaaaaaaaaaa';
const ID_B = 'bbbbbbbbbbbbbbbb';
const ADVERT = 200;
const NEGOTIATION = 1000;
const ENDPOINT: Record<Side, { host: string; port: number }> = { a: { host: '10.0.0.1', port: 7100 }, b: { host: '10.0.0.2', port: 7100 } };

/** mulberry32: a tiny seeded PRNG, so the default tokens differ between the sides but not between runs. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A `random` that returns `values` in turn, then the last one for ever. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)];
}

/** A `random` giving a token of 8 bytes `first`, then tokens of 8 bytes `then`. */
function tokens(first: number, then: number): () => number {
  return sequence(...Array<number>(8).fill(first / 256), then / 256);
}

/** A machine on `side` of `net` (replacing whatever ran there: a restart). Not started. */
function node(net: Net, side: Side, spec: NodeSpec = {}): Node {
  const nodeId = spec.nodeId ?? (side === 'a' ? ID_A : ID_B);
  const priority = spec.priority ?? 100;
  const preempt = spec.preempt ?? false;
  const roles: RoleEvent[] = [];
  const siblings: SiblingEvent[] = [];
  const received: PairMessage[] = [];
  let seq = 0n;
  const machine: PairMachine = new PairMachine({
    nodeId,
    priority,
    advertMs: spec.advertMs ?? ADVERT,
    negotiationTimeoutMs: spec.negotiationTimeoutMs ?? NEGOTIATION,
    preempt,
    downAfterAdverts: 3,
    offlineAfterAdverts: 5,
    clientEndpoint: ENDPOINT[side],
    epoch: spec.epoch,
    random: spec.random ?? seeded(side === 'a' ? 1 : 2),
    timers: net.lanes[side].timers,
    // What PairNode adds to each message.
    send: (m) =>
      net.send(side, {
        head: m.head,
        id: m.id,
        data: m.data,
        nodeId,
        state: machine.state,
        priority: m.priority ?? priority,
        preempt,
        epoch: m.epoch ?? machine.epoch,
        seq: ++seq,
      }),
    onRole: (from, to, reason, epoch) => roles.push({ at: net.clock.now, from, to, reason, epoch, heard: received.length }),
    onSibling: (online, reason) => siblings.push({ at: net.clock.now, online, reason }),
  });
  const n: Node = { side, nodeId, priority, machine, received, roles, siblings };
  net.nodes[side] = n;
  return n;
}

/** Two machines, started together at 0, everything sent at 0 delivered. */
function pair(a: NodeSpec = { priority: 150 }, b: NodeSpec = {}): { net: Net; a: Node; b: Node } {
  const net = new Net();
  const na = node(net, 'a', a);
  const nb = node(net, 'b', b);
  na.machine.start();
  nb.machine.start();
  net.clock.advance(0);
  return { net, a: na, b: nb };
}

/** A message as `from` would send it, to hand to a machine directly. */
function msg(from: Pick<Node, 'nodeId' | 'priority'>, head: HeadValue, fields: Partial<Omit<PairMessage, 'head'>> = {}, data: PairData = {}): PairMessage {
  return { head, state: AsState.ACTIVE, id: 9999, nodeId: from.nodeId, priority: from.priority, preempt: false, epoch: 1, seq: 1n, data, ...fields };
}

/** The master-down interval of docs/pair.md: 3 × advert + (256 − priority) / 256 × advert. */
const downMs = (priority: number, advert = ADVERT): number => 3 * advert + ((256 - priority) / 256) * advert;

const roleOf = (n: Node): PairRole => n.machine.role;
const last = <T>(xs: T[]): T => xs[xs.length - 1];

// ---------------------------------------------------------------------------------------------

describe('PairMachine: construction', () => {
  it.each([0, 256, 1.5, -1])('refuses priority %s', (priority) => {
    expect(() => node(new Net(), 'a', { priority })).toThrow(RangeError);
  });

  it('takes priorities 1 and 255, and starts Initial with the epoch it is given', () => {
    expect(node(new Net(), 'a', { priority: 1 }).machine.role).toBe('initial');
    const n = node(new Net(), 'a', { priority: 255, epoch: 7 });
    expect(n.machine.epoch).toBe(7);
    expect(n.machine.state).toBe(AsState.INITIAL);
  });
});

describe('PairMachine: negotiation (Initial hears Negotiate)', () => {
  it('the higher priority wins whatever the tokens: active with epoch max(both) + 1, and designates the other standby', () => {
    // a's token is all zeros, b's all 0xff: only the priority can make a win.
    const { net, a, b } = pair({ priority: 150, random: () => 0 }, { priority: 100, random: () => 0.999 });
    expect(a.roles).toEqual([{ at: 0, from: 'initial', to: 'active', reason: 'won the negotiation', epoch: 1, heard: 1 }]);
    expect(b.roles).toHaveLength(1);
    expect(b.roles[0]).toMatchObject({ from: 'initial', to: 'standby', epoch: 1 });
    expect(b.roles[0].reason).toContain(ID_A);
    const designate = net.sentBy('a', Head.DESIGNATE);
    expect(designate).toHaveLength(1);
    expect(designate[0].m).toMatchObject({ epoch: 1, state: AsState.ACTIVE, data: { role: AsState.STANDBY } });
    expect([a.machine.epoch, b.machine.epoch]).toEqual([1, 1]);
    // The loser sends no Designate and becomes nothing on its own.
    expect(net.sentBy('b', Head.DESIGNATE)).toEqual([]);
  });

  it('the higher priority wins when it is the one that started second', () => {
    const net = new Net();
    const a = node(net, 'a', { priority: 100, random: () => 0.999 });
    const b = node(net, 'b', { priority: 200, random: () => 0 });
    b.machine.start();
    net.clock.advance(50);
    a.machine.start();
    net.clock.advance(0);
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
    expect(b.roles).toEqual([expect.objectContaining({ at: 50, to: 'active', reason: 'won the negotiation', epoch: 1 })]);
  });

  it('the epoch of the winner is max(both epochs) + 1', () => {
    const { a, b } = pair({ priority: 150, epoch: 3 }, { priority: 100, epoch: 9 });
    expect(a.roles[0]).toMatchObject({ to: 'active', epoch: 10 });
    expect(b.roles[0]).toMatchObject({ to: 'standby', epoch: 10 });
  });

  it.each([
    { tokenA: 0x10, tokenB: 0xe0, winner: 'b' },
    { tokenA: 0xe0, tokenB: 0x10, winner: 'a' },
  ])('equal priority: the higher token wins (a $tokenA, b $tokenB → $winner)', ({ tokenA, tokenB, winner }) => {
    const { a, b } = pair({ priority: 100, random: () => tokenA / 256 }, { priority: 100, random: () => tokenB / 256 });
    const [w, l] = winner === 'a' ? [a, b] : [b, a];
    expect(w.roles).toEqual([expect.objectContaining({ from: 'initial', to: 'active', reason: 'won the negotiation', epoch: 1 })]);
    expect(l.roles).toEqual([expect.objectContaining({ from: 'initial', to: 'standby', epoch: 1 })]);
  });

  it('equal priority, tokens differing only in the last byte: still the higher token wins', () => {
    const { a, b } = pair({ priority: 100, random: sequence(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5) }, { priority: 100, random: sequence(0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6) });
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
  });

  it('equal tokens: both pick fresh tokens and negotiate again, then settle', () => {
    const { net, a, b } = pair({ priority: 100, random: tokens(0x80, 0xc0) }, { priority: 100, random: tokens(0x80, 0x40) });
    const negA = net.sentBy('a', Head.NEGOTIATE).map((w) => Buffer.from(w.m.data.token!).toString('hex'));
    const negB = net.sentBy('b', Head.NEGOTIATE).map((w) => Buffer.from(w.m.data.token!).toString('hex'));
    // The first round ties; each sends a second Negotiate at once with a fresh token.
    expect(negA).toEqual(['80'.repeat(8), 'c0'.repeat(8)]);
    expect(negB).toEqual(['80'.repeat(8), '40'.repeat(8)]);
    expect(net.sentBy('a').every((w) => w.at === 0)).toBe(true);
    // No one took a role on the tie; the second round decides (a's fresh token is higher).
    expect(a.roles).toEqual([expect.objectContaining({ at: 0, from: 'initial', to: 'active', epoch: 1 })]);
    expect(b.roles).toEqual([expect.objectContaining({ at: 0, from: 'initial', to: 'standby', epoch: 1 })]);
    net.clock.advance(5000);
    expect([roleOf(a), roleOf(b)]).toEqual(['active', 'standby']);
    expect(a.roles).toHaveLength(1);
    expect(b.roles).toHaveLength(1);
  });

  it('the loser does not activate alone while it hears the winner; once the winner falls silent it does, a negotiation timeout later', () => {
    const net = new Net();
    // a wins every comparison but never hears b (so it stays Initial, and its own timeout is far away).
    const a = node(net, 'a', { priority: 150, negotiationTimeoutMs: 1e9 });
    const b = node(net, 'b', { priority: 100 });
    net.cut.b = true;
    a.machine.start();
    b.machine.start();
    net.clock.advance(5000);
    expect(net.deliveredTo('b', Head.NEGOTIATE).length).toBeGreaterThanOrEqual(25);
    expect(b.roles).toEqual([]);
    expect(roleOf(b)).toBe('initial');
    // The last Negotiate b heard was at 5000.
    net.cut.a = true;
    net.clock.advance(NEGOTIATION - 1);
    expect(roleOf(b)).toBe('initial');
    net.clock.advance(1);
    expect(b.roles).toEqual([expect.objectContaining({ at: 6000, from: 'initial', to: 'active', epoch: 1 })]);
  });

  it('a lone Initial node negotiates every advert and activates after negotiationTimeoutMs, not before, with epoch 1', () => {
    const net = new Net();
    const a = node(net, 'a');
    a.machine.start();
    net.clock.advance(NEGOTIATION - 1);
    expect(roleOf(a)).toBe('initial');
    expect(a.roles).toEqual([]);
    expect(net.sentBy('a', Head.NEGOTIATE).map((w) => w.at)).toEqual([0, 200, 400, 600, 800]);
    net.clock.advance(1);
    expect(a.roles).toEqual([{ at: NEGOTIATION, from: 'initial', to: 'active', reason: `no sibling answered within ${NEGOTIATION} ms`, epoch: 1, heard: 0 }]);
    // Active now: adverts, no more Negotiate.
    net.clock.advance(1000);
    expect(net.sentBy('a', Head.NEGOTIATE).every((w) => w.at < NEGOTIATION)).toBe(true);
    expect(net.sentBy('a', Head.CONNECTED).length).toBeGreaterThanOrEqual(5);
  });

  it('a lone node that starts from epoch 7 activates with epoch 8', () => {
    const net = new Net();
    const a = node(net, 'a', { epoch: 7 });
    a.machine.start();
    net.clock.advance(NEGOTIATION);
    expect(a.roles).toEqual([expect.objectContaining({ to: 'active', epoch: 8 })]);
  });
});

describe('PairMachine: adverts', () => {
  it('the active sends Connected every advertMs, with its client endpoint; the standby answers each with Responsed echoing the frame id', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(2000);
    const adverts = net.sentBy('a', Head.CONNECTED);
    // One on becoming active, then one per advert interval.
    expect(adverts.map((w) => w.at)).toEqual([0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000]);
    for (const w of adverts) expect(w.m).toMatchObject({ state: AsState.ACTIVE, epoch: 1, priority: 150, data: { client: ENDPOINT.a } });
    const receipts = net.sentBy('b', Head.RESPONSED).filter((w) => adverts.some((c) => c.m.id === w.m.id));
    expect(receipts.map((w) => [w.at, w.m.id])).toEqual(adverts.map((w) => [w.at, w.m.id]));
    expect(new Set(adverts.map((w) => w.m.id)).size).toBe(adverts.length);
    // The standby advertises nothing, records the active's client endpoint.
    expect(net.sentBy('b', Head.CONNECTED)).toEqual([]);
    expect(b.machine.sibling).toMatchObject({ nodeId: ID_A, role: 'active', priority: 150, epoch: 1, clientEndpoint: ENDPOINT.a, lastHeardAt: 2000 });
    expect(a.machine.sibling).toMatchObject({ nodeId: ID_B, role: 'standby' });
  });

  it('follows advertMs', () => {
    const { net } = pair({ priority: 150, advertMs: 50 }, { advertMs: 50 });
    net.clock.advanceTo(300);
    expect(net.sentBy('a', Head.CONNECTED).map((w) => w.at)).toEqual([0, 50, 100, 150, 200, 250, 300]);
  });

  it('while adverts arrive the standby stays standby, duplicated datagrams included', () => {
    const { net, a, b } = pair();
    net.duplicate = () => true;
    net.clock.advance(10_000);
    expect([roleOf(a), roleOf(b)]).toEqual(['active', 'standby']);
    expect(a.roles).toHaveLength(1);
    expect(b.roles).toHaveLength(1);
  });
});

describe('PairMachine: master-down (Standby hears no Connected)', () => {
  it('takes over exactly 3 × advert + (256 − priority)/256 × advert after the last Connected (not 1 ms before), epoch + 1', () => {
    const { net, a, b } = pair();
    expect(b.machine.downIntervalMs).toBe(downMs(100));
    expect(downMs(100)).toBe(721.875);
    net.clock.advanceTo(1000);
    expect(last(net.deliveredTo('b', Head.CONNECTED)).deliveredAt).toBe(1000);
    net.cut.a = true;
    net.clock.advanceTo(1000 + downMs(100) - 1);
    expect(roleOf(b)).toBe('standby');
    expect(b.roles).toHaveLength(1);
    net.clock.advance(1);
    expect(roleOf(b)).toBe('active');
    expect(last(b.roles)).toEqual({ at: 1000 + downMs(100), from: 'standby', to: 'active', reason: 'no advert from the active for 722 ms', epoch: 2, heard: expect.any(Number) });
    expect(b.machine.epoch).toBe(2);
    // b's advert reaches a (only a → b is cut), which steps down to the new term.
    expect(last(a.roles)).toMatchObject({ at: 1000 + downMs(100), to: 'standby', epoch: 2 });
    // It had heard adverts (sibling online); now they stopped.
    expect(b.siblings).toEqual([
      { at: 0, online: true, reason: 'adverts arrive' },
      { at: 1000 + downMs(100), online: false, reason: 'adverts stopped' },
    ]);
    // Its first act as active: an advert with the new epoch.
    expect(last(net.sentBy('b', Head.CONNECTED)).m).toMatchObject({ epoch: 2, state: AsState.ACTIVE });
  });

  it('a higher priority takes over sooner: the skew', () => {
    const delays: number[] = [];
    for (const p of [1, 64, 100, 200, 254]) {
      const { net, b } = pair({ priority: 255 }, { priority: p });
      expect(roleOf(b)).toBe('standby');
      net.clock.advanceTo(1000);
      net.cut.a = true;
      net.clock.advance(2000);
      const takeover = last(b.roles);
      expect(takeover.to).toBe('active');
      delays.push(takeover.at - 1000);
    }
    expect(delays).toEqual([1, 64, 100, 200, 254].map((p) => downMs(p)));
    expect([...delays].sort((x, y) => y - x)).toEqual(delays);
  });

  it('ignores a Connected from an older term: it does not restart the down timer', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    net.cut.a = true;
    // A woken old active keeps advertising epoch 0.
    for (let t = 1100; t < 1000 + downMs(100); t += 100) {
      net.clock.advanceTo(t);
      b.machine.receive(msg(a, Head.CONNECTED, { epoch: 0 }, { client: ENDPOINT.a }));
    }
    net.clock.advanceTo(1000 + downMs(100));
    expect(last(b.roles)).toMatchObject({ at: 1000 + downMs(100), to: 'active', epoch: 2 });
    // and did not answer it
    expect(net.sentBy('b', Head.RESPONSED).filter((w) => w.m.id === 9999)).toEqual([]);
  });
});

describe('PairMachine: sibling offline / online (Active)', () => {
  it('offline after more than offlineAfterAdverts unanswered adverts (not at exactly 5), once; online again when receipts resume', () => {
    const { net, a } = pair();
    expect(a.siblings).toEqual([{ at: 0, online: true, reason: 'receipts resumed' }]);
    expect(a.machine.siblingOnline).toBe(true);
    net.clock.advanceTo(1000);
    net.cut.b = true; // a's adverts still arrive; the receipts do not.
    net.clock.advanceTo(2000); // 1200 … 2000: five unanswered
    expect(a.siblings).toHaveLength(1);
    expect(a.machine.siblingOnline).toBe(true);
    net.clock.advanceTo(2200); // the sixth
    expect(a.siblings).toEqual([
      { at: 0, online: true, reason: 'receipts resumed' },
      { at: 2200, online: false, reason: '6 adverts unanswered' },
    ]);
    expect(a.machine.siblingOnline).toBe(false);
    net.clock.advanceTo(3200);
    expect(a.siblings).toHaveLength(2);
    net.cut.b = false;
    net.clock.advanceTo(3400);
    expect(last(a.siblings)).toEqual({ at: 3400, online: true, reason: 'receipts resumed' });
    expect(a.machine.siblingOnline).toBe(true);
    expect(roleOf(a)).toBe('active');
  });

  it('a late receipt for one of the recent adverts still counts; a receipt for an id never sent does not', () => {
    const { net, a, b } = pair();
    // Each receipt arrives five adverts late.
    net.latency.b = 5 * ADVERT;
    net.clock.advance(10_000);
    expect(a.siblings).toEqual([{ at: 0, online: true, reason: 'receipts resumed' }]);
    // Receipts with ids a never sent count for nothing.
    net.cut.b = true;
    for (let t = 10_200; t <= 12_000; t += ADVERT) {
      net.clock.advanceTo(t);
      a.machine.receive(msg(b, Head.RESPONSED, { id: 0x7fff0000, state: AsState.STANDBY }));
    }
    expect(last(a.siblings)).toMatchObject({ online: false, reason: '6 adverts unanswered' });
  });
});

describe('PairMachine: priority-0 hand-over (stop on the active)', () => {
  it('stop(true) on the active sends Connected with priority 0 twice; the standby becomes active at once, epoch + 1', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    a.machine.stop(true);
    const handOver = net.sentBy('a', Head.CONNECTED).filter((w) => w.m.priority === 0);
    expect(handOver).toHaveLength(2);
    for (const w of handOver) expect(w.m).toMatchObject({ state: AsState.ACTIVE, epoch: 1, data: { client: ENDPOINT.a } });
    expect(handOver.map((w) => w.at)).toEqual([1000, 1000]);
    net.clock.advance(0);
    expect(last(b.roles)).toEqual({ at: 1000, from: 'standby', to: 'active', reason: `sibling ${ID_A} handed over (priority 0)`, epoch: 2, heard: expect.any(Number) });
    // The stopped node sends nothing more.
    const sentByA = net.sentBy('a').length;
    net.clock.advance(5000);
    expect(net.sentBy('a')).toHaveLength(sentByA);
    expect(b.roles).toHaveLength(2);
  });

  it('one lost hand-over datagram costs nothing: the second one hands over', () => {
    const { net, b } = pair();
    net.clock.advanceTo(1000);
    let lost = 0;
    net.drop = (w) => w.m.priority === 0 && lost++ === 0;
    net.nodes.a!.machine.stop(true);
    net.clock.advance(0);
    expect(lost).toBe(2);
    expect(last(b.roles)).toMatchObject({ at: 1000, to: 'active', epoch: 2 });
  });

  it('stop(false) hands nothing over: the standby waits out the master-down interval', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    const before = net.sentBy('a').length;
    a.machine.stop(false);
    expect(net.sentBy('a')).toHaveLength(before);
    net.clock.advance(2000);
    expect(last(b.roles)).toMatchObject({ at: 1000 + downMs(100), to: 'active', epoch: 2 });
  });

  it('stop on a standby sends nothing', () => {
    const { net, b } = pair();
    net.clock.advanceTo(1000);
    const before = net.sent.length;
    b.machine.stop(true);
    expect(net.sent).toHaveLength(before);
  });
});

describe('PairMachine: no preemption by default (a restarted node)', () => {
  /** a (150) active, b (100) standby; a crashes at 1000, b takes over; a restarts at 3000. */
  function crashAndRestart(restarted: NodeSpec): { net: Net; a2: Node; b: Node } {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    a.machine.stop(false);
    net.clock.advanceTo(3000);
    expect(last(b.roles)).toMatchObject({ to: 'active', epoch: 2 });
    const a2 = node(net, 'a', { priority: 150, ...restarted });
    a2.machine.start();
    net.clock.advance(0);
    return { net, a2, b };
  }

  it('a restarted former active of higher priority comes back as standby, and stays standby', () => {
    const { net, a2, b } = crashAndRestart({});
    expect(a2.roles).toEqual([{ at: 3000, from: 'initial', to: 'standby', reason: `designated standby by sibling ${ID_B}`, epoch: 2, heard: 1 }]);
    expect(b.roles).toHaveLength(2);
    net.clock.advance(5000);
    expect([roleOf(a2), roleOf(b)]).toEqual(['standby', 'active']);
    expect(a2.roles).toHaveLength(1);
    expect(b.roles).toHaveLength(2);
  });

  it('with preempt and a higher priority it takes over; the other steps down (epoch + 1)', () => {
    const { net, a2, b } = crashAndRestart({ preempt: true });
    expect(last(b.roles)).toEqual({ at: 3000, from: 'active', to: 'standby', reason: `sibling ${ID_A} preempts with priority 150`, epoch: 3, heard: expect.any(Number) });
    expect(a2.roles).toEqual([expect.objectContaining({ at: 3000, from: 'initial', to: 'active', epoch: 3 })]);
    net.clock.advance(5000);
    expect([roleOf(a2), roleOf(b)]).toEqual(['active', 'standby']);
    expect(b.roles).toHaveLength(3);
  });

  it('preempt with a lower priority does not take over', () => {
    const { net, a2, b } = crashAndRestart({ preempt: true, priority: 50 });
    net.clock.advance(5000);
    expect([roleOf(a2), roleOf(b)]).toEqual(['standby', 'active']);
    expect(b.roles).toHaveLength(2);
  });

  it('with preempt, an Initial node that hears Connected from a lower priority takes over', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    a.machine.stop(false);
    net.clock.advanceTo(3000);
    const a2 = node(net, 'a', { priority: 150, preempt: true });
    // Its Negotiate is lost: it learns of b from b's next advert.
    net.drop = (w) => w.from === 'a' && w.m.head === Head.NEGOTIATE;
    a2.machine.start();
    net.clock.advanceTo(3200);
    expect(a2.roles).toEqual([{ at: 3200, from: 'initial', to: 'active', reason: `preempting sibling ${ID_B} of lower priority 100`, epoch: 3, heard: 1 }]);
    expect(last(b.roles)).toMatchObject({ at: 3200, from: 'active', to: 'standby', epoch: 3 });
  });

  it('a standby that hears Negotiate (the active restarted before its down interval ran out) takes over at once and designates it standby', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    a.machine.stop(false);
    net.clock.advanceTo(1100);
    const a2 = node(net, 'a', { priority: 150 });
    a2.machine.start();
    net.clock.advance(0);
    expect(last(b.roles)).toEqual({ at: 1100, from: 'standby', to: 'active', reason: `the active sibling ${ID_A} restarted`, epoch: 2, heard: expect.any(Number) });
    expect(last(net.sentBy('b', Head.DESIGNATE)).m).toMatchObject({ epoch: 2, data: { role: AsState.STANDBY } });
    expect(a2.roles).toEqual([expect.objectContaining({ at: 1100, from: 'initial', to: 'standby', epoch: 2 })]);
    net.clock.advance(5000);
    expect([roleOf(a2), roleOf(b)]).toEqual(['standby', 'active']);
  });
});

describe('PairMachine: split brain', () => {
  it('a cut link makes two actives (the standby takes over, epoch 2); healed, the lower epoch steps down at once, even with the higher priority', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    net.cut.a = net.cut.b = true;
    net.clock.advanceTo(3000);
    expect([roleOf(a), roleOf(b)]).toEqual(['active', 'active']);
    expect([a.machine.epoch, b.machine.epoch]).toEqual([1, 2]);
    net.cut.a = net.cut.b = false;
    net.clock.advanceTo(3200); // the first adverts after the heal
    expect(last(a.roles)).toEqual({ at: 3200, from: 'active', to: 'standby', reason: `split brain: sibling ${ID_B} (epoch 2) outranks this node`, epoch: 2, heard: expect.any(Number) });
    expect(b.roles).toHaveLength(2);
    // b tells a to step down too.
    expect(net.sentBy('b', Head.DESIGNATE).filter((w) => w.at === 3200).map((w) => w.m.data.role)).toEqual([AsState.STANDBY]);
    net.clock.advance(5000);
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
    expect(a.roles).toHaveLength(2);
    expect(b.roles).toHaveLength(2);
  });

  it.each([
    { pa: 150, pb: 100, loser: 'b', why: 'equal epochs: the lower priority steps down' },
    { pa: 100, pb: 150, loser: 'a', why: 'equal epochs: the lower priority steps down' },
    { pa: 100, pb: 100, loser: 'a', why: 'equal epochs and priorities: the lower node id steps down' },
  ])('$why (a $pa, b $pb)', ({ pa, pb, loser }) => {
    const net = new Net();
    const a = node(net, 'a', { priority: pa });
    const b = node(net, 'b', { priority: pb });
    net.cut.a = net.cut.b = true;
    a.machine.start();
    b.machine.start();
    net.clock.advanceTo(2000); // both alone: both active at 1000, epoch 1
    expect([a.roles, b.roles].map((r) => r.map((e) => [e.at, e.to, e.epoch]))).toEqual([[[1000, 'active', 1]], [[1000, 'active', 1]]]);
    net.cut.a = net.cut.b = false;
    net.clock.advanceTo(2200);
    const [l, w] = loser === 'a' ? [a, b] : [b, a];
    expect(last(l.roles)).toMatchObject({ at: 2200, from: 'active', to: 'standby', epoch: 1 });
    expect(w.roles).toHaveLength(1);
    net.clock.advance(5000);
    expect([roleOf(l), roleOf(w)]).toEqual(['standby', 'active']);
    expect(l.roles).toHaveLength(2);
    expect(w.roles).toHaveLength(1);
  });

  it('a frozen active wakes after a takeover, with the older epoch, and steps down on the first advert it hears', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    net.lanes.a.paused = true; // a stops running: no timers, nothing read
    net.clock.advanceTo(3000);
    expect(last(b.roles)).toMatchObject({ at: 1000 + downMs(100), to: 'active', epoch: 2 });
    expect(roleOf(a)).toBe('active');
    const heardBefore = a.received.length;
    net.lanes.a.paused = false;
    net.clock.advance(0);
    const stepDown = last(a.roles);
    expect(stepDown).toMatchObject({ at: 3000, from: 'active', to: 'standby', epoch: 2 });
    expect(stepDown.reason).toContain('split brain');
    // The first datagram it was handed after waking: b's advert of the new term.
    expect(stepDown.heard).toBe(heardBefore + 1);
    expect(a.received[heardBefore]).toMatchObject({ head: Head.CONNECTED, nodeId: ID_B, epoch: 2 });
    expect(b.roles).toHaveLength(2);
    net.clock.advance(5000);
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
    expect(a.machine.epoch).toBe(2);
  });

  // A hand-over (priority 0) is "I am stopping: take over now". An active that hears one stays
  // active, even from an active of a newer epoch (after a split brain): were the split-brain rule to
  // apply, it would step down on the first copy and take over again on the second (the notify
  // commands would run twice and move a virtual IP away and back), or, with the second copy lost,
  // leave the pair with no active for a master-down interval.
  it('an active that hears a hand-over from an active of a newer epoch stays active', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    net.cut.a = net.cut.b = true;
    net.clock.advanceTo(3000); // b took over: two actives, b with epoch 2
    net.cut.b = false;
    b.machine.stop(true); // b stops and hands over: a is the one left
    net.clock.advance(0);
    expect(roleOf(a)).toBe('active');
    expect(a.roles).toHaveLength(1);
  });

  it('… and when the second hand-over datagram is lost, the pair still has an active at once', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    net.cut.a = net.cut.b = true;
    net.clock.advanceTo(3000);
    net.cut.b = false;
    let handOvers = 0;
    net.drop = (w) => w.m.priority === 0 && ++handOvers === 2;
    b.machine.stop(true);
    net.clock.advance(0);
    expect(roleOf(a)).toBe('active'); // today: standby until 3000 + downMs(150)
  });
});

describe('PairMachine: designation by an operator', () => {
  it("designate('standby') on the active: the sibling becomes active, this node standby, epoch + 1 on both", () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    a.machine.designate('standby');
    expect(last(net.sentBy('a')).m).toMatchObject({ head: Head.DESIGNATE, epoch: 2, data: { role: AsState.ACTIVE } });
    net.clock.advance(0);
    expect(last(a.roles)).toEqual({ at: 1000, from: 'active', to: 'standby', reason: 'designated by an operator', epoch: 2, heard: expect.any(Number) });
    expect(last(b.roles)).toEqual({ at: 1000, from: 'standby', to: 'active', reason: `designated active by sibling ${ID_A}`, epoch: 2, heard: expect.any(Number) });
    // b obeyed and said so.
    const designateId = last(net.sentBy('a', Head.DESIGNATE)).m.id;
    expect(net.sentBy('b', Head.RESPONSED).some((w) => w.m.id === designateId)).toBe(true);
    net.clock.advance(5000);
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
    expect([a.machine.epoch, b.machine.epoch]).toEqual([2, 2]);
    expect(a.roles).toHaveLength(2);
    expect(b.roles).toHaveLength(2);
  });

  it("designate('active') on the standby: it becomes active, the sibling standby, epoch + 1 on both", () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    b.machine.designate('active');
    net.clock.advance(0);
    expect(last(b.roles)).toMatchObject({ at: 1000, from: 'standby', to: 'active', reason: 'designated by an operator', epoch: 2 });
    expect(last(a.roles)).toMatchObject({ at: 1000, from: 'active', to: 'standby', reason: `designated standby by sibling ${ID_B}`, epoch: 2 });
    net.clock.advance(5000);
    expect([roleOf(a), roleOf(b)]).toEqual(['standby', 'active']);
    expect([a.machine.epoch, b.machine.epoch]).toEqual([2, 2]);
  });

  it('designating the role a node already has does nothing', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    const sent = net.sent.length;
    a.machine.designate('active');
    b.machine.designate('standby');
    expect(net.sent).toHaveLength(sent);
    net.clock.advance(0);
    expect([a.machine.epoch, b.machine.epoch]).toEqual([1, 1]);
    expect(a.roles).toHaveLength(1);
    expect(b.roles).toHaveLength(1);
  });

  it('a Designate with an older epoch is ignored; one with the same epoch is obeyed', () => {
    const { net, a, b } = pair({ priority: 150, epoch: 4 });
    net.clock.advanceTo(1000);
    expect(b.machine.epoch).toBe(5);
    const sent = net.sentBy('b').length;
    b.machine.receive(msg(a, Head.DESIGNATE, { epoch: 4, id: 77 }, { role: AsState.ACTIVE }));
    expect(roleOf(b)).toBe('standby');
    expect(b.machine.epoch).toBe(5);
    expect(net.sentBy('b')).toHaveLength(sent);
    b.machine.receive(msg(a, Head.DESIGNATE, { epoch: 5, id: 78 }, { role: AsState.ACTIVE }));
    expect(roleOf(b)).toBe('active');
    expect(last(net.sentBy('b', Head.RESPONSED)).m.id).toBe(78);
  });

  it('a Designate naming no role is ignored', () => {
    const { a, b } = pair();
    b.machine.receive(msg(a, Head.DESIGNATE, { epoch: 9 }, {}));
    expect(roleOf(b)).toBe('standby');
    expect(b.machine.epoch).toBe(1);
  });
});

describe('PairMachine: what it does not listen to', () => {
  it('receive() after stop() does nothing', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    b.machine.stop(false);
    const sent = net.sent.length;
    const sibling = b.machine.sibling;
    b.machine.receive(msg(a, Head.DESIGNATE, { epoch: 9 }, { role: AsState.ACTIVE }));
    b.machine.receive(msg(a, Head.CONNECTED, { epoch: 9, priority: 0 }));
    b.machine.receive(msg(a, Head.NEGOTIATE, { epoch: 9, state: AsState.INITIAL }, { token: Buffer.alloc(8) }));
    expect(net.sent).toHaveLength(sent);
    expect(roleOf(b)).toBe('standby');
    expect(b.machine.epoch).toBe(1);
    expect(b.machine.sibling).toBe(sibling);
    net.clock.advance(5000);
    expect(b.roles).toHaveLength(1);
  });

  it('a message carrying its own node id is ignored', () => {
    const { net, a, b } = pair();
    net.clock.advanceTo(1000);
    const sent = net.sent.length;
    const sibling = b.machine.sibling;
    const self = { nodeId: ID_B, priority: 100 };
    b.machine.receive(msg(self, Head.DESIGNATE, { epoch: 9 }, { role: AsState.ACTIVE }));
    b.machine.receive(msg(self, Head.CONNECTED, { epoch: 9, priority: 0 }));
    b.machine.receive(msg(self, Head.NEGOTIATE, { epoch: 9 }, { token: Buffer.alloc(8) }));
    expect(net.sent).toHaveLength(sent);
    expect(roleOf(b)).toBe('standby');
    expect(b.machine.epoch).toBe(1);
    expect(b.machine.sibling).toBe(sibling);
    expect(b.machine.sibling?.nodeId).toBe(a.nodeId);
  });
});
