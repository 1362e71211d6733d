import type { Socket } from 'node:net';
import { encodeErrorResponse, encodeEventRequest, encodeEventResponse, encodeFrameRaw } from './codec.js';
import type { SwitchboardError } from './errors.js';
import { EventKind } from './events.js';
import { FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_SIZE, OFFSET, requestIdOf, writeHeaderFields } from './header.js';
import { Status } from './status.js';
import { FrameParser } from './frame-parser.js';

export type CloseReason =
  | 'local' // we closed it
  | 'remote' // the peer closed it
  | 'heartbeat' // nothing read for `deadAfterPeriods` heartbeat periods
  | 'read-timeout' // a frame began and stalled
  | 'write-stall' // the peer read nothing we wrote for `deadAfterPeriods` periods
  | 'protocol' // the peer sent bytes that are not a valid frame
  | 'error'; // socket error

export interface FrameConnectionOptions {
  /** Requests and responses (not events); none given means they are ignored. The buffer is only valid during the call. */
  onFrame?: (frame: Buffer, conn: FrameConnection) => void;
  /**
   * Instead of onFrame: requests and responses as (buffer, offset, length), sparing a view per
   * frame on the per-request paths. Valid only during the call.
   */
  onFrameAt?: (buf: Buffer, offset: number, length: number, conn: FrameConnection) => void;
  /** Event frames other than heartbeats. */
  onEvent?: (frame: Buffer, conn: FrameConnection) => void;
  onClose?: (reason: CloseReason, err: Error | undefined, conn: FrameConnection) => void;
  /** The socket's write buffer emptied after being full. */
  onDrain?: (conn: FrameConnection) => void;
  /** Heartbeat period in ms; 0 turns heartbeats off. */
  heartbeatMs?: number;
  /** Periods with nothing read after which the connection is dead (Dubbo's rule: 3). */
  deadAfterPeriods?: number;
  /** A frame begun but not finished for this long closes the connection; 0 turns it off. */
  readTimeoutMs?: number;
  maxBodyBytes?: number;
  /**
   * Write the first this-many bytes queued in a tick at once rather than at the end of the tick
   * (later pieces of the same tick at 8 times that); 0 waits for the tick. An end of a chain that
   * produces a long batch (a client, an FS) lets the next hop start on the first part while it makes
   * the rest, so the hops work in parallel on two cores.
   */
  earlyFlushBytes?: number;
  /** The socket was made with `onread`; its owner passes what it reads to ingest(). */
  externalReads?: boolean;
}

export const DEFAULT_HEARTBEAT_MS = 2000;
const SLAB_BYTES = 64 * 1024;
/** Frames above this are queued by reference rather than copied into the slab. */
const BIG_FRAME_BYTES = 16 * 1024;
/** After the first early piece of a tick, wait for this many times earlyFlushBytes. */
const LATER_PIECE_FACTOR = 8;

/**
 * A socket that speaks frames: parses what it reads, batches what it writes (one socket write per
 * tick), answers heartbeats itself and declares the peer dead when it has been silent too long.
 */
export class FrameConnection {
  readonly socket: Socket;
  readonly #parser: FrameParser;
  readonly #opts: FrameConnectionOptions;
  /** Frames are copied into a slab and leave as one view of it per flush: no allocation per batch. */
  #slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  #slabStart = 0;
  #slabPos = 0;
  /** Views ready to write, in order, when a flush holds more than the current slab (big frames, a full slab). */
  #queue: Buffer[] = [];
  #flushScheduled = false;
  readonly #earlyFlush: number;
  #earlyPieces = 0;
  #blocked = false;
  #paused = false;
  #closed = false;
  #readSeen = false;
  #wroteSeen = false;
  #silentPeriods = 0;
  #blockedPeriods = 0;
  #frames = 0;
  #partialSince = 0;
  #timer: NodeJS.Timeout | undefined;
  #readTimer: NodeJS.Timeout | undefined;
  #closeReason: CloseReason | undefined;
  #barrierId = 0;
  readonly #barriers = new Map<number, () => void>();
  /** The largest body the peer said it accepts (DESCRIBE); senders check answers against it. */
  peerMaxBodyBytes = Number.POSITIVE_INFINITY;
  /** Free slot for the owner (the AS pool, the FS) to hang its per-connection state on. */
  owner: unknown;

