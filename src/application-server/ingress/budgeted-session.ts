/** Pause cause: the client has its byte budget's worth of requests in flight. */
const BYTES_IN_FLIGHT = { cause: 'bytes in flight' };

/**
 * What every ingress session shares: requests and request bytes in flight, and the causes its
 * reading is paused on (its own full socket, a backed-up FS connection, its byte budget). The
 * subclass says how to stop and restart reading its transport.
 */
export abstract class BudgetedSession {
  inflight = 0;
  /** Bytes of this client's requests still in flight (sent to FSs, not yet answered). */
  inflightBytes = 0;
  readonly #pausedOn = new Set<object>();

  constructor(
    readonly maxInflight: number,
    /** Request bytes this client may have in flight; beyond, its reading pauses until half is answered. */
    readonly maxInflightBytes: number,
  ) {}

  protected abstract stopReading(): void;
  protected abstract startReading(): void;

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

  get paused(): boolean {
    return this.#pausedOn.size > 0;
  }

  /** Stops reading this client's requests until `cause` is lifted. */
  pause(cause: object): void {
    if (this.#pausedOn.size === 0) this.stopReading();
    this.#pausedOn.add(cause);
  }

  resume(cause: object): void {
    if (!this.#pausedOn.delete(cause)) return;
    if (this.#pausedOn.size === 0) this.startReading();
  }
}
