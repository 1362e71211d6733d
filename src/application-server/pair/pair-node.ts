import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.js';
import type { RateLimitedLog } from '../../common/rate-limited-log.js';
import { ConfigError } from '../../protocol/index.js';
import { toSecret } from '../../security/index.js';
import { NotifyRunner } from './notify.js';
import type { DropReason } from './pair-datagram.js';
import { PairMachine, type PairRole, type SiblingView } from './pair-machine.js';
import { DROP_REASONS, PairTransport } from './pair-transport.js';

export interface PairOptions {
  /** UDP port for the pair (0 picks a free one). */
  port: number;
  /** Address the pair port binds (default: the control host). */
  host?: string;
  /** The sibling AS's pair endpoint. */
  peer: { host: string; port: number };
  /** Shared by both ASs; every datagram carries an HMAC-SHA256 tag made with it. */
  secret?: string | Buffer;
  /** Run without a secret (datagrams are then signed with a well-known key: anyone can forge them). */
  insecure?: boolean;
  /** 1-255 (default 100): wins negotiations, and takes over sooner (the skew). */
  priority?: number;
  /** The active's advert interval (default 200 ms). */
  advertMs?: number;
  /** Take the active role from a sibling of lower priority (default false: no flapping). */
  preempt?: boolean;
  /** 16 hex digits naming this node on the wire (default random per start). */
  nodeId?: string;
  /** An Initial node alone for this long becomes active (default 5 adverts). */
  negotiationTimeoutMs?: number;
  /** Datagrams whose clock is further than this from ours are dropped (default 60000). */
  maxClockSkewMs?: number;
  /** The pair socket's receive buffer to ask the kernel for (default 4 MiB; docs/pair.md section 2). */
  recvBufferBytes?: number;
  /** Shell commands run on each change to active / standby (keepalived's notify). */
  onActive?: string;
  onStandby?: string;
}

/** What `insecure` signs with: these 40 ASCII bytes, public in this source, so they prove nothing. */
export const INSECURE_KEY = Buffer.from('switchboard-pair-insecure-well-known-key');

export interface PairNodeEvents {
  role: [from: PairRole, to: PairRole, reason: string, epoch: number];
  sibling: [online: boolean, reason: string];
}

/** The pair as the AS sees it: the state machine on a UDP transport, with notify commands. */
export class PairNode extends EventEmitter<PairNodeEvents> {
  readonly nodeId: string;
  readonly #machine: PairMachine;
  readonly #transport: PairTransport;
  readonly #notify: NotifyRunner;
  readonly #o: PairOptions;
  readonly #log: RateLimitedLog;
  readonly #logger: Logger;
  readonly #insecure: boolean;

