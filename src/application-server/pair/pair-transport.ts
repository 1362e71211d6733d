import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ConfigError } from '../../protocol/index.js';
import { decodePairMessage, encodePairMessage, PairDropError, type DropReason, type PairMessage } from './pair-datagram.js';

export interface PairTransportOptions {
  /** Where this node listens for its sibling's datagrams. */
  host: string;
  port: number;
  /** The sibling's pair endpoint: datagrams from anywhere else are dropped. */
  peer: { host: string; port: number };
  secret: Buffer;
  /** A datagram whose sequence (the sender's clock) is further than this from ours is dropped. */
  maxClockSkewMs: number;
  onMessage: (m: PairMessage) => void;
  onDrop: (reason: DropReason, from: string, message: string) => void;
  now?: () => number;
  /** The socket's receive buffer to ask the kernel for (default PAIR_RECV_BUFFER_BYTES). */
  recvBufferBytes?: number;
}

/**
 * What the pair socket asks for as its receive buffer: 4 MiB. Datagrams from strangers are dropped
 * only once read, so a flood at the port fills the kernel's queue first; a deep queue lets the
 * sibling's adverts through bursts that the default (about 200 KiB on Linux) would overflow.
 */
export const PAIR_RECV_BUFFER_BYTES = 4 * 1024 * 1024;

/** Every drop reason, for counters that start at zero. */
export const DROP_REASONS: readonly DropReason[] = ['short', 'frame-head', 'version', 'tag', 'malformed', 'replay', 'clock', 'stranger', 'self'];

/**
 * The pair's UDP socket: signs what it sends; drops (and counts) what does not come from the
 * configured sibling, fails the tag, repeats or precedes a sequence already seen, or carries a clock
 * too far from ours. Only what survives reaches the state machine.
 *
 * Sequences must grow across the sibling's restarts too, not per node id: a new incarnation stamps
 * later than the old one did, so a recording of an earlier incarnation (another node id, an older
 * stamp) is a replay, not a new sibling.
 */
export class PairTransport {
  readonly #o: PairTransportOptions;
  readonly #socket: Socket;
  readonly #now: () => number;
  readonly #nodeId: string;
  /** The newest sequence taken from the sibling, whichever incarnation (node id) sent it. */
  #newestSeq = 0n;
  #newestFrom = '';
  #seq = 0n;
  /** The sibling's address as datagrams show it (its host name resolved once, at bind). */
  #peerAddress: string;
  /** The receive buffer asked for; `recvBufferSize` is what the kernel gave (Linux caps it at net.core.rmem_max). */
  readonly recvBufferAsked: number;
  sent = 0;
  received = 0;
  readonly dropped = new Map<DropReason, number>(DROP_REASONS.map((r) => [r, 0]));

  constructor(nodeId: string, opts: PairTransportOptions) {
    this.#o = opts;
    this.#nodeId = nodeId;
    this.#now = opts.now ?? Date.now;
    this.#peerAddress = opts.peer.host;
    const family = isIP(opts.host) === 6 ? 'udp6' : 'udp4';
    this.recvBufferAsked = opts.recvBufferBytes ?? PAIR_RECV_BUFFER_BYTES;
    this.#socket = createSocket({ type: family, recvBufferSize: this.recvBufferAsked });
    this.#socket.on('message', (b, rinfo) => this.#receive(b, `${rinfo.address}:${rinfo.port}`, rinfo.address, rinfo.port));
    this.#socket.on('error', (err) => this.#o.onDrop('malformed', 'socket', err.message));
  }

  async bind(): Promise<number> {
    if (isIP(this.#o.peer.host) === 0) {
      try {
        this.#peerAddress = (await lookup(this.#o.peer.host)).address;
      } catch (err) {
        throw new ConfigError(`cannot resolve the pair peer ${this.#o.peer.host}: ${(err as Error).message}`, { cause: err });
      }
    }
    return new Promise((resolve, reject) => {
      const fail = (err: Error & { code?: string }): void => reject(new ConfigError(`cannot bind the pair port ${this.#o.host}:${this.#o.port}: ${err.code ?? err.message}; pick another --pair-port`, { cause: err }));
      this.#socket.once('error', fail);
      this.#socket.bind(this.#o.port, this.#o.host, () => {
        this.#socket.off('error', fail);
        this.#socket.unref();
        resolve(this.#socket.address().port);
      });
    });
  }

  /**
   * The receive buffer the kernel gave, read back once bound. Linux reports twice what it accepted
   * (half is for its own bookkeeping), so asking 4 MiB reads back 8 MiB when net.core.rmem_max allows it.
   */
  get recvBufferSize(): number {
    return this.#socket.getRecvBufferSize();
  }

  send(m: Omit<PairMessage, 'seq'>): void {
    // The sequence is our clock in µs, kept strictly increasing across calls in one millisecond.
    const t = BigInt(this.#now()) * 1000n;
    this.#seq = t > this.#seq ? t : this.#seq + 1n;
    const b = encodePairMessage({ ...m, seq: this.#seq }, this.#o.secret);
    this.sent++;
    this.#socket.send(b, this.#o.peer.port, this.#o.peer.host);
  }

  close(): void {
    try {
      this.#socket.close();
    } catch {
      /* closed already */
    }
  }

  #receive(b: Buffer, from: string, address: string, port: number): void {
    try {
      if (port !== this.#o.peer.port || !sameHost(address, this.#peerAddress)) throw new PairDropError('stranger', `datagram from ${from}, which is not the configured sibling`);
      const m = decodePairMessage(b, this.#o.secret);
      if (m.nodeId === this.#nodeId) throw new PairDropError('self', 'a datagram carrying our own node id');
      if (m.seq <= this.#newestSeq) {
        const why = m.nodeId === this.#newestFrom ? '' : ` from node ${this.#newestFrom}: a recording of an earlier incarnation, or a sibling whose clock went back`;
        throw new PairDropError('replay', `sequence ${m.seq} is not after ${this.#newestSeq}, the newest heard${why}`);
      }
      const skew = Math.abs(Number(m.seq / 1000n) - this.#now());
      if (skew > this.#o.maxClockSkewMs) throw new PairDropError('clock', `the sender's clock is ${skew} ms from ours (more than ${this.#o.maxClockSkewMs})`);
      this.#newestSeq = m.seq;
      this.#newestFrom = m.nodeId;
      this.received++;
      this.#o.onMessage(m);
    } catch (err) {
      if (!(err instanceof PairDropError)) throw err;
      this.dropped.set(err.reason, (this.dropped.get(err.reason) ?? 0) + 1);
      this.#o.onDrop(err.reason, from, err.message);
    }
  }
}

function sameHost(address: string, expected: string): boolean {
  return (address.startsWith('::ffff:') ? address.slice(7) : address) === expected;
}
