import { backoffDelay } from '../common/backoff.js';
import { formatEndpoint } from '../common/addresses.js';
import { AuthError, ChannelClosedError, ConnectError, DeadlineExceededError, OverloadedError, UnavailableError, type SwitchboardError } from '../protocol/index.js';
import type { CallSpec } from './call-table.js';

/** What the router needs of one single-endpoint client (a `Client` in via-as mode). */
export interface SpreadMember {
  readonly connected: boolean;
  readonly closed: boolean;
  /** Sends one call through this client's AS (queued by it while it reconnects). */
  send(spec: CallSpec, timeoutMs: number): Promise<unknown>;
  on(event: 'connected' | 'disconnected', listener: () => void): unknown;
  close(): Promise<void>;
}

export interface SpreadEndpoint {
  host: string;
  port: number;
}

export interface SpreadOptions {
  /** Backoff between attempts to reach an AS that was down at start (default 100 ms doubling to 5000 ms); false: no retry. */
  reconnect?: { baseMs?: number; capMs?: number } | false;
  /** Calls that may wait for an AS at once; beyond, OVERLOADED (default 10000). */
  maxQueued?: number;
}

/** Per-AS counters of a spread client. */
export interface SpreadAsInfo {
  endpoint: SpreadEndpoint;
  connected: boolean;
  /** Calls of this client in flight on that AS now. */
  inflight: number;
  /** Calls sent to that AS (re-sends included). */
  sent: number;
  /** Calls moved from that AS to another: idempotent ones after it was lost, any after it answered SB_ERR_UNAVAILABLE. */
  movedAway: number;
}

interface Slot {
  endpoint: SpreadEndpoint;
  member: SpreadMember | undefined;
  inflight: number;
  sent: number;
  movedAway: number;
  attempt: number;
  retry: NodeJS.Timeout | undefined;
}

interface Waiter {
  wake: () => void;
}

/**
 * Spread mode: one single-endpoint client per AS, every call to the connected AS with the fewest of
 * this client's calls in flight. When an AS is lost, its idempotent calls are sent again to another
 * AS within their deadline; the others fail with CHANNEL_CLOSED. Each member reconnects to its AS
 * with backoff in the background (the Client's own logic); an AS that was down at start is dialled
 * again here, with the same backoff.
 */
export class SpreadRouter {
  readonly #slots: Slot[];
  readonly #open: (endpoint: SpreadEndpoint) => Promise<SpreadMember>;
  readonly #o: SpreadOptions;
  readonly #waiters = new Set<Waiter>();
  #closed = false;
  /** Where the next tie-break starts, so equal ASs take turns. */
  #turn = 0;

  private constructor(endpoints: readonly SpreadEndpoint[], open: (endpoint: SpreadEndpoint) => Promise<SpreadMember>, o: SpreadOptions) {
    this.#slots = endpoints.map((endpoint) => ({ endpoint, member: undefined, inflight: 0, sent: 0, movedAway: 0, attempt: 0, retry: undefined }));
    this.#open = open;
    this.#o = o;
  }

