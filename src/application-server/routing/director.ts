import { MAX_LOOKUP_ENDPOINTS, Status, type LookupReply } from '../../protocol/index.js';
import { signTicket } from '../../security/index.js';
import type { FunctionServerEntry } from '../registry/function-server-entry.js';
import type { FsManager } from '../registry/fs-manager.js';
import type { LeastLoadedOptions } from './scheduler.js';

export interface DirectorOptions extends LeastLoadedOptions {
  /** How long a LOOKUP answer stands; clients renew at half of it. */
  leaseMs: number;
  /** Most endpoints one answer names (the cheapest ones). */
  maxEndpoints: number;
  /** Tickets are signed with it; without it the FSs take connections from loopback without proof. */
  joinSecret: Buffer | undefined;
  /** True in the AS's start-up grace (Dispatcher.inStartupGrace): an unknown key is UNAVAILABLE then. */
  inStartupGrace: (now: number) => boolean;
}

export type LookupOutcome = { status: typeof Status.OK; body: LookupReply } | { status: number; body: { code: string; message: string } };

/**
 * Director mode (LVS's direct routing, in the client SDK): a client asks which FSs serve a key, and
 * then talks to them itself. The AS answers with the cheapest available FSs, each with a weight
 * from its reported load, the AS's own in-flight count and the leases it has handed out, and a
 * ticket the FSs accept. The FSs' LOAD reports cover direct traffic, so the next renewal steers
 * clients away from an FS that got busy.
 */
export class Director {
  lookups = 0;
  readonly #manager: FsManager;
  readonly #o: DirectorOptions;
  /** The FSs each open client connection holds leases on, to give them back when it closes. */
  readonly #leasedBy = new Map<string, Set<FunctionServerEntry>>();

  constructor(manager: FsManager, opts: DirectorOptions) {
    this.#manager = manager;
    this.#o = opts;
  }

  get leaseMs(): number {
    return this.#o.leaseMs;
  }

  /** Clients holding an unexpired lease on `fs` (expired ones are dropped here). */
  leaseCount(fs: FunctionServerEntry, now: number): number {
    for (const [client, until] of fs.leases) if (until <= now) fs.leases.delete(client);
    return fs.leases.size;
  }

  /**
   * A client connection closed: its leases no longer stand. Leases counted a closed connection
   * until they ran out, so opening connections to ask LOOKUP could steer the others' choice.
   */
  release(client: string): void {
    const held = this.#leasedBy.get(client);
    if (held === undefined) return;
    this.#leasedBy.delete(client);
    for (const fs of held) fs.leases.delete(client);
  }

  lookup(client: string, key: number, poolType: number, now: number): LookupOutcome {
    this.lookups++;
    const set = this.#manager.candidates(key, poolType);
    const tier = set.active.length > 0 ? set.active : set.standby;
    if (tier.length === 0) {
      if (set.known) return { status: Status.UNAVAILABLE, body: { code: 'SB_ERR_UNAVAILABLE', message: `no function server for service ${key} (pool type ${poolType}) is available now; retry later` } };
      // Just started: as for requests, the FSs that serve it may not have come back yet.
      return this.#o.inStartupGrace(now)
        ? { status: Status.UNAVAILABLE, body: { code: 'SB_ERR_UNAVAILABLE', message: `this application server started moments ago and may not have heard from every function server yet (none serves service ${key} in pool type ${poolType} so far); retry shortly, or at another AS` } }
        : { status: Status.SERVICE_NOT_FOUND, body: { code: 'SB_ERR_SERVICE_NOT_FOUND', message: `no function server serves service ${key} in pool type ${poolType}; check the key and the pool type` } };
    }
    const priced = tier.map((fs) => ({ fs, cost: this.#cost(fs, now) })).sort((a, b) => a.cost - b.cost);
    const chosen = priced.slice(0, Math.min(this.#o.maxEndpoints, MAX_LOOKUP_ENDPOINTS));
    const until = now + this.#o.leaseMs;
    let held = this.#leasedBy.get(client);
    if (held === undefined) this.#leasedBy.set(client, (held = new Set()));
    const endpoints = chosen.map(({ fs, cost }) => {
      fs.leases.set(client, until);
      held.add(fs);
      const weight = Math.max(1, Math.min(65535, Math.round(1000 / cost)));
      // An FS that reads only version 1 would close a connection that carries the extension block.
      return fs.readsExtension ? { id: fs.id, host: fs.host, port: fs.port, weight } : { id: fs.id, host: fs.host, port: fs.port, weight, versions: [1] };
    });
    // The client re-sends after a lost FS as the AS would: by the service's own declaration.
    const body: LookupReply = { endpoints, leaseMs: this.#o.leaseMs, idempotent: chosen.every(({ fs }) => fs.isIdempotent(key)) };
    if (this.#o.joinSecret !== undefined) {
      // Valid for a lease and a half: a client that renews at half a lease always holds a good one,
      // even when one renewal fails.
      const t = signTicket(this.#o.joinSecret, { client, keys: [key], poolType, exp: now + Math.round(this.#o.leaseMs * 1.5) });
      body.ticket = { body: t.body, mac: t.mac, key: t.key, expiresAt: t.expiresAt };
    }
    return { status: Status.OK, body };
  }

  /** (1 + in flight through this AS + other clients' leases) × (1 + loadWeight × load) ÷ weight. */
  #cost(fs: FunctionServerEntry, now: number): number {
    const fresh = fs.loadReceivedAt > 0 && now - fs.loadReceivedAt <= this.#o.staleAfterMs;
    const load = fresh ? fs.loadScore : this.#o.unknownLoad;
    return ((1 + fs.inflight + this.leaseCount(fs, now)) * (1 + this.#o.loadWeight * load)) / fs.weight;
  }
}
