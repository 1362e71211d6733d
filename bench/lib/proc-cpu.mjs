/** What /proc tells about our processes and the machine: CPU time, system calls, machine load. */
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * Sums /proc/<pid>/task/<tid>/schedstat (ns on CPU, exact, per live thread); falls back to
 * utime+stime from /proc/<pid>/stat (clock ticks) where schedstat is missing.
 */
export function procCpuUs(pid) {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1000;
  } catch {
    /* fall back */
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** Live descendants of a process (children, grandchildren, ...), from each process's ppid in /proc/<pid>/stat. */
export function procDescendants(pid) {
  const parentOf = new Map();
  let entries;
  try {
    entries = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  for (const n of entries) {
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      parentOf.set(Number(n), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone meanwhile */
    }
  }
  const found = [];
  const wanted = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [p, parent] of parentOf) {
      if (wanted.has(parent) && !wanted.has(p)) {
        wanted.add(p);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/** CPU time of a process and its live descendants (an nginx master and its workers), in µs. */
export function procTreeCpuUs(pid) {
  return [pid, ...procDescendants(pid)].reduce((n, p) => {
    const us = procCpuUs(p);
    return Number.isFinite(us) ? n + us : n;
  }, 0);
}

/** Read and write system calls made so far by a process (all its threads), from /proc/<pid>/io. */
export function procSyscalls(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const get = (k) => Number(/^(?:\w+): (\d+)$/m.exec(text.slice(text.indexOf(`${k}:`)))?.[1]);
    return { reads: get('syscr'), writes: get('syscw') };
  } catch {
    return { reads: NaN, writes: NaN };
  }
}

/** Busy and total CPU time of the whole machine so far, in clock ticks, from /proc/stat. */
export function machineTicks() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait, ticksPerSecond: TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}
