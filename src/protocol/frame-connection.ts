import type { Socket } from 'node:net';
import { encodeErrorResponse, encodeEventRequest, encodeEventResponse } from './codec.js';
import { BadRequestError, type SwitchboardError } from './errors.js';
import { EventKind } from './events.js';
import { FrameDeadline } from './frame-deadline.js';
import { FrameParser } from './frame-parser.js';
import { FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, OFFSET, requestIdOf } from './header.js';
import { KeepaliveManager } from './keepalive.js';
import { SlabWriter } from './slab-writer.js';
import { Status } from './status.js';
import { nodeTimers, type Timers } from './timers.js';

export type CloseReason =
  | 'local' // we closed it
  | 'remote' // the peer closed it
  | 'heartbeat' // nothing read for `deadAfterPeriods` heartbeat periods
  | 'read-timeout' // a frame began and stalled
  | 'write-stall' // the peer read nothing we wrote for `deadAfterPeriods` periods
  | 'output-limit' // more answers held for the peer than maxBufferedBytes
  | 'protocol' // the peer sent bytes that are not a valid frame, or broke a rule of its port
  | 'auth' // the peer did not prove who it is in time, or proved wrong
  | 'idle' // no meaningful request within the idle timeout
  | 'error'; // socket error

export const CLOSE_REASONS: readonly CloseReason[] = [
  'local',
  'remote',
  'heartbeat',
  'read-timeout',
  'write-stall',
  'output-limit',
  'protocol',
  'auth',
  'idle',
  'error',
];

/** What a connection does with what it reads. Swappable: a port that wants proof first starts with a gate. */
export interface FrameHandlers {
  /** Requests and responses (not events); none given means they are ignored. The buffer is only valid during the call. */
  onFrame?: (frame: Buffer, conn: FrameConnection) => void;
  /**
   * Instead of onFrame: requests and responses as (buffer, offset, length), sparing a view per
   * frame on the per-request paths. Valid only during the call.
   */
  onFrameAt?: (buf: Buffer, offset: number, length: number, conn: FrameConnection) => void;
  /** Event frames other than heartbeats. */
  onEvent?: (frame: Buffer, conn: FrameConnection) => void;
}

export interface FrameConnectionOptions extends FrameHandlers {
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
   * Bytes this side may hold for a peer that does not read them (queued here and in the socket);
   * beyond, the connection is closed with 'output-limit'. 0 or absent: no limit.
   */
  maxBufferedBytes?: number;
  /** See SlabWriter: write long batches in pieces so the next hop starts early. */
  earlyFlushBytes?: number;
  /** See SlabWriter: write once per event-loop turn (a connection many others feed). */
  perTurn?: boolean;
  timers?: Timers;
}

export const DEFAULT_HEARTBEAT_MS = 2000;

/**
 * A socket that speaks frames: parses what it reads, batches what it writes (SlabWriter), answers
 * heartbeats itself and enforces the connection's rules (KeepaliveManager, FrameDeadline, the
 * output limit). It wires those parts together and owns nothing else.
 */
export class FrameConnection {
  readonly socket: Socket;
  readonly #parser: FrameParser;
  readonly #writer: SlabWriter;
  readonly #keepalive: KeepaliveManager;
  readonly #deadline: FrameDeadline;
  readonly #opts: FrameConnectionOptions;
  #handlers: FrameHandlers;
  readonly #maxBuffered: number;
  readonly #timers: Timers;
  #blocked = false;
  #closed = false;
  #frames = 0;
  /** Bytes handed to socket.write() so far. */
  #queuedTotal = 0;
  #closeReason: CloseReason | undefined;
  #barrierId = 0;
  readonly #barriers = new Map<number, (answered: boolean) => void>();
  /** The largest body the peer said it accepts (DESCRIBE); senders check answers against it. */
  peerMaxBodyBytes = Number.POSITIVE_INFINITY;
  /** Free slot for the owner (the AS pool, the FS) to hang its per-connection state on. */
  owner: unknown;
  /** host:port of the peer, kept: a destroyed socket forgets it, and close logs must still name it. */
  #remote: string | undefined;

