import { describe, expect, it } from 'vitest';
import { AsState, Head, type PairMessage } from '../../src/application-server/pair/pair-datagram.js';
import { PairMachine } from '../../src/application-server/pair/pair-machine.js';
import type { Timers } from '../../src/protocol/timers.js';

/**
 * A standby whose event loop was blocked: its master-down timer fires late, while the active's
 * adverts wait unread in its socket. Node runs due timers before it reads sockets, so the machine
 * must hear what is queued before it takes the role. Here timers and deliveries run by hand, in
 * that order: the down timer's callback, then a queued advert, then what the callback deferred.
 */
function standby() {
  const timeouts: { fn: () => void; ms: number }[] = [];
  const timers: Timers = {
    now: () => 0,
    setInterval: () => ({}),
    clearInterval: () => undefined,
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      timeouts.push(t);
      return t;
    },
    clearTimeout: (h) => {
      const i = timeouts.indexOf(h as { fn: () => void; ms: number });
      if (i >= 0) timeouts.splice(i, 1);
    },
  };
  const roles: string[] = [];
  const m = new PairMachine({
    nodeId: '00000000000000bb',
    priority: 100,
    advertMs: 200,
    negotiationTimeoutMs: 1000,
    preempt: false,
    downAfterAdverts: 3,
    offlineAfterAdverts: 5,
    send: () => undefined,
    onRole: (_from, to) => roles.push(to),
    onSibling: () => undefined,
    timers,
  });
  m.start();
  const connected = (id: number): PairMessage => ({
    head: Head.CONNECTED,
    state: AsState.ACTIVE,
    id,
    nodeId: '00000000000000aa',
    priority: 150,
    preempt: false,
    epoch: 1,
    seq: BigInt(id),
    data: {},
  });
  m.receive(connected(1));
  expect(m.role).toBe('standby');
  const downTimer = () => {
    const t = timeouts.find((x) => x.ms === m.downIntervalMs);
    if (!t) throw new Error('no master-down timer armed');
    return t;
  };
  return { m, roles, timeouts, connected, downTimer };
}

describe('PairMachine: a standby whose event loop was blocked', () => {
  it('hears the adverts queued meanwhile before it decides, and stays standby', () => {
    const { m, timeouts, connected, downTimer } = standby();
    const t = downTimer();
    timeouts.splice(timeouts.indexOf(t), 1);
    t.fn(); // fired late: the loop was blocked
    m.receive(connected(2)); // the advert that waited in the socket
    for (const d of timeouts.filter((x) => x.ms === 0)) d.fn(); // what the timer deferred
    expect(m.role).toBe('standby');
    expect(m.epoch).toBe(1);
  });

  it('takes over when nothing was queued', () => {
    const { m, roles, timeouts, downTimer } = standby();
    const t = downTimer();
    timeouts.splice(timeouts.indexOf(t), 1);
    t.fn();
    expect(m.role).toBe('standby'); // not yet: first what waits in the socket
    for (const d of timeouts.filter((x) => x.ms === 0)) d.fn();
    expect(m.role).toBe('active');
    expect(roles).toEqual(['standby', 'active']);
    expect(m.epoch).toBe(2);
  });
});
