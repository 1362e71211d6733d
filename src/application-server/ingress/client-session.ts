import type { FrameConnection } from '../../protocol/index.js';
import type { ReplyTarget } from '../registry/upstream-connection.js';

/** The AS's record of one client connection. */
export class ClientSession implements ReplyTarget {
  inflight = 0;
  /** What this session's reading waits on: its own full socket, or a backed-up FS connection. */
  readonly #pausedOn = new Set<object>();

  constructor(
    readonly conn: FrameConnection,
    readonly maxInflight: number,
    /** When the client last sent a request the dispatcher took (epoch ms): idle connections are closed. */
    public lastRequestAt: number,
  ) {}

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
