import type { FrameConnection } from '../../protocol/index.js';
import type { ReplyTarget } from '../registry/upstream-connection.js';

/** Pause cause: the client has its byte budget's worth of requests in flight. */
const BYTES_IN_FLIGHT = { cause: 'bytes in flight' };

/** The AS's record of one client connection. */
export class ClientSession implements ReplyTarget {
  inflight = 0;
  /** Bytes of this client's requests still in flight (sent to FSs, not yet answered). */
  inflightBytes = 0;
  /** What this session's reading waits on: its own full socket, a backed-up FS connection, its byte budget. */
  readonly #pausedOn = new Set<object>();

  constructor(
    readonly conn: FrameConnection,
    readonly maxInflight: number,
    /** Request bytes this client may have in flight; beyond, its reading pauses until half is answered. */
    readonly maxInflightBytes: number,
    /** When the client last sent a request the dispatcher took (epoch ms): idle connections are closed. */
    public lastRequestAt: number,
  ) {}

  /** A request of `bytes` is taken: count it, and stop reading while the byte budget is spent. */
  admit(bytes: number): void {
    this.inflight++;
    this.inflightBytes += bytes;
    if (this.inflightBytes >= this.maxInflightBytes) this.pause(BYTES_IN_FLIGHT);
  }

  done(bytes: number): void {
    this.inflight--;
    this.inflightBytes -= bytes;
    // Half the budget answered before reading again, so the pause does not flap on every answer.
    if (this.inflightBytes < this.maxInflightBytes / 2 && this.#pausedOn.has(BYTES_IN_FLIGHT)) this.resume(BYTES_IN_FLIGHT);
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  get paused(): boolean {
    return this.#pausedOn.size > 0;
  }

  reply(frame: Buffer): void {
    this.conn.send(frame);
  }

  replyFrom(buf: Buffer, off: number, len: number): void {
    this.conn.sendFrom(buf, off, len);
  }

  /** Stops reading this client's requests until `cause` is lifted. */
  pause(cause: object): void {
    if (this.#pausedOn.size === 0) this.conn.pauseReading();
    this.#pausedOn.add(cause);
  }

  resume(cause: object): void {
    if (!this.#pausedOn.delete(cause)) return;
    if (this.#pausedOn.size === 0) this.conn.resumeReading();
  }
}
