import { nodeTimers, type Timers } from '../../protocol/index.js';
import { AsState, Head, type AsStateValue, type HeadValue, type PairData, type PairMessage } from './pair-datagram.js';

export type PairRole = 'initial' | 'active' | 'standby';

const ROLE_OF: Record<number, PairRole> = { [AsState.INITIAL]: 'initial', [AsState.ACTIVE]: 'active', [AsState.STANDBY]: 'standby' };
const STATE_OF: Record<PairRole, AsStateValue> = { initial: AsState.INITIAL, active: AsState.ACTIVE, standby: AsState.STANDBY };

export interface PairMachineOptions {
  /** 16 hex digits: this node on the wire. */
  nodeId: string;
  /** 1-255; higher wins a negotiation and takes over sooner. */
  priority: number;
  /** Connected every this many ms from the active. */
  advertMs: number;
  /** An Initial node that hears nobody for this long becomes active on its own. */
  negotiationTimeoutMs: number;
  /** Take the active role from a sibling of lower priority (off: no flapping when a node returns). */
  preempt: boolean;
  /** Adverts missed before the standby takes over (VRRP: 3), plus a skew that favours higher priority. */
  downAfterAdverts: number;
  /** Adverts left unanswered before the active calls its sibling offline. */
  offlineAfterAdverts: number;
  /** Where this node serves clients when active (carried in Connected for the standby's redirects). */
  clientEndpoint?: { host: string; port: number };
  /** The epoch this node starts from (a restarted node knows none: 0). */
  epoch?: number;
  send: (m: Omit<PairMessage, 'seq' | 'nodeId' | 'priority' | 'preempt' | 'epoch' | 'state'> & { epoch?: number; priority?: number }) => void;
  onRole: (from: PairRole, to: PairRole, reason: string, epoch: number) => void;
  onSibling: (online: boolean, reason: string) => void;
  random?: () => number;
  timers?: Timers;
  /**
   * Runs `fn` after the I/O waiting now has been handled (default: a 0 ms timer, which runs after the
   * next poll of sockets, on real and injected clocks alike). A master-down timer
   * that fires late, after this node's event loop was blocked, first lets the adverts queued in the
   * socket meanwhile arrive: a busy standby must not take the role from an active that was fine.
   */
  defer?: (fn: () => void) => void;
}

/** What this node last heard of its sibling. */
export interface SiblingView {
  nodeId: string;
  role: PairRole;
  priority: number;
  epoch: number;
  clientEndpoint: { host: string; port: number } | undefined;
  lastHeardAt: number;
}

/**
 * The AS pair's roles as a pure state machine: the transport and the timers are injected, so every
 * transition can be driven and tested alone. Keeps the original design's states and frames
 * (Initial/Active/Standby; Negotiate, Designate, Connected, Responsed) and adds VRRP's rules: an
 * advert interval, master-down after missed adverts plus a priority skew, no preemption unless
 * asked, priority 0 for an immediate hand-over, and an epoch so that a woken old active steps down.
 */
export class PairMachine {
  readonly #o: PairMachineOptions;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #defer: (fn: () => void) => void;
  #role: PairRole = 'initial';
  #epoch: number;
  #token: Buffer;
  #frameId = 0;
  #advertTimer: unknown;
  #negotiationTimer: unknown;
  #downTimer: unknown;
  #unanswered = 0;
  /** Frame ids of recent Connected adverts, so a late receipt still counts. */
  readonly #recentAdverts: number[] = [];
  #siblingOnline = false;
  #sibling: SiblingView | undefined;
  #stopped = true;

  constructor(opts: PairMachineOptions) {
    if (!Number.isInteger(opts.priority) || opts.priority < 1 || opts.priority > 255) throw new RangeError(`priority ${opts.priority} must be from 1 to 255`);
    this.#o = opts;
    this.#timers = opts.timers ?? nodeTimers;
    this.#random = opts.random ?? Math.random;
    this.#defer = opts.defer ?? ((fn) => this.#timers.setTimeout(fn, 0));
    this.#epoch = opts.epoch ?? 0;
    this.#token = this.#newToken();
  }

  get role(): PairRole {
    return this.#role;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get siblingOnline(): boolean {
    return this.#siblingOnline;
  }

  get sibling(): SiblingView | undefined {
    return this.#sibling;
  }

  /** The master-down interval: downAfterAdverts adverts plus VRRP's skew ((256 − priority) / 256 of one advert). */
  get downIntervalMs(): number {
    return this.#o.downAfterAdverts * this.#o.advertMs + ((256 - this.#o.priority) * this.#o.advertMs) / 256;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#advertTimer = this.#timers.setInterval(() => this.#advert(), this.#o.advertMs);
    this.#sendNegotiate();
    this.#armNegotiation();
  }

