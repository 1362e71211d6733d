import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Campaign, Election, Etcd3, IKeyValue, Lease, Namespace, Watcher } from 'etcd3';
import { etcd3 } from '../../common/etcd3.js';
import type { Logger } from '../../common/logger.js';
import { ConfigError } from '../../protocol/index.js';
import { normalizeEndpoint } from '../../discovery/registry-url.js';
import { NotifyRunner } from './notify.js';
import type { PairRole, SiblingView } from './pair-machine.js';
import type { PairNodeEvents } from './pair-node.js';

/** `pairMode: 'etcd'`: the active AS is the leader of an etcd election (docs/pair.md, section 8). */
export interface EtcdPairOptions {
  /** etcd client endpoints: `etcd://host:port`, `http://host:port` or `host:port` (no TLS to etcd yet). */
  endpoints: string[];
  /** Key prefix (default `/switchboard`); the candidates' keys are `<prefix>/election/<name>/<lease id>`. */
  prefix?: string;
  /** Lease TTL in whole seconds (default 2, at least 1): a dead active is replaced after about this long. */
  ttlSeconds?: number;
  /** The election's name (default `active`): two pairs sharing one etcd and prefix need two names. */
  name?: string;
  /** 16 hex digits naming this node in the campaign value and GET /pair (default random per start). */
  nodeId?: string;
  /** Shell commands run on each change to active / standby (as with the UDP pair). */
  onActive?: string;
  onStandby?: string;
}

/** What the AS needs of its pair, whichever mode runs it (PairNode over UDP, EtcdElection on etcd). */
export interface PairParticipant extends EventEmitter<PairNodeEvents> {
  readonly nodeId: string;
  readonly role: PairRole;
  readonly epoch: number;
  readonly priority: number;
  readonly siblingOnline: boolean;
  readonly sibling: SiblingView | undefined;
  readonly counters: { sent: number; received: number; dropped: Map<string, number> };
  start(): Promise<number | undefined>;
  designate(role: 'active' | 'standby'): void;
  stop(handOver?: boolean): Promise<void>;
}

/** The campaign value: who the candidate is and where it serves clients. */
interface CandidateValue {
  nodeId: string;
  client?: { host: string; port: number };
}

const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 5000;
/** Longest stop() waits for etcd to revoke the lease before it gives up (the lease then expires). */
const RESIGN_WAIT_MS = 1500;

/** `etcd://h:p`, `http://h:p` and `h:p` become `http://h:p`, by the registry's one rule (no TLS to etcd yet). */
export function etcdHosts(endpoints: readonly string[]): string[] {
  if (endpoints.length === 0) throw new ConfigError('an etcd election needs at least one etcd endpoint (--registry etcd://host:port)');
  return endpoints.map(normalizeEndpoint);
}

function parseValue(v: string | Buffer | undefined): CandidateValue | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v.toString()) as CandidateValue;
    return typeof o?.nodeId === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The active/standby pair decided by an etcd election instead of UDP negotiation. Each AS campaigns
 * with a lease of `ttlSeconds`; etcd orders the candidates' keys by creation revision and the first is
 * the leader, the active. The epoch is that key's creation revision: it grows with every new leader.
 *
 * Strict exclusion: the active holds its role only while its lease is certainly alive at etcd. Each
 * keep-alive answer proves the lease lived when that keep-alive was sent, so the lease cannot expire
 * before `sent + TTL`; the active steps down `marginMs` before that instant unless a newer answer
 * came. etcd deletes the leader key only when the lease expires or is revoked, and only then can the
 * next candidate be elected: at no moment are two ASs active (clock rates aside). The price: an
 * active that cannot reach etcd stops serving although nobody may have replaced it yet.
 *
 * The keep-alives that bound the role are our own (`Lease.keepaliveOnce()`, one stream per request,
 * every `keepaliveMs`): each answer belongs to exactly one request, so its send time is known.
 * etcd3's own keep-alive loop (every TTL/3 on a shared stream that it replaces after errors) also
 * runs, but its answers cannot be matched to their requests soundly and are not used.
 *
 * Who leads is read from etcd (the candidate key with the lowest creation revision), on every change
 * a watch on the candidates' prefix reports and every TTL/2; etcd3's ElectionObserver is not used:
 * when it starts without a leader it takes the last key put before its watch is cancelled, which can
 * be a later candidate's key (docs/pair.md, section 8).
 */
