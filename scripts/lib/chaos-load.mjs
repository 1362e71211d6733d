// The chaos scenario's load: a bounded number of calls in flight, paced to a bounded rate, mixing
// an idempotent service (echo, key 1) and a non-idempotent one (delayed echo, key 2). Every call is
// tracked from sent to answered, and every answer is checked against what was sent.
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { statusName } from '../../dist/protocol/index.js';
import { now } from './chaos-roles.mjs';

export const ECHO = 1;
export const ECHO_DELAYED = 2;

/** What the client's own sweeper says when the AS never answered (deadline plus grace passed). */
const CLIENT_GAVE_UP = /no answer from the application server/;
const CLIENT_CONN_LOST = /connection to the application server closed/;

export class Tally {
  sent = 0;
  ok = 0;
  /** Answers that came back OK but not equal to what was sent. */
  wrong = [];
  /** outcome name → { 1: count, 2: count, first: t, last: t } */
  failures = new Map();
  /** Calls the client itself gave up on (its deadline plus grace): the AS never answered them. */
  clientGaveUp = [];
  /** Calls still unsettled when the wait after the load ended ran out. */
  unsettled = [];
  /** Latencies of OK answers, ms. */
  latencies = [];
  /** Calls in flight: seq → { key, sentAt }. */
  outstanding = new Map();

  fail(outcome, key, t) {
    let f = this.failures.get(outcome);
    if (!f) this.failures.set(outcome, (f = { 1: 0, 2: 0, first: t, last: t }));
    f[key]++;
    f.last = t;
  }

  failedOfKey(key) {
    let n = 0;
    for (const f of this.failures.values()) n += f[key];
    return n;
  }

  get neverAnswered() {
    return this.unsettled.length + this.clientGaveUp.length;
  }

  get idempotentFailures() {
    return this.failedOfKey(ECHO) + this.unsettled.filter((c) => c.key === ECHO).length;
  }
}

/** The name a failure is counted under: the AS's status, or what went wrong on this side. */
function outcomeOf(err, client) {
  if (err?.code === 'SB_ERR_TIMEOUT' && CLIENT_GAVE_UP.test(err.message)) return 'CLIENT_GAVE_UP';
  if (err?.code === 'SB_ERR_CHANNEL_CLOSED' && client.closed && CLIENT_CONN_LOST.test(err.message)) return 'CLIENT_CONNECTION_LOST';
  if (typeof err?.status === 'number') return statusName(err.status);
  return `LOCAL_ERROR (${err?.message ?? err})`;
}

/**
 * Runs `concurrency` workers until `endAt` (a now() time); each issues one call at a time, no more
 * often than `concurrency / rate` seconds apart. Resolves when every worker has stopped issuing;
 * calls may still be outstanding (see settle()).
 */
export function startLoad(client, { concurrency, rate, deadlineMs, endAt, t0 }, tally = new Tally()) {
  const interval = (concurrency / rate) * 1000;
  let seq = 0;
  const oneCall = async () => {
    const id = ++seq;
    const key = Math.random() < 0.5 ? ECHO : ECHO_DELAYED;
    const body = key === ECHO ? { n: id, s: 'chaos' } : { ms: 5 + Math.floor(Math.random() * 16), value: id };
    const expected = key === ECHO ? body : id;
    const sentAt = now();
    tally.sent++;
    tally.outstanding.set(id, { key, sentAt });
    try {
      const got = await client.call(key, body, { timeoutMs: deadlineMs });
      if (isDeepStrictEqual(got, expected)) {
        tally.ok++;
        tally.latencies.push(now() - sentAt);
      } else if (tally.wrong.length < 1000) {
        tally.wrong.push({ id, key, expected, got });
      }
    } catch (err) {
      const outcome = outcomeOf(err, client);
      if (outcome === 'CLIENT_GAVE_UP') tally.clientGaveUp.push({ id, key, sentAt: sentAt - t0 });
      else tally.fail(outcome, key, now() - t0);
    } finally {
      tally.outstanding.delete(id);
    }
  };
  const worker = async () => {
    while (now() < endAt && !client.closed) {
      const start = now();
      await oneCall();
      const wait = interval - (now() - start);
      if (wait > 1) await sleep(wait);
    }
  };
  // Stagger the workers over one interval so that the load is steady from the start.
  const workers = Array.from({ length: concurrency }, (_, i) => sleep((interval * i) / concurrency).then(worker));
  return { tally, done: Promise.all(workers) };
}

