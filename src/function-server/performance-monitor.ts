import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { LoadReport } from '../protocol/index.js';

export interface LoadSampler {
  sample(inflight: number): LoadReport;
}

/**
 * Samples this process's load: CPU (fraction of one core over the last period), event-loop
 * utilisation, and memory. Each sample covers the time since the one before.
 */
export class PerformanceMonitor implements LoadSampler {
  #lastCpu = process.cpuUsage();
  #lastAt = performance.now();
  #lastElu: EventLoopUtilization = performance.eventLoopUtilization();
  readonly #heapLimit = getHeapStatistics().heap_size_limit;

  sample(inflight: number): LoadReport {
    const now = performance.now();
    const cpu = process.cpuUsage(this.#lastCpu);
    const elapsedUs = Math.max(1, (now - this.#lastAt) * 1000);
    const elu = performance.eventLoopUtilization(this.#lastElu);
    this.#lastCpu = process.cpuUsage();
    this.#lastAt = now;
    this.#lastElu = performance.eventLoopUtilization();
    const mem = process.memoryUsage();
    return {
      cpu: Math.min(64, (cpu.user + cpu.system) / elapsedUs),
      elu: Math.min(1, Math.max(0, elu.utilization)),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      memory: Math.min(1, mem.heapUsed / this.#heapLimit),
      inflight,
    };
  }
}
