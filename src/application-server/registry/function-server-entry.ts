import type { FrameConnection, LoadReport, ServiceDescriptor } from '../../protocol/index.js';
import { OutlierStats } from '../routing/outlier-detector.js';
import type { SchedulingCandidate } from '../routing/scheduler.js';
import type { Pool } from './pool.js';

/**
 * connecting:  known, no connection has answered yet
 * available:   chosen by the scheduler
 * unavailable: lost its connections; probed on a timer until it answers again
 * ejected:     connections look healthy but answers keep failing (outlier detection); back after a time
 * draining:    asked to stop; no new requests, in-flight ones finish
 */
export type FsState = 'connecting' | 'available' | 'unavailable' | 'ejected' | 'draining';

export const FS_STATES: readonly FsState[] = ['connecting', 'available', 'unavailable', 'ejected', 'draining'];

/** How the AS learned of the FS: its own HELLO, or addFunctionServer(). */
export type FsSource = 'hello' | 'manual';

/** A read-only view of one FS, as events and the admin surface show it. */
export interface FunctionServerInfo {
  id: string;
  name: string;
  host: string;
  port: number;
  poolType: number;
  standby: boolean;
  state: FsState;
  source: FsSource;
  serviceKeys: number[];
  inflight: number;
  loadScore: number;
  load: LoadReport | undefined;
  /** Age of the last LOAD report in ms at the time of the snapshot; undefined if none came. */
  loadAgeMs: number | undefined;
  served: number;
  /** Answers that counted as failures for outlier detection (AS timeouts, FS TIMEOUT and SERVER_ERROR). */
  failures: number;
  /** Times outlier detection ejected it. */
  ejections: number;
  /** Where its control link comes from (HELLO-registered FSs); undefined for FSs added by address. */
  registeredFrom: string | undefined;
  /** Pool connections open now, and kept when all is well. */
  connections: { open: number; expected: number };
  /** Services with their names, idempotence and limits (from the FS's DESCRIBE answer). */
  services: ServiceDescriptor[];
  /** Its share against FSs of weight 1. */
  weight: number;
  /** Director mode: clients holding a lease on it now, and requests it has had from direct clients. */
  direct: { leases: number; requests: number };
}

/** The FS manager's record of one FS. Mutable fields are written only by the manager and dispatcher. */
export class FunctionServerEntry implements SchedulingCandidate {
  state: FsState = 'connecting';
  inflight = 0;
  loadScore = 0;
  loadReceivedAt = 0;
  load: LoadReport | undefined;
  /** Requests answered OK by this FS through the AS. */
  served = 0;
  failures = 0;
  /** Replaced by a newer registration under the same name: never chosen, kept only until its in-flight requests are answered. */
  retired = false;
  services = new Map<number, ServiceDescriptor>();
  poolType: number;
  standby: boolean;
  name: string;
  /** Its share against FSs of weight 1, from its DESCRIBE answer (LVS's wrr/wlc). */
  weight = 1;
  /** It said it reads version-2 requests; otherwise their extension block is stripped before sending. */
  readsExtension = false;
  /** Director mode: client id → epoch ms its lease on this FS ends. */
  readonly leases = new Map<string, number>();
  /** Requests it received from direct clients, from its last LOAD report. */
  directRequests = 0;
  /** The control link that registered it and owns its name (HELLO-registered FSs). */
  link: FrameConnection | undefined;
  /** When it last became unavailable (epoch ms); 0 while it is not. */
  unavailableSince = 0;
  readonly outlier = new OutlierStats();
  ejectionTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly source: FsSource,
    readonly pool: Pool,
    init: { name: string; poolType: number; standby: boolean; services?: readonly ServiceDescriptor[] },
  ) {
    this.name = init.name;
    this.poolType = init.poolType;
    this.standby = init.standby;
    if (init.services) this.setServices(init.services);
  }

  get host(): string {
    return this.pool.host;
  }

  get port(): number {
    return this.pool.port;
  }

  /** Its control link is open: some live process holds its name. */
  get held(): boolean {
    return this.link !== undefined && !this.link.closed;
  }

  hasService(serviceKey: number): boolean {
    return this.services.has(serviceKey);
  }

  /** Whether it shares a service key with `other` (they compete for the same requests). */
  sharesKeyWith(other: FunctionServerEntry): boolean {
    const [small, big] = this.services.size <= other.services.size ? [this.services, other.services] : [other.services, this.services];
    for (const k of small.keys()) if (big.has(k)) return true;
    return false;
  }

  isIdempotent(serviceKey: number): boolean {
    return this.services.get(serviceKey)?.idempotent === true;
  }

  setServices(list: readonly ServiceDescriptor[]): void {
    this.services = new Map(list.map((s) => [s.key, s]));
  }

  info(now = Date.now()): FunctionServerInfo {
    return {
      id: this.id,
      name: this.name,
      host: this.host,
      port: this.port,
      poolType: this.poolType,
      standby: this.standby,
      state: this.state,
      source: this.source,
      serviceKeys: [...this.services.keys()].sort((a, b) => a - b),
      inflight: this.inflight,
      loadScore: this.loadScore,
      load: this.load,
      loadAgeMs: this.loadReceivedAt > 0 ? now - this.loadReceivedAt : undefined,
      served: this.served,
      failures: this.failures,
      ejections: this.outlier.ejections,
      registeredFrom: this.link?.remote,
      connections: { open: this.pool.readyCount, expected: this.pool.expected },
      services: [...this.services.values()].sort((a, b) => a.key - b.key),
      weight: this.weight,
      direct: { leases: countLive(this.leases, now), requests: this.directRequests },
    };
  }
}

/**
 * One number for load in [0, 1]: the largest of CPU (one core = 1), event-loop use, and memory
 * once the heap is past 85% of its limit (below that, memory does not slow an FS down).
 */
export function loadScoreOf(r: LoadReport): number {
  return Math.max(r.elu, Math.min(1, r.cpu), r.memory > 0.85 ? r.memory : 0);
}

/** Entries whose time has not come yet. */
function countLive(m: Map<string, number>, now: number): number {
  let n = 0;
  for (const until of m.values()) if (until > now) n++;
  return n;
}
