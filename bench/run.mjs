#!/usr/bin/env node
/**
 * Switchboard benchmark: one client connection at 1, 16 and 128 requests in flight (sb-as-many:
 * 32 connections × 8, fixed), msgpack request bodies of ~100 bytes (or --bodies), against
 *   raw, raw-best        hand-written client and echo server, same header, no framework; raw writes
 *                        each batch at once, raw-best in 8 KiB pieces as the SDK does. The better of
 *                        the two in each round, in-flight count and body size is "best raw", the
 *                        reference of every ratio.
 *   sb-direct, sb-direct-contract, director   Client SDK → FunctionServer
 *   sb-as, sb-as-many, sb-http, sb-as-tls      ... → ApplicationServer → FunctionServer(s)
 *   node-relay           raw client → minimal Node TCP relay (socket.pipe both ways) → raw server
 *   haproxy, nginx       raw client → proxy (one thread / one worker) → raw server, when installed
 *   moleculer            two Moleculer 0.15 brokers, TCP transporter, broker.call
 * Scenarios alternate within each round; every figure is a median (and range) over rounds.
 * Plus a scheduler micro-benchmark. Prints tables, writes bench/results/latest.json.
 *
 *   npm run bench                 about 7 minutes
 *   npm run bench -- --quick      under 2 minutes
 *   options: --rounds N --duration-ms N --warmup-ms N --only raw,sb-as,... --inflight 1,16,128
 *            --bodies 100,4096,65536 --no-scheduler
 *            --profile-as (V8 CPU profile of the AS; perturbs its figures), --profile <child labels,...>
 *            (e.g. sb-client-as,sb-fs-via-as), --profile-interval-us N (sampling period, default 100),
 *            --verbose, --log-level warn
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Children } from './lib/children.mjs';
import { topFunctions } from './lib/cpuprofile.mjs';
import { machineTicks, procSyscalls } from './lib/proc-cpu.mjs';
import { DIST, RESULTS_DIR, ROOT } from './lib/paths.mjs';
import { DEFAULT_BODY_BYTES, encodedBytes } from './lib/payload.mjs';
import { bestRawWins, bodyLabel, evaluateTargets, formatRows, formatScheduler, formatSyscalls, formatTargets, summarize } from './lib/report.mjs';
import { RAW_KEYS, SCENARIOS } from './lib/scenarios.mjs';
import { median } from './lib/stats.mjs';

function parseArgs(argv) {
  const o = {
    quick: argv.includes('--quick'),
    verbose: argv.includes('--verbose'),

    scheduler: !argv.includes('--no-scheduler'),
  };
  const val = (name) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name, dflt) => {
    const v = val(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got "${v}"`);
    return n;
  };
  o.rounds = num('rounds', o.quick ? 2 : 4);
  o.durationMs = num('duration-ms', o.quick ? 700 : 2000);
  o.warmupMs = num('warmup-ms', o.quick ? 200 : 500);
  o.firstWarmupMs = o.quick ? 500 : 1500;
  o.inflights = (val('inflight') ?? '1,16,128').split(',').map(Number);
  if (o.inflights.some((n) => !Number.isInteger(n) || n < 1 || n > 4000)) throw new Error('--inflight wants integers from 1 to 4000');
  o.bodies = (val('bodies') ?? String(DEFAULT_BODY_BYTES)).split(',').map(Number);
  if (o.bodies.some((n) => !Number.isInteger(n) || n < 1 || n > 1024 * 1024)) throw new Error('--bodies wants sizes in bytes from 1 to 1048576, e.g. 100,4096,65536');
  o.only = val('only')?.split(',');
  o.logLevel = val('log-level') ?? 'warn';
  o.profile = [...(argv.includes('--profile-as') ? ['sb-as'] : []), ...(val('profile')?.split(',') ?? [])];
  o.profileDir = join(RESULTS_DIR, 'profiles');
  // V8 samples every 1000 µs by default: too coarse for a 2 s window of a process at half a core.
  o.profileIntervalUs = num('profile-interval-us', 100);
  if (o.only) {
    const known = SCENARIOS.map((s) => s.key);
    const bad = o.only.filter((k) => !known.includes(k));
    if (bad.length) throw new Error(`unknown scenario ${bad.join(', ')}; known: ${known.join(', ')}`);
  }
  return o;
}

const out = (s = '') => process.stdout.write(`${s}\n`);
const largestOf = (o) => Math.max(...o.inflights);

function gitDescribe() {
  try {
    const opts = { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] };
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], opts).trim() ? '+dirty-src' : '';
    return rev + dirty;
  } catch {
    return undefined;
  }
}

/**
 * One measurement: the client runs warm-up + window; at the window's two marks the runner reads
 * each server process's CPU time, every Node process's read/write system calls, and the whole
 * machine's busy time (to tell how much other work shared the cores).
 */
