/**
 * Request durations by service key, for the `switchboard_request_duration_seconds` histogram.
 * A fixed set of buckets counted in place: recording is an array increment on the answer path,
 * where a labelled observe() per request would cost more than the rest of the AS's work on it.
 */

/** Bucket upper bounds in ms (Prometheus's `le`, in seconds, is each ÷ 1000); one more bucket takes the rest. */
export const LATENCY_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/** Services with series of their own; the others are summed under `_other`, so /metrics stays bounded. */
export const MAX_LATENCY_SERVICES = 256;
/** The service key under which services beyond MAX_LATENCY_SERVICES are summed. */
export const OTHER_SERVICES = -1;

const BUCKETS = LATENCY_BOUNDS_MS.length + 1;

export class LatencyRecorder {
  /** Per service key: the count in each bucket (not cumulative), then the sum of durations in ms. */
  readonly #byKey = new Map<number, Float64Array>();

  /** One request of `serviceKey` took `ms` (whole milliseconds by the AS's clock). */
  record(serviceKey: number, ms: number): void {
    let counts = this.#byKey.get(serviceKey);
    if (counts === undefined) counts = this.#slot(serviceKey);
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]) i++;
    counts[i]++;
    counts[BUCKETS] += ms;
  }

  /** Each service's bucket counts (not cumulative) and its sum in ms, in key order, `_other` last. */
  *entries(): Generator<[serviceKey: number, counts: Float64Array]> {
    const keys = [...this.#byKey.keys()].sort((a, b) => (a === OTHER_SERVICES ? 1 : b === OTHER_SERVICES ? -1 : a - b));
    for (const k of keys) yield [k, this.#byKey.get(k) as Float64Array];
  }

  #slot(serviceKey: number): Float64Array {
    // Once MAX_LATENCY_SERVICES keys have their own, `_other` makes the map larger still: no key gets one again.
    const key = this.#byKey.size < MAX_LATENCY_SERVICES ? serviceKey : OTHER_SERVICES;
    let counts = this.#byKey.get(key);
    if (counts === undefined) this.#byKey.set(key, (counts = new Float64Array(BUCKETS + 1)));
    return counts;
  }
}