  /**
   * Dials every AS at once and resolves when all have answered or failed, with at least one up;
   * rejects with the first error when none is (AuthError as such). The others are dialled again in
   * the background.
   */
  static async connect(endpoints: readonly SpreadEndpoint[], open: (endpoint: SpreadEndpoint) => Promise<SpreadMember>, o: SpreadOptions = {}): Promise<SpreadRouter> {
    const router = new SpreadRouter(endpoints, open, o);
    const errors = await Promise.all(router.#slots.map((s) => router.#dial(s).then(() => undefined, (err: Error) => err)));
    if (router.#slots.some((s) => s.member !== undefined)) {
      router.#slots.forEach((s, i) => {
        if (s.member === undefined && !(errors[i] instanceof AuthError)) router.#redialLater(s);
      });
      return router;
    }
    await router.close();
    const auth = errors.find((e) => e instanceof AuthError);
    if (auth) throw auth;
    throw new ConnectError(`spread mode: cannot connect to any application server (${endpoints.map(formatEndpoint).join(', ')}): ${errors[0]?.message}`, { cause: errors[0] });
  }

  /** Calls in flight through this router (sent or waiting for an AS). */
  get inflight(): number {
    let n = 0;
    for (const s of this.#slots) n += s.inflight;
    return n + this.#waiters.size;
  }

  /** Each AS with its counters, in the order given. */
  list(): SpreadAsInfo[] {
    return this.#slots.map((s) => ({ endpoint: s.endpoint, connected: s.member?.connected === true, inflight: s.inflight, sent: s.sent, movedAway: s.movedAway }));
  }

  /** Sends a call to the least busy connected AS; an idempotent one moves to another AS if its AS is lost. */
  call(spec: CallSpec, timeoutMs: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ChannelClosedError('the client is closed'));
    return this.#attempt(spec, Date.now() + timeoutMs, timeoutMs);
  }

  async #attempt(spec: CallSpec, deadlineAt: number, timeoutMs: number): Promise<unknown> {
    /** ASs that answered SB_ERR_UNAVAILABLE for this call: not asked again for it. */
    let refusedBy: Set<Slot> | undefined;
    for (;;) {
      const slot = this.#pick(refusedBy) ?? (await this.#waitForAs(deadlineAt, spec));
      const left = Math.max(1, Math.min(timeoutMs, deadlineAt - Date.now()));
      const member = slot.member as SpreadMember;
      slot.inflight++;
      slot.sent++;
      try {
        // Sent as not idempotent: when the AS is lost the member fails it at once, and this router
        // (not the member, which would wait for the same AS) decides where it goes next.
        return await member.send(spec.idempotent ? { ...spec, idempotent: false } : spec, left);
      } catch (err) {
        const e = err as SwitchboardError;
        if (Date.now() >= deadlineAt || this.#closed) throw e;
        // The AS had no FS to send it to (one just restarted, say, before its FSs are back): the call
        // did not run, so any call may try another connected AS that has not refused it yet.
        if (e instanceof UnavailableError && e.code === 'SB_ERR_UNAVAILABLE') {
          (refusedBy ??= new Set()).add(slot);
          if (this.#pick(refusedBy) === undefined) throw e;
        } else if (!(e instanceof ChannelClosedError) || !spec.idempotent) throw e;
        slot.movedAway++;
      } finally {
        slot.inflight--;
      }
    }
  }

  /** The connected AS with the fewest calls in flight; ties take turns. */
  #pick(skip?: Set<Slot>): Slot | undefined {
    const n = this.#slots.length;
    let best: Slot | undefined;
    for (let k = 0; k < n; k++) {
      const s = this.#slots[(this.#turn + k) % n];
      if (!s.member?.connected || skip?.has(s) === true) continue;
      if (best === undefined || s.inflight < best.inflight) best = s;
    }
    this.#turn = (this.#turn + 1) % n;
    return best;
  }

  /** Waits until some AS is connected, or fails at the deadline. */
  #waitForAs(deadlineAt: number, spec: CallSpec): Promise<Slot> {
    if (this.#waiters.size >= (this.#o.maxQueued ?? 10_000)) {
      return Promise.reject(new OverloadedError(`${this.#waiters.size} calls already wait for an application server; retry later`));
    }
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = {
        wake: () => {
          if (this.#closed) {
            done();
            return reject(new ChannelClosedError('the client was closed before the answer came'));
          }
          const s = this.#pick();
          if (s === undefined) return;
          done();
          resolve(s);
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new DeadlineExceededError(`spread mode: no application server could be reached before the deadline (${this.#slots.map((s) => formatEndpoint(s.endpoint)).join(', ')}); service ${spec.serviceKey}`));
      }, Math.max(0, deadlineAt - Date.now()));
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      this.#waiters.add(waiter);
    });
  }

  #wakeAll(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  async #dial(slot: Slot): Promise<void> {
    const member = await this.#open(slot.endpoint);
    if (this.#closed) {
      await member.close();
      return;
    }
    slot.member = member;
    slot.attempt = 0;
    member.on('connected', () => this.#wakeAll());
    this.#wakeAll();
  }

  /** An AS that was down at start: dialled again with backoff until it answers (its client reconnects on its own after that). */
  #redialLater(slot: Slot): void {
    if (this.#closed || this.#o.reconnect === false) return;
    const r = this.#o.reconnect ?? {};
    const delay = backoffDelay(slot.attempt++, { baseMs: r.baseMs ?? 100, capMs: r.capMs ?? 5000 });
    slot.retry = setTimeout(() => {
      slot.retry = undefined;
      this.#dial(slot).catch((err: Error) => {
        if (!(err instanceof AuthError)) this.#redialLater(slot);
      });
    }, delay);
    slot.retry.unref();
  }

  /** Closes every member; calls waiting for an AS fail with CHANNEL_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of this.#slots) clearTimeout(s.retry);
    this.#wakeAll();
    await Promise.all(this.#slots.map((s) => s.member?.close()));
  }
}