async function measure(s, inflight, bodyBytes, o, warmupMs, durationMs) {
  const { client, servers } = s.handles;
  const id = client.nextId();
  const bound = warmupMs + durationMs + 15_000;
  const all = [{ role: 'client', child: client }, ...servers];
  // A role is one process or several counted together (sb-as-many's three FSs).
  const procs = (x) => x.children ?? [x.child];
  const sum = (list) => list.reduce((a, b) => a + b, 0);
  const ioOf = (x) => {
    const nodes = procs(x).filter((c) => c.ipc);
    if (nodes.length === 0) return null;
    const each = nodes.map((c) => procSyscalls(c.pid));
    return { reads: sum(each.map((e) => e.reads)), writes: sum(each.map((e) => e.writes)) };
  };
  const sample = () => {
    const machine = machineTicks();
    const io = all.map(ioOf);
    return Promise.all(servers.map((x) => Promise.all(procs(x).map((c) => c.cpuUs())).then(sum))).then((cpu) => ({ machine, io, cpu }));
  };
  const atStart = client.waitFor('window-start', { id, timeoutMs: bound }).then(sample);
  const atEnd = client.waitFor('window-end', { id, timeoutMs: bound }).then(sample);
  atStart.catch(() => undefined);
  atEnd.catch(() => undefined);
  const r = await client.request({ type: 'run', inflight, bodyBytes, warmupMs, durationMs }, bound, id);
  const [a, b] = await Promise.all([atStart, atEnd]);
  const per = (x) => (r.count > 0 && Number.isFinite(x) ? x / r.count : null);
  const cpuUsPerReq = { client: per(r.clientCpuUs) };
  servers.forEach((x, i) => {
    cpuUsPerReq[x.role] = per(b.cpu[i] - a.cpu[i]);
  });
  const syscallsPerReq = {};
  all.forEach((x, i) => {
    if (a.io[i] && b.io[i]) syscallsPerReq[x.role] = { writes: per(b.io[i].writes - a.io[i].writes), reads: per(b.io[i].reads - a.io[i].reads) };
  });
  // Cores busy with anything but this scenario's processes during the window.
  let otherCores = null;
  if (a.machine && b.machine && r.elapsedMs > 0) {
    const busyCores = (b.machine.busy - a.machine.busy) / b.machine.ticksPerSecond / (r.elapsedMs / 1000);
    const oursCores = (r.clientCpuUs + servers.reduce((n, _, i) => n + (b.cpu[i] - a.cpu[i]), 0)) / 1000 / r.elapsedMs;
    otherCores = Math.max(0, busyCores - oursCores);
  }
  return { ...r, cpuUsPerReq, syscallsPerReq, otherCores, ok: r.count > 0 && r.errors === 0 };
}

const SCHEDULER_CASES = ['least-loaded pick', 'round-robin pick', 'AS lookup: candidates() + least-loaded pick', 'consistent-hash pick'];