export class EtcdElection extends EventEmitter<PairNodeEvents> implements PairParticipant {
  readonly nodeId: string;
  readonly key: string;
  readonly ttlSeconds: number;
  /** The active steps down this long before its lease could expire at etcd. */
  readonly marginMs: number;
  /** Our own keep-alives are sent this often (one at a time); see the class comment. */
  readonly keepaliveMs: number;
  readonly #o: EtcdPairOptions;
  readonly #logger: Logger;
  readonly #notify: NotifyRunner;
  readonly #endpoint: () => { host: string; port: number } | undefined;
  readonly #client: Etcd3;
  readonly #election: Election;
  readonly #candidates: Namespace;
  #role: PairRole = 'initial';
  #epoch = 0;
  #campaign: Campaign | undefined;
  /** The current campaign's lease, once granted: its key in etcd makes this AS a candidate. */
  #leaseId: string | undefined;
  /** Bumped whenever the campaign is replaced: answers for an older one are ignored. */
  #generation = 0;
  /** The lease is certainly alive at etcd until then (ms since the epoch); 0: no live lease known. */
  #validUntil = 0;
  #expiryTimer: NodeJS.Timeout | undefined;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retries = 0;
  #watcher: Watcher | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #leader: (CandidateValue & { revision: number; at: number }) | undefined;
  #candidateCount = 0;
  /** The TTL etcd granted (it raises TTLs below its minimum, 2 s with its default election timeout). */
  #grantedTtl: number | undefined;
  /** The etcd revision of the newest view of the candidates applied: an older read is ignored. */
  #viewRevision = 0;
  /** The etcd revision at which our election was confirmed (our key existed and led). */
  #activeRevision = 0;
  #siblingOnline = false;
  #started = false;
  #stopped = false;
  #sent = 0;
  #received = 0;
  readonly #errors = new Map<string, number>();

