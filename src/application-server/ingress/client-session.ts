import type { FrameConnection, SwitchboardError } from '../../protocol/index.js';
import type { IngressSession } from '../routing/dispatcher.js';
import { BudgetedSession } from './budgeted-session.js';

let nextSession = 0;

/** The AS's record of one client connection on the binary client port. */
export class ClientSession extends BudgetedSession implements IngressSession {
  /** Names the client in director-mode tickets and in logs: unique in this process. */
  readonly id = `client-${++nextSession}`;

  constructor(
    readonly conn: FrameConnection,
    maxInflight: number,
    maxInflightBytes: number,
    /**
     * When the client last sent a request the dispatcher took, or got the FS's answer that left it
     * nothing in flight (epoch ms): idle connections are closed. A long call's end starts the idle
     * time; its start does not.
     */
    public lastRequestAt: number,
  ) {
    super(maxInflight, maxInflightBytes);
  }

  protected stopReading(): void {
    this.conn.pauseReading();
  }

  protected startReading(): void {
    this.conn.resumeReading();
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  /** Its socket is backed up: the client is not reading its answers. */
  get blocked(): boolean {
    return this.conn.blocked;
  }

  refuse(err: SwitchboardError): void {
    this.conn.refuse(err);
  }

  reply(frame: Buffer): void {
    this.conn.send(frame);
  }

  /** An FS's answer, relayed: the last one of what was in flight starts the idle time (a refusal does not). */
  replyFrom(buf: Buffer, off: number, len: number): void {
    this.conn.forward(buf, off, len);
    if (this.inflight === 0) this.lastRequestAt = Date.now();
  }
}