  /**
   * `canServe`: whether this AS could serve clients now (an FS available). A node preempts only then:
   * a restarted one that took the role before its FSs registered again would fail every call.
   */
  constructor(
    o: PairOptions,
    host: string,
    clientEndpoint: { host: string; port: number } | (() => { host: string; port: number } | undefined),
    logger: Logger,
    log: RateLimitedLog,
    canServe: () => boolean = () => true,
  ) {
    super();
    const secret = toSecret(o.secret, 'the pair secret');
    if (!secret && !o.insecure) throw new ConfigError('an AS pair needs a shared secret (pair.secret; --pair-secret-file from the CLI); without one any host could make two actives. Set pair.insecure (--pair-insecure) to run without, knowingly');
    if (!validPort(o.port, 0)) throw new ConfigError(`pair port ${JSON.stringify(o.port)} must be a whole number from 0 to 65535 (0 picks a free one)`);
    if (typeof o.peer?.host !== 'string' || o.peer.host === '' || !validPort(o.peer.port, 1)) {
      throw new ConfigError(`pair peer ${JSON.stringify(o.peer)} must be { host, port } naming the sibling's pair port (port 1 to 65535)`);
    }
    if (o.nodeId !== undefined && !/^[0-9a-f]{16}$/.test(o.nodeId)) throw new ConfigError(`pair node id "${o.nodeId}" must be 16 lowercase hex digits`);
    if (o.recvBufferBytes !== undefined && !(Number.isInteger(o.recvBufferBytes) && o.recvBufferBytes >= 65_536 && o.recvBufferBytes <= 2 ** 30)) {
      throw new ConfigError(`pair recvBufferBytes ${o.recvBufferBytes} must be a whole number of bytes from 65536 to 1073741824 (default 4194304)`);
    }
    this.#o = o;
    this.#log = log;
    this.#logger = logger;
    this.#insecure = !secret;
    this.nodeId = o.nodeId ?? randomBytes(8).toString('hex');
    const advertMs = o.advertMs ?? 200;
    this.#notify = new NotifyRunner(logger);
    const endpoint = typeof clientEndpoint === 'function' ? clientEndpoint : () => clientEndpoint;
    this.#transport = new PairTransport(this.nodeId, {
      host: o.host ?? host,
      port: o.port,
      peer: o.peer,
      secret: secret ?? INSECURE_KEY,
      maxClockSkewMs: o.maxClockSkewMs ?? 60_000,
      recvBufferBytes: o.recvBufferBytes,
      onMessage: (m) => this.#machine.receive(m),
      onDrop: (reason, from, message) => this.#log.warn(`pair-drop:${reason}`, { reason, from, message }, 'pair datagram dropped'),
    });
    const priority = o.priority ?? 100;
    this.#machine = new PairMachine({
      nodeId: this.nodeId,
      priority,
      advertMs,
      negotiationTimeoutMs: o.negotiationTimeoutMs ?? advertMs * 5,
      get preempt() {
        return (o.preempt ?? false) && canServe();
      },
      downAfterAdverts: 3,
      offlineAfterAdverts: 5,
      get clientEndpoint() {
        return endpoint();
      },
      send: (m) =>
        this.#transport.send({
          ...m,
          nodeId: this.nodeId,
          state: this.#machine.state,
          priority: m.priority ?? priority,
          preempt: (o.preempt ?? false) && canServe(),
          epoch: m.epoch ?? this.#machine.epoch,
        }),
      onRole: (from, to, reason, epoch) => {
        logger.warn({ from, to, reason, epoch, node: this.nodeId }, `this application server is now ${to}`);
        this.emit('role', from, to, reason, epoch);
        if (to === 'active') this.#notify.run(o.onActive, to, epoch, reason);
        if (to === 'standby') this.#notify.run(o.onStandby, to, epoch, reason);
      },
      onSibling: (online, reason) => {
        logger[online ? 'info' : 'warn']({ online, reason, node: this.nodeId }, online ? 'sibling online' : 'sibling offline');
        this.emit('sibling', online, reason);
      },
    });
  }

  get role(): PairRole {
    return this.#machine.role;
  }

  get epoch(): number {
    return this.#machine.epoch;
  }

  get siblingOnline(): boolean {
    return this.#machine.siblingOnline;
  }

  get sibling(): SiblingView | undefined {
    return this.#machine.sibling;
  }

  get priority(): number {
    return this.#o.priority ?? 100;
  }

  /** Datagrams sent, taken, and dropped by reason. */
  get counters(): { sent: number; received: number; dropped: Map<DropReason, number> } {
    return { sent: this.#transport.sent, received: this.#transport.received, dropped: this.#transport.dropped };
  }

  get notifyHistory(): NotifyRunner['history'] {
    return this.#notify.history;
  }

  async start(): Promise<number> {
    const port = await this.#transport.bind();
    // Said at every start: a pair that anyone can steer must not pass unnoticed.
    if (this.#insecure) {
      this.#logger.warn(
        { pairPort: port },
        'the pair runs without a secret (--pair-insecure): its datagrams are signed with a key published in the source, so any host that can send to the pair port can make this AS active or standby; give both ASs --pair-secret-file (openssl rand -hex 32), or keep the pair port reachable only by the sibling',
      );
    }
    const asked = this.#transport.recvBufferAsked;
    const got = this.#transport.recvBufferSize;
    // At info: most kernels cap it (net.core.rmem_max) below what is asked, and an operator without
    // root cannot change that; the firewall rule is the remedy either way.
    if (got < asked) {
      this.#logger.info(
        { pairPort: port, askedBytes: asked, gotBytes: got },
        'the pair socket got a smaller receive buffer than asked (Linux caps it at net.core.rmem_max): a datagram flood at the pair port can then crowd out the sibling\'s adverts sooner; raise it (sysctl -w net.core.rmem_max=4194304) and keep the pair port reachable only by the sibling',
      );
    }
    this.#machine.start();
    return port;
  }

  designate(role: 'active' | 'standby'): void {
    this.#machine.designate(role);
  }

  /** Hands over (an active tells its sibling to take over now), then closes the socket. */
  async stop(handOver = true): Promise<void> {
    this.#machine.stop(handOver);
    // Let the hand-over datagrams leave before the socket closes.
    await new Promise((r) => setTimeout(r, 20));
    this.#transport.close();
  }
}

export { DROP_REASONS };

function validPort(p: unknown, min: number): boolean {
  return Number.isInteger(p) && (p as number) >= min && (p as number) <= 65_535;
}
