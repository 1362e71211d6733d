import type { FrameConnection } from '../protocol/index.js';
import type { ReplyTarget } from './upstream-connection.js';

/** The AS's record of one client connection. */
export class ClientSession implements ReplyTarget {
  inflight = 0;
  constructor(
    readonly conn: FrameConnection,
    readonly maxInflight: number,
  ) {}

  get closed(): boolean {
    return this.conn.closed;
  }

  reply(frame: Buffer): void {
    this.conn.send(frame);
  }
}