  constructor(o: EtcdPairOptions, clientEndpoint: () => { host: string; port: number } | undefined, logger: Logger) {
    super();
    const ttl = o.ttlSeconds ?? 2;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) throw new ConfigError(`the etcd lease TTL ${ttl} must be a whole number of seconds from 1 to 3600`);
    if (o.nodeId !== undefined && !/^[0-9a-f]{16}$/.test(o.nodeId)) throw new ConfigError(`pair node id "${o.nodeId}" must be 16 lowercase hex digits`);
    const prefix = (o.prefix ?? '/switchboard').replace(/\/+$/, '');
    const name = o.name ?? 'active';
    if (!/^[\w.-]+$/.test(name)) throw new ConfigError(`etcd election name "${name}" may hold letters, digits, '_', '.' and '-' only`);
    this.#o = o;
    this.#logger = logger;
    this.#endpoint = clientEndpoint;
    this.nodeId = o.nodeId ?? randomBytes(8).toString('hex');
    this.ttlSeconds = ttl;
    this.marginMs = Math.max(100, Math.round((ttl * 1000) / 5));
    // Four keep-alives per (TTL - margin): a healthy lease tolerates answers delayed by
    // TTL - margin - keepaliveMs (1200 ms with the default TTL of 2 s) before it is given up.
    this.keepaliveMs = Math.max(50, Math.round((ttl * 1000 - this.marginMs) / 4));
    this.key = `${prefix}/election/${name}`;
    this.#notify = new NotifyRunner(logger);
    this.#client = new (etcd3().Etcd3)({ hosts: etcdHosts(o.endpoints), dialTimeout: 2000 });
    this.#election = this.#client.namespace(`${prefix}/`).election(name, ttl);
    this.#candidates = this.#client.namespace(`${this.key}/`);
  }

  get role(): PairRole {
    // A timer that fires late (a blocked event loop) must not leave an expired lease active.
    if (this.#role === 'active' && Date.now() >= this.#validUntil - this.marginMs) this.#leaseLost('the etcd lease could not be renewed in time');
    return this.#role;
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Not used by an election (etcd's order decides); shown as 0 in GET /pair. */
  get priority(): number {
    return 0;
  }

  get siblingOnline(): boolean {
    return this.#siblingOnline;
  }

  /** The leader as etcd shows it, when it is another node (a standby names it in NOT_ACTIVE). */
  get sibling(): SiblingView | undefined {
    const l = this.#leader;
    if (!l || l.nodeId === this.nodeId) return undefined;
    return { nodeId: l.nodeId, role: 'active', priority: 0, epoch: l.revision, clientEndpoint: l.client, lastHeardAt: l.at };
  }

  /** etcd calls made, answered, and failed by kind (GET /pair shows them as its datagram counts). */
  get counters(): { sent: number; received: number; dropped: Map<string, number> } {
    return { sent: this.#sent, received: this.#received, dropped: new Map(this.#errors) };
  }

  get notifyHistory(): NotifyRunner['history'] {
    return this.#notify.history;
  }

  /** For GET /pair: the key, the TTL, and how long the lease is known to live on (active only). */
  get details(): { key: string; ttlSeconds: number; grantedTtlSeconds: number | undefined; leaseValidForMs: number | undefined; candidates: number } {
    return {
      key: this.key,
      ttlSeconds: this.ttlSeconds,
      grantedTtlSeconds: this.#grantedTtl,
      leaseValidForMs: this.#role === 'active' ? Math.max(0, this.#validUntil - Date.now()) : undefined,
      candidates: this.#candidateCount,
    };
  }

  /** Starts campaigning and observing; resolves at once (this node is not active until elected). */
  async start(): Promise<undefined> {
    if (this.#started) return undefined;
    this.#started = true;
    this.#campaignNow();
    this.#watch();
    this.#poll();
    return undefined;
  }

  /**
   * `standby`: the active resigns (its key is deleted, the next candidate is elected at once) and
   * campaigns again behind it; alone, it is elected again. `active`: etcd's order cannot be jumped,
   * so a standby only makes sure it is campaigning; to move the role here, designate the active
   * standby.
   */
  designate(role: 'active' | 'standby'): void {
    if (this.#stopped) return;
    if (role === 'standby' && this.#role === 'active') {
      this.#resignAndRecampaign('designated standby by an operator');
      return;
    }
    if (role === 'active' && this.#role !== 'active') {
      this.#logger.warn({ node: this.nodeId, leader: this.#leader?.nodeId }, 'an etcd election cannot be jumped: this AS stays a candidate; designate the active standby to move the role');
      if (!this.#campaign) this.#campaignNow();
    }
  }

  /** With `handOver`, resigns at once (the standby is elected without waiting for the TTL); then closes the etcd client. */
  async stop(handOver = true): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#nextGeneration();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#watchTimer);
    clearTimeout(this.#pollTimer);
    this.#clearExpiry();
    if (this.#role === 'active') this.#setRole('initial', 'stopping', this.#epoch);
    const campaign = this.#campaign;
    this.#campaign = undefined;
    const watcher = this.#watcher;
    this.#watcher = undefined;
    const resign = campaign ? (handOver ? campaign.resign() : Promise.resolve(this.#leaseOf(campaign)?.release())) : Promise.resolve();
    await Promise.race([resign.catch(() => undefined), new Promise((r) => setTimeout(r, RESIGN_WAIT_MS).unref())]);
    await Promise.race([watcher?.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 200).unref())]);
    this.#client.close();
  }

  /** A new campaign (or none): answers and timers of the older one no longer count. */
  #nextGeneration(): number {
    clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
    this.#leaseId = undefined;
    return ++this.#generation;
  }

  #count(kind: string): void {
    this.#errors.set(kind, (this.#errors.get(kind) ?? 0) + 1);
  }

  /** The campaign's lease (a private field of etcd3's Campaign): its keep-alives bound our role. */
  #leaseOf(c: Campaign): Lease | undefined {
    return (c as unknown as { lease?: Lease }).lease;
  }

  #campaignNow(): void {
    if (this.#stopped) return;
    const gen = this.#nextGeneration();
    const value: CandidateValue = { nodeId: this.nodeId, client: this.#endpoint() };
    const grantSentAt = Date.now();
    this.#sent++;
    const campaign = this.#election.campaign(JSON.stringify(value));
    this.#campaign = campaign;
    const lease = this.#leaseOf(campaign);
    if (!lease) throw new Error('etcd3 Campaign has no lease field: this etcd3 version is not supported by the etcd election');
    // The lease was granted after grantSentAt: it lives at least until grantSentAt + TTL. Then each
    // answer to one of our keep-alives shows it alive when that request left (see #keepalive).
    let validUntil = grantSentAt + this.ttlSeconds * 1000;
    const alive = (sentAt: number, ttl: number): void => {
      if (gen !== this.#generation) return;
      if (this.#grantedTtl !== ttl && ttl !== this.ttlSeconds) this.#logger.warn({ asked: this.ttlSeconds, granted: ttl }, 'etcd granted another lease TTL than asked (its minimum is 1.5 election timeouts, rounded up): takeovers take that long');
      this.#grantedTtl = ttl;
      // Answers may come out of order: only a later send time extends the lease.
      if (sentAt + ttl * 1000 <= validUntil) return;
      validUntil = sentAt + ttl * 1000;
      if (this.#role === 'active') this.#extend(validUntil);
    };
    lease.on('keepaliveFailed', () => this.#count('keepalive'));
    lease.grant().then(
      (id) => {
        if (gen !== this.#generation) return;
        this.#leaseId = id;
        this.#keepalive(lease, gen, alive);
      },
      () => undefined, // the campaign fails too and reports it
    );
    campaign.on('error', (err: Error) => {
      if (gen !== this.#generation) return;
      this.#count('campaign');
      this.#logger.warn({ node: this.nodeId, err: err.message }, 'etcd campaign failed; campaigning again');
      if (this.#role === 'active') this.#leaseLost(`the etcd campaign failed: ${err.message}`);
      else this.#retry();
    });
    campaign.on('elected', () => {
      if (gen !== this.#generation) return;
      this.#received++;
      void this.#confirmElected(campaign, gen, () => validUntil);
    });
  }

  /**
   * Our own keep-alive loop for this campaign's lease: one request at a time, every `keepaliveMs`.
   * keepaliveOnce() opens a stream for one request and resolves with its answer, so the answer is
   * matched to its send time without any bookkeeping. An answer later than TTL - margin after its
   * send could not keep the role any more: the request is abandoned then (its deadline).
   */
  #keepalive(lease: Lease, gen: number, alive: (sentAt: number, ttl: number) => void): void {
    if (this.#stopped || gen !== this.#generation) return;
    const sentAt = Date.now();
    this.#sent++;
    lease
      .keepaliveOnce({ deadline: new Date(sentAt + this.ttlSeconds * 1000 - this.marginMs) })
      .then((res) => {
        this.#received++;
        alive(sentAt, Number(res.TTL));
      })
      .catch(() => this.#count('keepalive'))
      .finally(() => {
        if (this.#stopped || gen !== this.#generation) return;
        const wait = Math.max(0, sentAt + this.keepaliveMs - Date.now());
        this.#keepaliveTimer = setTimeout(() => this.#keepalive(lease, gen, alive), wait);
      });
  }

  /** Elected: reads our key back (its creation revision is the epoch) and takes the role if the lease still holds. */
  async #confirmElected(campaign: Campaign, gen: number, validUntil: () => number): Promise<void> {
    try {
      const key = await campaign.getCampaignKey();
      this.#sent++;
      const r = await this.#client.get(key).exec();
      if (gen !== this.#generation) return;
      this.#received++;
      const kv = r.kvs[0];
      if (!kv) throw new Error('our campaign key is gone');
      if (Date.now() >= validUntil() - this.marginMs) throw new Error('elected with a lease about to expire');
      this.#retries = 0;
      const revision = Number(kv.create_revision);
      this.#activeRevision = Number(r.header.revision);
      // A read of the candidates from before this one is older than our election: not applied.
      this.#viewRevision = Math.max(this.#viewRevision, this.#activeRevision);
      this.#leader = { ...(parseValue(kv.value) ?? { nodeId: this.nodeId }), revision, at: Date.now() };
      this.#extend(validUntil());
      this.#setRole('active', `elected by etcd (key ${kv.key.toString()})`, revision);
    } catch (err) {
      if (gen !== this.#generation) return;
      this.#count('elected');
      this.#logger.warn({ node: this.nodeId, err: (err as Error).message }, 'etcd election not confirmed; campaigning again');
      this.#resignAndRecampaign(`election not confirmed: ${(err as Error).message}`);
    }
  }

  #extend(validUntil: number): void {
    this.#validUntil = validUntil;
    this.#clearExpiry();
    const wait = validUntil - this.marginMs - Date.now();
    this.#expiryTimer = setTimeout(() => this.#leaseLost('the etcd lease could not be renewed in time'), Math.max(0, wait));
  }

  #clearExpiry(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
  }

  /** The active can no longer prove its lease alive: it steps down now and campaigns with a new lease. */
  #leaseLost(reason: string): void {
    if (this.#role !== 'active') return;
    this.#logger.warn({ node: this.nodeId, reason }, 'etcd lease lost: stepping down');
    this.#resignAndRecampaign(reason);
  }

  #resignAndRecampaign(reason: string): void {
    const old = this.#campaign;
    this.#campaign = undefined;
    this.#nextGeneration();
    this.#clearExpiry();
    this.#validUntil = 0;
    if (this.#role === 'active') this.#setRole('initial', reason, this.#epoch);
    // The old key goes when etcd hears the revoke, or when its lease expires.
    old?.resign().catch(() => this.#count('resign'));
    if (this.#stopped) return;
    this.#retry(true);
  }

  /** Campaigns again: at once after a resignation, with capped backoff after failures. */
  #retry(now = false): void {
    clearTimeout(this.#retryTimer);
    if (this.#stopped) return;
    const old = this.#campaign;
    this.#campaign = undefined;
    this.#nextGeneration();
    old?.resign().catch(() => undefined);
    const delay = now ? 0 : Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(this.#retries++, 10));
    this.#retryTimer = setTimeout(() => this.#campaignNow(), delay);
  }

  /** Watches the candidates' keys: any put or delete (a new candidate, a lease gone) reads them again. */
  #watch(): void {
    if (this.#stopped) return;
    this.#sent++;
    const watcher = this.#candidates.watch().prefix('').watcher();
    this.#watcher = watcher;
    const refresh = (): void => {
      if (this.#watcher === watcher) void this.#refresh();
    };
    // Also after a reconnection: changes made while the watch was down are in the read.
    watcher.on('connected', () => {
      this.#received++;
      refresh();
    });
    watcher.on('put', refresh);
    watcher.on('delete', refresh);
    watcher.on('error', (err: Error) => {
      if (this.#watcher !== watcher) return;
      this.#count('watch');
      this.#logger.debug({ err: err.message }, 'etcd watch on the candidates failed; watching again');
      this.#watcher = undefined;
      watcher.cancel().catch(() => undefined);
      this.#watchTimer = setTimeout(() => this.#watch(), 500);
    });
  }

  /** Reads the candidates now and then too (a missed watch event heals here), and counts them. */
  #poll(): void {
    if (this.#stopped) return;
    void this.#refresh().finally(() => {
      if (!this.#stopped) this.#pollTimer = setTimeout(() => this.#poll(), Math.max(200, (this.ttlSeconds * 1000) / 2));
    });
  }

  /**
   * Reads the candidates' keys in creation order: the first is the leader (what etcd's election
   * means by leader). Reads may finish out of order; one older than the newest applied is ignored.
   */
  async #refresh(): Promise<void> {
    let kvs: IKeyValue[];
    let revision: number;
    try {
      this.#sent++;
      const r = await this.#candidates.getAll().sort('Create', 'Ascend').exec();
      this.#received++;
      kvs = r.kvs;
      revision = Number(r.header.revision);
    } catch {
      this.#count('range');
      return;
    }
    if (this.#stopped || revision < this.#viewRevision) return;
    this.#viewRevision = revision;
    this.#candidateCount = kvs.length;
    const others = kvs.filter((kv) => parseValue(kv.value)?.nodeId !== this.nodeId).length;
    this.#setSibling(others > 0, others > 0 ? 'another candidate campaigns in etcd' : 'no other candidate in etcd');
    const first = kvs[0];
    const v = first ? parseValue(first.value) : undefined;
    const leaderRevision = first ? Number(first.create_revision) : 0;
    this.#leader = v ? { ...v, revision: leaderRevision, at: Date.now() } : undefined;
    if (this.#role === 'active') {
      // Our key led when the election was confirmed; in a newer view another first key (or none)
      // means ours is gone (revoked, or its lease expired at etcd): step down.
      if (revision >= this.#activeRevision && leaderRevision !== this.#epoch) {
        this.#leaseLost(v ? `etcd names node ${v.nodeId} the leader` : 'our etcd election key is gone');
      }
      return;
    }
    // Standby means ready to take over: only once our own key queues behind the leader's. Earlier,
    // an active designated standby could resign and campaign again before our key existed, and
    // etcd would rightly elect it again.
    const queued = this.#leaseId !== undefined && kvs.some((kv) => kv.lease === this.#leaseId);
    if (v && v.nodeId !== this.nodeId && queued) this.#setRole('standby', `node ${v.nodeId} leads the etcd election`, leaderRevision);
  }

  #setSibling(online: boolean, reason: string): void {
    if (online === this.#siblingOnline) return;
    this.#siblingOnline = online;
    this.#logger[online ? 'info' : 'warn']({ online, reason, node: this.nodeId }, online ? 'sibling online' : 'sibling offline');
    this.emit('sibling', online, reason);
  }

  #setRole(to: PairRole, reason: string, epoch: number): void {
    const from = this.#role;
    if (from === to) return;
    this.#role = to;
    this.#epoch = epoch;
    this.#logger.warn({ from, to, reason, epoch, node: this.nodeId }, `this application server is now ${to}`);
    this.emit('role', from, to, reason, epoch);
    if (to === 'active') this.#notify.run(this.#o.onActive, to, epoch, reason);
    if (to === 'standby') this.#notify.run(this.#o.onStandby, to, epoch, reason);
  }
}