  constructor(socket: Socket, opts: FrameConnectionOptions) {
    this.socket = socket;
    this.#opts = opts;
    this.#earlyFlush = opts.earlyFlushBytes ?? 0;
    this.#parser = new FrameParser({
      maxBodyBytes: opts.maxBodyBytes,
      onFrame: (frame) => this.#dispatch(frame),
      onFrameAt: opts.onFrameAt === undefined ? undefined : (buf, off, len) => this.#dispatchAt(buf, off, len),
      onError: (err) => this.#protocolError(err),
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, Math.max(1000, opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS));
    if (!opts.externalReads) socket.on('data', (chunk: Buffer) => this.ingest(chunk));
    socket.on('drain', () => {
      this.#blocked = false;
      this.#opts.onDrain?.(this);
    });
    socket.on('error', (err) => this.#finish('error', err));
    socket.on('close', () => this.#finish(this.#closeReason ?? 'remote', undefined));
    const period = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    if (period > 0) {
      this.#timer = setInterval(() => this.#tick(period), period);
      this.#timer.unref();
    }
    const readTimeout = opts.readTimeoutMs ?? 0;
    if (readTimeout > 0) {
      this.#readTimer = setInterval(() => this.#checkStall(readTimeout), Math.max(10, Math.floor(readTimeout / 4)));
      this.#readTimer.unref();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Bytes read from the socket. Called by the 'data' listener, or by the owner of a socket created
   * with `onread` (a reused read buffer): frames are handled before this returns, and nothing of
   * `chunk` is kept afterwards except what the parser copies.
   */
  ingest(chunk: Buffer): void {
    this.#readSeen = true;
    const framesBefore = this.#frames;
    this.#parser.push(chunk);
    // Time a partial frame from when it began, so bytes trickled in one by one cannot hold it open.
    if (this.#parser.buffered === 0) this.#partialSince = 0;
    else if (this.#partialSince === 0 || this.#frames !== framesBefore) this.#partialSince = Date.now();
  }

  /** True while the socket's write buffer is over its high-water mark: stop feeding it. */
  get blocked(): boolean {
    return this.#blocked;
  }

  get remote(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  /** Queues a whole frame; frames queued in one tick go out in one socket write. */
  send(frame: Buffer): void {
    if (this.#closed) return;
    if (frame.length <= BIG_FRAME_BYTES) {
      this.sendFrom(frame, 0, frame.length);
      return;
    }
    this.#takeSlab();
    this.#queue.push(frame); // big: queued by reference, the caller owns it
    this.#queued();
  }

  /** After bytes were queued: write now if enough are waiting, else once at the end of the tick. */
  #queued(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(endOfTick, this);
    }
    if (this.#earlyFlush > 0) {
      // The first piece of a tick is small so the next hop starts at once; later ones are larger,
      // so a long batch costs few writes.
      const limit = this.#earlyPieces === 0 ? this.#earlyFlush : this.#earlyFlush * LATER_PIECE_FACTOR;
      if (this.#slabPos - this.#slabStart >= limit) {
        this.#earlyPieces++;
        this.flush();
      }
    }
  }

  /** The tick is over: write the rest and start counting pieces afresh. */
  endTick(): void {
    this.#flushScheduled = false;
    this.#earlyPieces = 0;
    this.flush();
  }

  /** Copies a frame that lies at buf[off, off + len) into the outgoing slab; the caller may reuse buf. */
  sendFrom(buf: Buffer, off: number, len: number): void {
    if (this.#closed) return;
    if (len > BIG_FRAME_BYTES) {
      this.send(Buffer.from(buf.subarray(off, off + len))); // a copy: buf may be a reused read buffer
      return;
    }
    this.#reserve(len);
    buf.copy(this.#slab, this.#slabPos, off, off + len);
    this.#slabPos += len;
    this.#queued();
  }

  /**
   * Writes a header and an encoded body straight into the outgoing slab: one copy and no frame
   * allocation, for the per-request paths (client calls, FS answers).
   */
  sendFrame(flags: number, status: number, requestId: number, serviceKey: number, poolType: number, budgetMs: number, body: Buffer): void {
    if (this.#closed) return;
    const n = HEADER_SIZE + body.length;
    if (n > BIG_FRAME_BYTES) {
      this.send(encodeFrameRaw({ flags, status, requestId, serviceKey, poolType, budgetMs }, body));
      return;
    }
    this.#reserve(n);
    const o = this.#slabPos;
    writeHeaderFields(this.#slab, o, flags, status, 0, poolType, requestId, serviceKey, budgetMs, body.length);
    body.copy(this.#slab, o + HEADER_SIZE);
    this.#slabPos = o + n;
    this.#queued();
  }

  #reserve(n: number): void {
    if (this.#slabPos + n <= this.#slab.length) return;
    this.#takeSlab();
    this.#slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.#slabStart = 0;
    this.#slabPos = 0;
  }

  /** Writes what is queued now rather than at the end of the tick. */
  flush(): void {
    if (this.#closed) return;
    let data: Buffer;
    if (this.#queue.length === 0) {
      if (this.#slabPos === this.#slabStart) return;
      // The socket may hold this view until it is written; the slab never writes over it again.
      data = this.#slab.subarray(this.#slabStart, this.#slabPos);
      this.#slabStart = this.#slabPos;
    } else {
      this.#takeSlab();
      const q = this.#queue;
      this.#queue = [];
      data = q.length === 1 ? q[0] : Buffer.concat(q);
    }
    this.#wroteSeen = true;
    if (!this.socket.write(data)) this.#blocked = true;
  }

  /** Moves the slab's unwritten bytes to the queue, keeping order with what follows. */
  #takeSlab(): void {
    if (this.#slabPos === this.#slabStart) return;
    this.#queue.push(this.#slab.subarray(this.#slabStart, this.#slabPos));
    this.#slabStart = this.#slabPos;
  }

  /** Stops reading. Silence while paused is ours, not the peer's: it does not count toward "dead". */
  pauseReading(): void {
    this.#paused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    this.#paused = false;
    if (!this.#closed) this.socket.resume();
  }

  /** Sends a heartbeat ping now. */
  ping(): void {
    this.send(encodeEventRequest(EventKind.HEARTBEAT, 0, undefined, true));
  }

  /**
   * Resolves when the peer has answered a ping sent now. TCP keeps order on one connection, so by
   * then every frame the peer wrote before it saw the ping has been read here. False on timeout or close.
   */
  barrier(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    const id = (this.#barrierId = (this.#barrierId % 0x7fffffff) + 1);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#barriers.delete(id);
        resolve(false);
      }, timeoutMs);
      t.unref();
      this.#barriers.set(id, () => {
        clearTimeout(t);
        resolve(true);
      });
      this.send(encodeEventRequest(EventKind.HEARTBEAT, id, undefined, true));
    });
  }

  /** Closes after writing what is queued. */
  close(reason: CloseReason = 'local', err?: Error): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.flush();
    this.socket.end();
    // A peer that never reads would hold the socket half-open forever.
    const t = setTimeout(() => this.socket.destroy(), 1000);
    t.unref();
    this.#finish(reason, err);
  }

  /** Closes at once, dropping anything queued. */
  destroy(reason: CloseReason = 'local', err?: Error): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.socket.destroy();
    this.#finish(reason, err);
  }

  #dispatchAt(buf: Buffer, off: number, len: number): void {
    if ((buf[off + OFFSET.flags] & FLAG_EVENT) === 0) {
      this.#frames++;
      (this.#opts.onFrameAt as NonNullable<FrameConnectionOptions['onFrameAt']>)(buf, off, len, this);
    } else {
      this.#dispatch(buf.subarray(off, off + len));
    }
  }

  #dispatch(frame: Buffer): void {
    this.#frames++;
    const flags = frame[OFFSET.flags];
    if ((flags & FLAG_EVENT) === 0) {
      this.#opts.onFrame?.(frame, this);
      return;
    }
    if (frame[OFFSET.eventKind] === EventKind.HEARTBEAT) {
      if ((flags & FLAG_REQUEST) !== 0) this.send(encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(frame), undefined));
      else if (this.#barriers.size > 0) {
        const done = this.#barriers.get(requestIdOf(frame));
        if (done) {
          this.#barriers.delete(requestIdOf(frame));
          done();
        }
      }
      return;
    }
    if (this.#opts.onEvent) this.#opts.onEvent(frame, this);
    else if ((flags & (FLAG_REQUEST | FLAG_TWO_WAY)) === (FLAG_REQUEST | FLAG_TWO_WAY)) this.rejectEvent(frame);
  }

  /** Answers a two-way event this side does not take, so the sender is not left waiting. */
  rejectEvent(frame: Buffer): void {
    const kind = frame[OFFSET.eventKind];
    this.send(
      encodeEventResponse(kind, requestIdOf(frame), { code: 'SB_ERR_BAD_REQUEST', message: `event kind ${kind} is not accepted on this connection` }, Status.BAD_REQUEST),
    );
  }

  /** Tells the peer why (request id 0, the error's status and code), then closes this connection only. */
  #protocolError(err: SwitchboardError): void {
    this.send(encodeErrorResponse(0, err.status, err.code, err.message));
    this.close('protocol', err);
  }

  #tick(period: number): void {
    if (this.#closed) return;
    if (this.#readSeen || this.#paused) {
      this.#silentPeriods = 0;
    } else {
      this.#silentPeriods++;
    }
    if (this.#silentPeriods >= (this.#opts.deadAfterPeriods ?? 3)) {
      this.destroy('heartbeat', new Error(`no bytes read for ${this.#silentPeriods} heartbeat periods of ${period} ms`));
      return;
    }
    // A peer that has not read what we wrote for as long as a silent one takes to be dead is gone too.
    this.#blockedPeriods = this.#blocked ? this.#blockedPeriods + 1 : 0;
    if (this.#blockedPeriods >= (this.#opts.deadAfterPeriods ?? 3)) {
      this.destroy('write-stall', new Error(`the peer has read nothing we wrote for ${this.#blockedPeriods} heartbeat periods of ${period} ms`));
      return;
    }
    if (!this.#readSeen || !this.#wroteSeen) this.ping();
    this.#readSeen = false;
    this.#wroteSeen = false;
  }

  #checkStall(readTimeout: number): void {
    if (this.#closed || this.#partialSince === 0 || this.#paused) return;
    if (Date.now() - this.#partialSince >= readTimeout) {
      this.destroy('read-timeout', new Error(`a frame was begun and not finished within ${readTimeout} ms`));
    }
  }

  #finish(reason: CloseReason, err: Error | undefined): void {
    clearInterval(this.#timer);
    clearInterval(this.#readTimer);
    this.#timer = undefined;
    this.#readTimer = undefined;
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#queue = [];
    this.#slabStart = this.#slabPos;
    for (const done of this.#barriers.values()) done();
    this.#barriers.clear();
    this.#opts.onClose?.(reason, err, this);
  }
}

function endOfTick(conn: FrameConnection): void {
  conn.endTick();
}