  constructor(socket: Socket, opts: FrameConnectionOptions) {
    this.socket = socket;
    this.#opts = opts;
    this.#handlers = { onFrame: opts.onFrame, onFrameAt: opts.onFrameAt, onEvent: opts.onEvent };
    this.#maxBuffered = opts.maxBufferedBytes ?? 0;
    this.#timers = opts.timers ?? nodeTimers;
    this.#parser = new FrameParser({
      maxBodyBytes: opts.maxBodyBytes,
      onFrame: (frame) => this.#dispatch(frame),
      onFrameAt: (buf, off, len) => this.#dispatchAt(buf, off, len),
      onError: (err) => this.#protocolError(err),
    });
    this.#writer = new SlabWriter({
      write: (data) => this.#write(data),
      writev: (pieces) => this.#writev(pieces),
      earlyFlushBytes: opts.earlyFlushBytes,
      perTurn: opts.perTurn,
    });
    const period = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#keepalive = new KeepaliveManager({
      periodMs: period,
      deadAfterPeriods: opts.deadAfterPeriods ?? 3,
      ping: () => this.ping(),
      flushed: () => this.#queuedTotal - this.socket.writableLength,
      expire: (reason, message) => this.destroy(reason, new Error(message)),
      timers: this.#timers,
    });
    this.#deadline = new FrameDeadline(opts.readTimeoutMs ?? 0, (message) => this.destroy('read-timeout', new Error(message)), this.#timers);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, Math.max(1000, period));
    this.#noteRemote();
    if (this.#remote === undefined) socket.once('connect', () => this.#noteRemote());
    socket.on('data', (chunk: Buffer) => this.ingest(chunk));
    socket.on('drain', () => {
      this.#blocked = false;
      this.#keepalive.blocked = false;
      this.#opts.onDrain?.(this);
    });
    socket.on('error', (err) => this.#finish('error', err));
    socket.on('close', () => this.#finish(this.#closeReason ?? 'remote', undefined));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Why the connection closed; undefined while it is open. */
  get closeReason(): CloseReason | undefined {
    return this.#closed ? this.#closeReason : undefined;
  }

  /** Replaces what the connection does with frames from now on (a gate lifted after proof, say). */
  setHandlers(h: FrameHandlers): void {
    this.#handlers = { onFrame: h.onFrame, onFrameAt: h.onFrameAt, onEvent: h.onEvent };
  }

  /**
   * Bytes read from the socket (the 'data' listener). Chunks are never reused, so a handler may
   * keep views of its frame: a proxy forwards them without copying.
   */
  ingest(chunk: Buffer): void {
    this.#keepalive.readSeen();
    const framesBefore = this.#frames;
    this.#parser.push(chunk);
    this.#deadline.afterRead(this.#parser.buffered > 0, this.#frames !== framesBefore);
  }

  /** True while the socket's write buffer is over its high-water mark: stop feeding it. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Bytes held for the peer: queued here and in the socket's buffer. */
  get bufferedBytes(): number {
    return this.#writer.pendingBytes + this.socket.writableLength;
  }

  /** The peer's host:port, or "unknown" for a dialled socket that never connected. */
  get remote(): string {
    this.#noteRemote();
    return this.#remote ?? 'unknown';
  }

  #noteRemote(): void {
    if (this.#remote === undefined && this.socket.remoteAddress !== undefined) this.#remote = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  /** Queues a whole frame; frames queued in one tick go out in one socket write. */
  send(frame: Buffer): void {
    if (!this.#closed) this.#writer.send(frame);
  }

  /**
   * Queues the frame at buf[off, off + len) by reference, without a copy (a proxy's path): buf must
   * stay unchanged until written, as a chunk read from a socket does. Only while the peer keeps up:
   * once the socket holds unsent bytes, frames are copied, because a view would keep its whole read
   * chunk (other peers' frames too) alive for as long as this peer is slow. A frame that fills its
   * buffer (one assembled across reads) keeps nothing else alive and is never copied.
   */
  forward(buf: Buffer, off: number, len: number): void {
    if (this.#closed) return;
    if (this.socket.writableLength > 0 && len !== buf.length) this.#writer.sendFrom(buf, off, len);
    else this.#writer.forward(buf, off, len);
  }

  /** Writes a header and an encoded body straight into the outgoing batch (the per-request paths). */
  sendFrame(flags: number, status: number, requestId: number, serviceKey: number, poolType: number, budgetMs: number, body: Buffer, extension?: Buffer): void {
    if (!this.#closed) this.#writer.sendFrame(flags, status, requestId, serviceKey, poolType, budgetMs, body, extension);
  }

  /** Changes the first early piece's size (see earlyFlushBytes), say once the peer is known. */
  setEarlyFlushBytes(n: number): void {
    this.#writer.earlyFlushBytes = n;
  }

  /** Writes what is queued now rather than at the end of the tick. */
  flush(): void {
    if (!this.#closed) this.#writer.flush();
  }

  /** Stops reading. Silence while paused is ours, not the peer's: it does not count toward "dead". */
  pauseReading(): void {
    this.#keepalive.paused = true;
    this.#deadline.paused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    this.#keepalive.paused = false;
    this.#deadline.paused = false;
    if (!this.#closed) this.socket.resume();
  }

  /** Sends a heartbeat ping now. */
  ping(): void {
    this.send(encodeEventRequest(EventKind.HEARTBEAT, 0, undefined, true));
  }

  /**
   * Resolves true when the peer has answered a ping sent now. TCP keeps order on one connection, so
   * by then every frame the peer wrote before it saw the ping has been read here. False on timeout
   * or when the connection closes first.
   */
  barrier(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    const id = (this.#barrierId = (this.#barrierId % 0x7fffffff) + 1);
    return new Promise((resolve) => {
      const t = this.#timers.setTimeout(() => {
        this.#barriers.delete(id);
        resolve(false);
      }, timeoutMs);
      this.#barriers.set(id, (answered) => {
        this.#timers.clearTimeout(t);
        resolve(answered);
      });
      this.send(encodeEventRequest(EventKind.HEARTBEAT, id, undefined, true));
    });
  }

  /** Closes after writing what is queued. */
  close(reason: CloseReason = 'local', err?: Error): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.#writer.flush();
    this.socket.end();
    // A peer that never reads would hold the socket half-open forever.
    this.#timers.setTimeout(() => this.socket.destroy(), 1000);
    this.#finish(reason, err);
  }

  /** Closes at once, dropping anything queued. */
  destroy(reason: CloseReason = 'local', err?: Error): void {
    if (this.#closed) return;
    this.#closeReason = reason;
    this.socket.destroy();
    this.#finish(reason, err);
  }

  /** Tells the peer why with a connection-level error (request id 0), then closes this connection only. */
  refuse(err: SwitchboardError, reason: CloseReason = 'protocol'): void {
    this.send(encodeErrorResponse(0, err.status, err.code, err.message));
    this.close(reason, err);
  }

  /** Answers a two-way event this side does not take, so the sender is not left waiting. */
  rejectEvent(frame: Buffer): void {
    const kind = frame[OFFSET.eventKind];
    this.send(
      encodeEventResponse(kind, requestIdOf(frame), { code: 'SB_ERR_BAD_REQUEST', message: `event kind ${kind} is not accepted on this connection` }, Status.BAD_REQUEST),
    );
  }

  #write(data: Buffer): boolean {
    this.#keepalive.wroteSeen();
    this.#queuedTotal += data.length;
    return this.#wrote(this.socket.write(data));
  }

  /** Corked, the socket hands all the pieces to one writev call when it uncorks. */
  #writev(pieces: Buffer[]): boolean {
    this.#keepalive.wroteSeen();
    const socket = this.socket;
    let ok = true;
    socket.cork();
    for (const p of pieces) {
      this.#queuedTotal += p.length;
      ok = socket.write(p);
    }
    socket.uncork();
    return this.#wrote(ok);
  }

  #wrote(ok: boolean): boolean {
    if (!ok) {
      this.#blocked = true;
      this.#keepalive.blocked = true;
      if (this.#maxBuffered > 0 && this.socket.writableLength > this.#maxBuffered) {
        this.destroy('output-limit', new Error(`more than ${this.#maxBuffered} bytes are held for a peer that does not read them`));
      }
    }
    return ok;
  }

  #dispatchAt(buf: Buffer, off: number, len: number): void {
    this.#frames++;
    if ((buf[off + OFFSET.flags] & FLAG_EVENT) === 0) {
      const h = this.#handlers;
      if (h.onFrameAt !== undefined) h.onFrameAt(buf, off, len, this);
      else h.onFrame?.(buf.subarray(off, off + len), this);
    } else {
      this.#event(buf.subarray(off, off + len));
    }
  }

  #dispatch(frame: Buffer): void {
    this.#dispatchAt(frame, 0, frame.length);
  }

  #event(frame: Buffer): void {
    const flags = frame[OFFSET.flags];
    if (frame[OFFSET.eventKind] === EventKind.HEARTBEAT) {
      if ((flags & FLAG_REQUEST) !== 0) this.send(encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(frame), undefined));
      else if (this.#barriers.size > 0) {
        const done = this.#barriers.get(requestIdOf(frame));
        if (done) {
          this.#barriers.delete(requestIdOf(frame));
          done(true);
        }
      }
      return;
    }
    const twoWayRequest = (flags & (FLAG_REQUEST | FLAG_TWO_WAY)) === (FLAG_REQUEST | FLAG_TWO_WAY);
    if (twoWayRequest && requestIdOf(frame) === 0) {
      // As for requests (docs/protocol.md 2.2): an answer numbered 0 would read as a connection-level error.
      this.refuse(new BadRequestError(`a two-way event (kind ${frame[OFFSET.eventKind]}) with request id 0; only heartbeat pings may use 0, number the others from 1`));
      return;
    }
    const onEvent = this.#handlers.onEvent;
    if (onEvent) onEvent(frame, this);
    else if (twoWayRequest) this.rejectEvent(frame);
  }

  #protocolError(err: SwitchboardError): void {
    this.refuse(err, 'protocol');
  }

  #finish(reason: CloseReason, err: Error | undefined): void {
    this.#keepalive.stop();
    this.#deadline.stop();
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#writer.close();
    for (const done of this.#barriers.values()) done(false);
    this.#barriers.clear();
    this.#opts.onClose?.(reason, err, this);
  }
}
