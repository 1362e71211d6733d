/**
 * Client-side measurement: a warm-up, then a fixed window in which every answered request's
 * latency goes into an HDR histogram. Bounded in time (the window) and in count (maxRequests).
 */
import hdr from 'hdr-histogram-js';
import { send } from './child-runtime.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const MAX_ERRORS = 1000;

export class Meter {
  hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  count = 0;
  issued = 0;
  errors = 0;
  firstError = undefined;
  inWindow = false;
  open = true;
  #id;
  #maxRequests;
  #t0 = 0;
  #cpu0 = 0;
  elapsedMs = 0;
  cpuUs = 0;

  constructor(id, maxRequests) {
    this.#id = id;
    this.#maxRequests = maxRequests;
  }

  /** May one more request be sent? False once the run is over or its count bound is reached. */
  allow() {
    if (!this.open) return false;
    if (++this.issued > this.#maxRequests) this.open = false;
    return this.open;
  }

  /** Latency of one answered request, in ms (performance.now() units). */
  record(ms) {
    if (!this.inWindow) return;
    this.count++;
    this.hist.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  error(err) {
    this.errors++;
    this.firstError ??= String(err?.message ?? err);
    if (this.errors >= MAX_ERRORS) this.open = false;
  }

  startWindow() {
    this.hist.reset();
    this.count = 0;
    const u = process.cpuUsage();
    this.#cpu0 = u.user + u.system;
    this.#t0 = performance.now();
    this.inWindow = true;
    send({ type: 'window-start', id: this.#id });
  }

  endWindow() {
    this.inWindow = false;
    this.elapsedMs = performance.now() - this.#t0;
    const u = process.cpuUsage();
    this.cpuUs = u.user + u.system - this.#cpu0;
    send({ type: 'window-end', id: this.#id });
  }

  result(drained) {
    const h = this.hist;
    const pct = (p) => (this.count > 0 ? h.getValueAtPercentile(p) : null);
    return {
      count: this.count,
      elapsedMs: this.elapsedMs,
      rps: this.elapsedMs > 0 ? (this.count * 1000) / this.elapsedMs : 0,
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
      p999: pct(99.9),
      max: this.count > 0 ? h.maxValue : null,
      mean: this.count > 0 ? h.mean : null,
      clientCpuUs: this.cpuUs,
      errors: this.errors,
      firstError: this.firstError,
      drained,
    };
  }
}

/**
 * One measurement: start the driver, warm up, measure for durationMs, stop it and wait (bounded)
 * for its requests in flight to be answered.
 * A driver is { start(meter), stop(): Promise<void> }.
 */
export async function timedRun(opts, driver) {
  const meter = new Meter(opts.id, opts.maxRequests ?? 20_000_000);
  driver.start(meter);
  await sleep(opts.warmupMs);
  meter.startWindow();
  await sleep(opts.durationMs);
  meter.endWindow();
  meter.open = false;
  let timer;
  const drained = await Promise.race([
    driver.stop().then(() => true),
    new Promise((r) => {
      timer = setTimeout(() => r(false), 5000);
    }),
  ]);
  clearTimeout(timer);
  return meter.result(drained);
}

/**
 * A closed loop over a promise-returning call: `inflight` workers, each sends its next request
 * when answered. call(seq, worker) is told which worker (0 to inflight - 1) calls.
 */
export function promiseDriver(inflight, call) {
  let workers = [];
  let seq = 0;
  const worker = async (meter, w) => {
    while (meter.allow()) {
      const t0 = performance.now();
      try {
        await call(++seq, w);
        meter.record(performance.now() - t0);
      } catch (err) {
        meter.error(err);
      }
    }
  };
  return {
    start(meter) {
      workers = Array.from({ length: inflight }, (_, w) => worker(meter, w));
    },
    stop() {
      return Promise.all(workers).then(() => undefined);
    },
  };
}