  /**
   * Stops. An active node that hands over tells its sibling with priority 0 (VRRP's resignation),
   * so the standby takes over at once instead of waiting out the down interval.
   */
  stop(handOver = true): void {
    if (this.#stopped) return;
    if (handOver && this.#role === 'active') {
      // Twice: one lost datagram should not cost the whole down interval.
      for (let i = 0; i < 2; i++) this.#send(Head.CONNECTED, { client: this.#o.clientEndpoint }, { priority: 0 });
    }
    this.#stopped = true;
    this.#clearTimers();
  }

  /** An operator fixes the roles: this node takes `role`, and tells its sibling to take the other. */
  designate(role: 'active' | 'standby', reason = 'designated by an operator'): void {
    if (this.#stopped) return;
    if (role === this.#role) return;
    this.#epoch++;
    if (role === 'active') {
      // The order first, so the sibling steps down as designated before it hears our first advert.
      this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
      this.#become('active', reason);
    } else {
      this.#send(Head.DESIGNATE, { role: AsState.ACTIVE });
      this.#become('standby', reason);
    }
  }

  /** A datagram from the sibling, already authenticated and checked against replays by the transport. */
  receive(m: PairMessage, now = this.#timers.now()): void {
    if (this.#stopped || m.nodeId === this.#o.nodeId) return;
    this.#sibling = {
      nodeId: m.nodeId,
      role: ROLE_OF[m.state],
      priority: m.priority,
      epoch: m.epoch,
      clientEndpoint: m.data.client ?? this.#sibling?.clientEndpoint,
      lastHeardAt: now,
    };
    switch (m.head) {
      case Head.NEGOTIATE:
        return this.#onNegotiate(m);
      case Head.DESIGNATE:
        return this.#onDesignate(m);
      case Head.CONNECTED:
        return this.#onConnected(m);
      case Head.RESPONSED:
        return this.#onResponsed(m);
    }
  }

  #onNegotiate(m: PairMessage): void {
    if (this.#role === 'initial') {
      const mine = this.#token;
      const theirs = m.data.token ?? Buffer.alloc(0);
      const cmp = m.priority !== this.#o.priority ? this.#o.priority - m.priority : Buffer.compare(mine, Buffer.from(theirs));
      if (cmp === 0) {
        // The original rule: equal tokens renegotiate, each with a fresh token.
        this.#token = this.#newToken();
        this.#sendNegotiate();
        this.#armNegotiation();
        return;
      }
      if (cmp > 0) {
        this.#epoch = Math.max(this.#epoch, m.epoch) + 1;
        this.#become('active', 'won the negotiation');
        this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
      } else {
        // The sibling wins and will designate us; meanwhile do not activate alone.
        this.#armNegotiation();
      }
      return;
    }
    if (this.#role === 'standby') {
      // The active restarted and lost its role: this node takes over (no preemption by the returning one).
      this.#epoch = Math.max(this.#epoch, m.epoch) + 1;
      this.#become('active', `the active sibling ${m.nodeId} restarted`);
      this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
      return;
    }
    if (this.#role === 'active') {
      // A sibling (re)starting. It stays standby unless it preempts and outranks us.
      if (m.preempt && m.priority > this.#o.priority) {
        this.#epoch = Math.max(this.#epoch, m.epoch) + 1;
        this.#send(Head.DESIGNATE, { role: AsState.ACTIVE });
        this.#become('standby', `sibling ${m.nodeId} preempts with priority ${m.priority}`);
      } else {
        this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
        this.#send(Head.CONNECTED, { client: this.#o.clientEndpoint });
      }
    }
  }

  #onDesignate(m: PairMessage): void {
    if (m.epoch < this.#epoch) return; // an old order from a term that has passed
    const to = m.data.role === AsState.ACTIVE ? 'active' : m.data.role === AsState.STANDBY ? 'standby' : undefined;
    if (to === undefined) return;
    this.#epoch = m.epoch;
    this.#become(to, `designated ${to} by sibling ${m.nodeId}`);
    this.#send(Head.RESPONSED, {}, { id: m.id });
  }

  #onConnected(m: PairMessage): void {
    if (this.#role === 'active') {
      // A hand-over by an active of another term (after a split brain): we already are the active;
      // only take the newer term, so the sibling's second priority-0 copy cannot flap us.
      if (m.priority === 0) {
        this.#epoch = Math.max(this.#epoch, m.epoch + 1);
        return;
      }
      // Two actives hear each other (a healed partition, a frozen active that woke): the lower
      // (epoch, priority, node id) steps down at once; the other tells it to.
      if (this.#outranks(m)) {
        this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
        return;
      }
      this.#epoch = Math.max(this.#epoch, m.epoch);
      this.#become('standby', `split brain: sibling ${m.nodeId} (epoch ${m.epoch}) outranks this node`);
      this.#send(Head.RESPONSED, {}, { id: m.id });
      return;
    }
    if (m.epoch < this.#epoch && this.#role === 'standby') {
      // A woken old active still advertising an old term: it will step down when it hears our active.
      return;
    }
    this.#epoch = Math.max(this.#epoch, m.epoch);
    if (m.priority === 0) {
      this.#epoch++;
      this.#become('active', `sibling ${m.nodeId} handed over (priority 0)`);
      return;
    }
    if (this.#o.preempt && this.#o.priority > m.priority) {
      this.#epoch++;
      this.#become('active', `preempting sibling ${m.nodeId} of lower priority ${m.priority}`);
      this.#send(Head.DESIGNATE, { role: AsState.STANDBY });
      return;
    }
    if (this.#role === 'initial') this.#become('standby', `sibling ${m.nodeId} is active`);
    this.#markSiblingOnline('adverts arrive');
    this.#armDown();
    this.#send(Head.RESPONSED, {}, { id: m.id });
  }

  #onResponsed(m: PairMessage): void {
    if (this.#role !== 'active') return;
    // A receipt for one of our recent adverts (or for a Designate) proves the sibling hears us.
    if (!this.#recentAdverts.includes(m.id) && m.id !== this.#frameId) return;
    this.#unanswered = 0;
    this.#markSiblingOnline('receipts resumed');
  }

  /** Whether this node outranks `m`'s sender as an active: (epoch, priority, node id). */
  #outranks(m: PairMessage): boolean {
    if (this.#epoch !== m.epoch) return this.#epoch > m.epoch;
    if (this.#o.priority !== m.priority) return this.#o.priority > m.priority;
    return this.#o.nodeId > m.nodeId;
  }

  #advert(): void {
    if (this.#stopped) return;
    if (this.#role === 'initial') {
      this.#sendNegotiate();
      return;
    }
    if (this.#role !== 'active') return;
    const id = this.#send(Head.CONNECTED, { client: this.#o.clientEndpoint });
    this.#recentAdverts.push(id);
    if (this.#recentAdverts.length > 8) this.#recentAdverts.shift();
    this.#unanswered++;
    if (this.#unanswered > this.#o.offlineAfterAdverts && this.#siblingOnline) {
      this.#siblingOnline = false;
      this.#o.onSibling(false, `${this.#unanswered} adverts unanswered`);
    }
  }

  #become(to: PairRole, reason: string): void {
    const from = this.#role;
    this.#timers.clearTimeout(this.#negotiationTimer);
    this.#negotiationTimer = undefined;
    if (to === 'standby') this.#armDown();
    else {
      this.#timers.clearTimeout(this.#downTimer);
      this.#downTimer = undefined;
    }
    if (to === 'active') this.#unanswered = 0;
    if (from === to) return;
    this.#role = to;
    this.#o.onRole(from, to, reason, this.#epoch);
    if (to === 'active') this.#send(Head.CONNECTED, { client: this.#o.clientEndpoint });
  }

  #armNegotiation(): void {
    this.#timers.clearTimeout(this.#negotiationTimer);
    this.#negotiationTimer = this.#timers.setTimeout(() => {
      this.#negotiationTimer = undefined;
      if (this.#stopped || this.#role !== 'initial') return;
      // The original rule: cannot negotiate, so activate.
      this.#epoch++;
      this.#become('active', `no sibling answered within ${this.#o.negotiationTimeoutMs} ms`);
    }, this.#o.negotiationTimeoutMs);
  }

  #armDown(): void {
    this.#timers.clearTimeout(this.#downTimer);
    this.#downTimer = this.#timers.setTimeout(() => {
      this.#downTimer = undefined;
      // Adverts that came while this node was busy are still queued: hear them before deciding.
      this.#defer(() => this.#masterDown());
    }, this.downIntervalMs);
  }

  #masterDown(): void {
    {
      // An advert heard meanwhile re-armed the timer: the active is fine.
      if (this.#stopped || this.#role !== 'standby' || this.#downTimer !== undefined) return;
      this.#epoch++;
      if (this.#siblingOnline) {
        this.#siblingOnline = false;
        this.#o.onSibling(false, 'adverts stopped');
      }
      this.#become('active', `no advert from the active for ${Math.round(this.downIntervalMs)} ms`);
    }
  }

  #markSiblingOnline(reason: string): void {
    if (this.#siblingOnline) return;
    this.#siblingOnline = true;
    this.#o.onSibling(true, reason);
  }

  #sendNegotiate(): void {
    this.#send(Head.NEGOTIATE, { token: this.#token });
  }

  #send(head: HeadValue, data: PairData, extra: { id?: number; priority?: number } = {}): number {
    const id = extra.id ?? (this.#frameId = (this.#frameId + 1) >>> 0);
    this.#o.send({ head, id, data, epoch: this.#epoch, priority: extra.priority });
    return id;
  }

  #newToken(): Buffer {
    const t = Buffer.alloc(8);
    for (let i = 0; i < 8; i++) t[i] = Math.floor(this.#random() * 256);
    return t;
  }

  #clearTimers(): void {
    this.#timers.clearInterval(this.#advertTimer);
    this.#timers.clearTimeout(this.#negotiationTimer);
    this.#timers.clearTimeout(this.#downTimer);
    this.#advertTimer = this.#negotiationTimer = this.#downTimer = undefined;
  }

  /** The state byte this node puts in what it sends. */
  get state(): AsStateValue {
    return STATE_OF[this.#role];
  }
}