/** The scheduler micro-benchmark, one fresh process per case. */
async function runScheduler(children, o) {
  const nsPerOp = {};
  const growth = {};
  const samples = {};
  let sizes;
  let managerError;
  for (const only of SCHEDULER_CASES) {
    const c = await children.fork('scheduler', 'scheduler-bench');
    try {
      const raw = await c.request({ type: 'run', only, repeats: o.quick ? 5 : 9, ops: o.quick ? 200_000 : 500_000 }, 120_000);
      sizes = raw.sizes;
      managerError ??= raw.managerError;
      for (const [name, bySize] of Object.entries(raw.samples)) {
        samples[name] = bySize;
        nsPerOp[name] = Object.fromEntries(Object.entries(bySize).map(([n, v]) => [n, median(v)]));
        growth[name] = nsPerOp[name][sizes.at(-1)] / nsPerOp[name][sizes[0]];
      }
    } finally {
      await children.stop([c]);
    }
  }
  return { sizes, nsPerOp, growth, samples, managerError };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(new URL('index.js', DIST))) throw new Error('dist/ is missing: run `npm run build` (npm run bench does it for you)');
  const children = new Children({ verbose: o.verbose, profile: o.profile, profileDir: o.profileDir, profileIntervalUs: o.profileIntervalUs });
  const started = Date.now();
  let interrupted = false;
  const onSignal = (sig) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping ${children.running.length} child processes by PID...\n`);
    void children.stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  // A run that goes on far past its plan is stuck: stop everything.
  const perRound = SCENARIOS.reduce((n, s) => n + (s.fixedInflight ? 1 : o.inflights.length), 0) * o.bodies.length;
  const planMs = o.firstWarmupMs * SCENARIOS.length + o.rounds * perRound * (o.warmupMs + o.durationMs + 300) + 60_000 * 2;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running after ${Math.round((2 * planMs) / 1000)} s, far past its plan; stopping\n`);
    void children.stopAll().finally(() => process.exit(1));
  }, 2 * planMs);
  watchdog.unref();

  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavg: os.loadavg(),
    git: gitDescribe(),
    mode: o.quick ? 'quick' : 'full',
    rounds: o.rounds,
    inflights: o.inflights,
    warmupMs: o.warmupMs,
    durationMs: o.durationMs,
    bodies: o.bodies,
    requestBody: o.bodies.map((b) => `${bodyLabel(b)}: msgpack map of ${encodedBytes(b)} bytes (msgpackr)`),
    versions: {},
  };
  const skipped = [];
  const active = [];
  const measurements = [];
  let scheduler;
  try {
    out(`Switchboard bench (${meta.mode}): ${o.rounds} rounds × in flight ${o.inflights.join('/')} × bodies ${o.bodies.map(bodyLabel).join('/')} × ${o.durationMs} ms windows after ${o.warmupMs} ms warm-up; node ${process.version}, ${meta.cpus} CPUs, load ${meta.loadavg.map((l) => l.toFixed(2)).join(' ')}`);
    out(`request bodies (msgpack): ${o.bodies.map((b) => `${bodyLabel(b)} → ${encodedBytes(b)} bytes`).join(', ')}`);
    if (o.profile.length) {
      mkdirSync(o.profileDir, { recursive: true });
      for (const label of o.profile) rmSync(join(o.profileDir, `${label}.cpuprofile`), { force: true });
      out(`profiling ${o.profile.join(', ')} with --cpu-prof (their figures are perturbed); profiles in ${o.profileDir}`);
    }
    for (const s of SCENARIOS) {
      if (o.only && !o.only.includes(s.key)) continue;
      const avail = s.available ? await s.available() : { ok: true };
      if (!avail.ok) {
        skipped.push({ scenario: s.key, reason: avail.reason });
        out(`skip ${s.name}: ${avail.reason}`);
        continue;
      }
      if (avail.version) meta.versions[s.key] = avail.version;
      try {
        s.handles = await s.start(children, o, avail);
        active.push(s);
        out(`ready ${s.name.padEnd(22)} ${s.describe}; pids ${[s.handles.client, ...s.handles.servers.flatMap((x) => x.children ?? [x.child])].map((c) => `${c.label}=${c.pid}`).join(' ')}`);
      } catch (err) {
        if (s.key === 'raw') throw err;
        // What it started before failing is not wanted any more.
        await children.stop(children.running.filter((c) => !active.some((a) => a.handles.client === c || a.handles.servers.some((x) => (x.children ?? [x.child]).includes(c)))));
        skipped.push({ scenario: s.key, reason: err.message });
        out(`skip ${s.name}: it did not start: ${err.message}`);
      }
    }
    if (!active.some((s) => RAW_KEYS.includes(s.key))) throw new Error(`a raw scenario (${RAW_KEYS.join(' or ')}) is the reference for every ratio; include one`);

    // One untimed run per scenario so that every process's JIT has settled before round 1.
    for (const s of active) {
      if (interrupted) return 'interrupted';
      await measure(s, s.fixedInflight ?? 16, o.bodies[0], o, o.firstWarmupMs, 100).catch(() => undefined);
    }

    // A fixed-load scenario (sb-as-many) runs once per round and body size, beside the largest count.
    const largest = Math.max(...o.inflights);
    for (let round = 1; round <= o.rounds; round++) {
      for (const [bi, body] of o.bodies.entries()) {
        for (const [ii, inflight] of o.inflights.entries()) {
          const shift = (round - 1 + ii + bi) % active.length;
          const last = ii === o.inflights.length - 1;
          const order = [...active.slice(shift), ...active.slice(0, shift)].filter((s) => !s.fixedInflight || last);
          const line = [];
          for (const s of order) {
            if (interrupted) return 'interrupted';
            const n = s.fixedInflight ?? inflight;
            let m;
            try {
              m = await measure(s, n, body, o, o.warmupMs, o.durationMs);
            } catch (err) {
              m = { ok: false, error: err.message, count: 0, rps: 0, cpuUsPerReq: {} };
              if (!interrupted) process.stderr.write(`  ${s.name} at ${s.inflightLabel ?? n} in flight, body ${bodyLabel(body)} failed: ${err.message}\n`);
            }
            measurements.push({ scenario: s.key, round, inflight: n, body, ...(s.fixedInflight ? { refInflight: largest } : {}), ...m });
            line.push(`${s.key}${s.fixedInflight ? ` (${s.inflightLabel})` : ''} ${m.ok ? Math.round(m.rps).toLocaleString('en-US') : `FAILED${m.firstError ? ` (${m.firstError})` : ''}`}`);
          }
          out(`round ${round}/${o.rounds} · ${bodyLabel(body).padStart(6)} · ${String(inflight).padStart(3)} in flight · ${line.join(' · ')}`);
        }
      }
    }
  } finally {
    await children.stopAll();
  }

  if (o.scheduler) {
    try {
      scheduler = await runScheduler(children, o);
    } catch (err) {
      scheduler = { error: err.message };
    }
  }

  const profiles = [];
  for (const label of children.profiled) {
    const file = join(o.profileDir, `${label}.cpuprofile`);
    if (existsSync(file)) profiles.push({ label, file, top: topFunctions(file, 20) });
    else profiles.push({ label, file, missing: true });
  }

  const rows = summarize(measurements, active, o.inflights, o.bodies);
  const ran = new Set(active.map((s) => s.key));
  // Targets are set for the ~100-byte body: that size when it ran, else the first one.
  const targetBody = o.bodies.includes(DEFAULT_BODY_BYTES) ? DEFAULT_BODY_BYTES : o.bodies[0];
  const targets = evaluateTargets(rows, measurements, scheduler, ran, targetBody);
  const wins = bestRawWins(measurements);
  meta.elapsedS = (Date.now() - started) / 1000;

  out('');
  out(`Results: median over ${o.rounds} rounds (min–max); CPU is µs of CPU time per request for each process;`);
  const fixed = active.filter((s) => s.fixedInflight).map((s) => `${s.inflightLabel}: against the round's ${largestOf(o)} in flight`);
  out(`ratio = req/s ÷ the best raw req/s (the higher of raw and raw-best) in the same round, in-flight count and body size${fixed.length ? ` (${fixed.join('; ')})` : ''}`);
  out(formatRows(rows));
  out(`best raw: ${Object.entries(wins).map(([k, n]) => `${k} in ${n}`).join(', ') || '-'} of ${Object.values(wins).reduce((a, b) => a + b, 0)} (round, in flight, body) cells`);
  for (const s of skipped) out(`(skipped ${s.scenario}: ${s.reason})`);
  const busy = median(rows.map((r) => r.otherCores));
  if (busy !== null && busy > 0.25) out(`note: other work kept ${busy.toFixed(2)} of ${meta.cpus} cores busy during a typical window; figures are less reliable than on a quiet machine`);
  out('');
  out(formatSyscalls(rows));
  out('');
  out(formatScheduler(scheduler));
  out('');
  out(formatTargets(targets, targetBody));
  for (const p of profiles) {
    out('');
    if (p.missing) {
      out(`${p.label}: no CPU profile was written (${p.file})`);
      continue;
    }
    out(`${p.label} CPU profile, whole run (self time, % of non-idle samples): ${p.file}`);
    for (const f of p.top) out(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.fn}`);
  }
  out('');
  mkdirSync(RESULTS_DIR, { recursive: true });
  const jsonPath = join(RESULTS_DIR, 'latest.json');
  writeFileSync(jsonPath, `${JSON.stringify({ meta, skipped, summary: rows, bestRaw: wins, targets, scheduler, profiles, measurements }, null, 2)}\n`);
  out(`wrote ${jsonPath} · ${meta.elapsedS.toFixed(0)} s`);
  clearTimeout(watchdog);
}

main().then(
  (outcome) => {
    // An interrupted run exits (130) from its signal handler once the children are stopped.
    if (outcome !== 'interrupted') process.exit(0);
  },
  (err) => {
    process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