/** Waits for outstanding calls to settle, at most `timeoutMs`; what is left is "never answered". */
export async function settle(tally, timeoutMs, t0) {
  const end = now() + timeoutMs;
  while (tally.outstanding.size > 0 && now() < end) await sleep(20);
  for (const [id, c] of tally.outstanding) tally.unsettled.push({ id, key: c.key, sentAt: c.sentAt - t0 });
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The AS-pair scenarios' load (UDP and etcd): `concurrency` workers alternating idempotent echo
 * (key 1) and non-idempotent delayed echo (key 2) through one client given both ASs; every OK
 * answer is checked and stamped with the AS whose connection carried it ('a' or 'b').
 */
export async function startPairLoad(Client, ports, { concurrency, deadlineMs, heartbeatMs }) {
  const client = await Client.connect({ endpoints: [{ host: '127.0.0.1', port: ports.a.client }, { host: '127.0.0.1', port: ports.b.client }], heartbeatMs, reconnect: { baseMs: 20, capMs: 200 } });
  const endpointName = (e) => (e?.port === ports.a.client ? 'a' : e?.port === ports.b.client ? 'b' : '?');
  const tally = { sent: 0, ok: 0, wrong: 0, failures: new Map(), latencies: [], answers: [] };
  const failovers = [];
  client.on('failover', (f) => failovers.push({ t: now(), ...f }));
  let stopped = false;
  const fail = (name, key) => {
    const f = tally.failures.get(name) ?? { 1: 0, 2: 0 };
    f[key]++;
    tally.failures.set(name, f);
  };
  const workers = Array.from({ length: concurrency }, async (_, w) => {
    let seq = 0;
    while (!stopped) {
      const key = (w + seq++) % 2 === 0 ? ECHO : ECHO_DELAYED;
      const id = ++tally.sent;
      const body = key === ECHO ? { id, w } : { ms: 5 + (id % 16), value: id };
      const expected = key === ECHO ? body : id;
      const t = now();
      try {
        const got = await client.call(key, body, { timeoutMs: deadlineMs, idempotent: key === ECHO });
        if (isDeepStrictEqual(got, expected)) {
          tally.ok++;
          tally.latencies.push(now() - t);
          tally.answers.push({ t: now(), as: endpointName(client.endpoint) });
        } else tally.wrong++;
      } catch (err) {
        const gaveUp = err.code === 'SB_ERR_TIMEOUT' && /no answer from the application server|no application server could be reached/.test(err.message);
        fail(gaveUp ? 'CLIENT_GAVE_UP' : (err.code ?? 'LOCAL'), key);
      }
      await sleep(2);
    }
  });
  return {
    client,
    tally,
    failovers,
    endpointName,
    /** Stops the workers, waits for their last calls, closes the client. */
    async stop() {
      stopped = true;
      await Promise.all(workers);
      await client.close();
    },
  };
}

/**
 * What the pair scenarios measure from their answers and each AS's role log: when an AS last and
 * first answered around a moment, the time both believed they were active (less the time one was
 * frozen: it served nobody then), the time both served clients (10 ms windows with answers from
 * both), and failures by idempotent (1) or not (2).
 */
export function pairMeasures(tally, timeline, frozen, endAt) {
  const lastBefore = (n, t) => tally.answers.filter((x) => x.as === n && x.t <= t).at(-1)?.t;
  const firstAfter = (n, t) => tally.answers.find((x) => x.as === n && x.t >= t)?.t;
  function activeIntervals(n) {
    const out = [];
    let since;
    for (const e of timeline[n]) {
      if (e.role === 'active' && since === undefined) since = e.t;
      else if (e.role !== 'active' && since !== undefined) {
        out.push([since, e.t]);
        since = undefined;
      }
    }
    if (since !== undefined) out.push([since, endAt]);
    return out.flatMap(([s, e]) => {
      let parts = [[s, e]];
      for (const [fs, fe] of frozen[n]) parts = parts.flatMap(([a, b]) => (fe <= a || fs >= b ? [[a, b]] : [[a, fs], [fe, b]].filter(([x, y]) => y > x)));
      return parts;
    });
  }
  let bothActiveMs = 0;
  for (const [a1, a2] of activeIntervals('a')) for (const [b1, b2] of activeIntervals('b')) bothActiveMs += Math.max(0, Math.min(a2, b2) - Math.max(a1, b1));
  const BUCKET = 10;
  const buckets = { a: new Set(), b: new Set() };
  for (const x of tally.answers) if (x.as === 'a' || x.as === 'b') buckets[x.as].add(Math.floor(x.t / BUCKET));
  const bothServingMs = [...buckets.a].filter((k) => buckets.b.has(k)).length * BUCKET;
  const fails = [...tally.failures.entries()];
  const failedOf = (key) => fails.reduce((n, [, f]) => n + f[key], 0);
  return { lastBefore, firstAfter, bothActiveMs, bothServingMs, failedOf };
}
