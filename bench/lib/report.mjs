/** Turns the measurements into per-scenario summaries, the targets, and the printed tables. */
import { RAW_KEYS } from './scenarios.mjs';
import { median, summary } from './stats.mjs';

export const TARGETS = {
  ratioToRaw: { 1: 0.55, 16: 0.72, 128: 1.0 },
  overMoleculer: { 16: 2, 128: 2 },
  asCpuUs: { 16: 4, 128: 1.5 },
  /** via AS's ratio to best raw ÷ haproxy's ratio to best raw, same round. */
  overHaproxy: { 16: 1.0, 128: 1.0 },
  /** AS CPU per request ÷ haproxy's CPU per request, same round. */
  asCpuOverHaproxy: { 16: 1.5, 128: 1.5 },
  directorOverDirect: { 1: 0.95, 16: 0.95, 128: 0.95 },
  schedulerGrowth: 2,
};

/**
 * The best raw req/s of one round, in-flight count and body size: the max over the raw scenarios
 * (raw, raw-best) that ran and succeeded there. Every ratio to raw is taken against it.
 */
export function bestRaw(measurements, round, inflight, body) {
  let best = null;
  for (const m of measurements) {
    if (!RAW_KEYS.includes(m.scenario) || !m.ok || m.round !== round || m.inflight !== inflight || m.body !== body || !(m.rps > 0)) continue;
    if (!best || m.rps > best.rps) best = m;
  }
  return best;
}

/** The in-flight count a measurement is compared at: its own, or the round's largest for fixed-load scenarios. */
const refInflight = (m) => m.refInflight ?? m.inflight;

/** One row per body size, scenario and in-flight count: medians and ranges over rounds, ratios to the best raw of the same round. */
export function summarize(measurements, scenarios, inflights, bodies) {
  const rows = [];
  for (const body of bodies) {
    for (const s of scenarios) {
      for (const inflight of s.fixedInflight ? [s.fixedInflight] : inflights) {
        const ms = measurements.filter((m) => m.scenario === s.key && m.inflight === inflight && m.body === body);
        const ok = ms.filter((m) => m.ok);
        const roles = [...new Set(ok.flatMap((m) => Object.keys(m.cpuUsPerReq)))];
        const cpu = {};
        for (const r of roles) cpu[r] = median(ok.map((m) => m.cpuUsPerReq[r]));
        const ratios = ok.map((m) => {
          const best = bestRaw(measurements, m.round, refInflight(m), body);
          return best ? m.rps / best.rps : null;
        });
        rows.push({
          scenario: s.key,
          name: s.name,
          body,
          inflight,
          inflightLabel: s.inflightLabel ?? String(inflight),
          ratioAt: s.fixedInflight ? Math.max(...inflights) : inflight,
          rounds: ok.length,
          failed: ms.length - ok.length,
          rps: summary(ok.map((m) => m.rps)),
          p50Us: median(ok.map((m) => m.p50)),
          p99Us: median(ok.map((m) => m.p99)),
          p999Us: median(ok.map((m) => m.p999)),
          cpuUsPerReq: cpu,
          cpuUsPerReqTotal: median(ok.map((m) => Object.values(m.cpuUsPerReq).reduce((a, b) => a + b, 0))),
          syscallsPerReq: Object.fromEntries(
            roles
              .filter((r) => ok.some((m) => m.syscallsPerReq?.[r]))
              .map((r) => [r, { writes: median(ok.map((m) => m.syscallsPerReq?.[r]?.writes)), reads: median(ok.map((m) => m.syscallsPerReq?.[r]?.reads)) }]),
          ),
          otherCores: median(ok.map((m) => m.otherCores)),
          ratioToRaw: summary(ratios),
          errors: ms.reduce((n, m) => n + (m.errors ?? 0), 0),
        });
      }
    }
  }
  return rows;
}

/** Which raw scenario was the best, counted over every round, in-flight count and body size. */
export function bestRawWins(measurements) {
  const wins = {};
  const seen = new Set();
  for (const m of measurements) {
    if (!RAW_KEYS.includes(m.scenario)) continue;
    const k = `${m.round}/${m.inflight}/${m.body}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const best = bestRaw(measurements, m.round, m.inflight, m.body);
    if (best) wins[best.scenario] = (wins[best.scenario] ?? 0) + 1;
  }
  return wins;
}

/**
 * Per-round ratio f(a) / f(b) of two scenarios' measurements in the same round and body size;
 * `a` at inflightA, `b` at inflightB (the same unless a fixed-load scenario is compared).
 */
function paired(measurements, { a, b, inflightA, inflightB = inflightA, body, f = (m) => m.rps }) {
  const out = [];
  for (const m of measurements) {
    if (m.scenario !== a || m.inflight !== inflightA || m.body !== body || !m.ok) continue;
    const o = measurements.find((x) => x.scenario === b && x.inflight === inflightB && x.body === body && x.round === m.round && x.ok);
    const den = o ? f(o) : null;
    const num = f(m);
    if (Number.isFinite(num) && Number.isFinite(den) && den > 0) out.push(num / den);
  }
  return summary(out);
}

export function evaluateTargets(rows, measurements, scheduler, ran, body) {
  const row = (key, inflight) => rows.find((r) => r.scenario === key && r.inflight === inflight && r.body === body);
  const targets = [];
  const add = (name, goal, measured, pass, note) => targets.push({ name, goal, measured, pass, note });
  const notRun = ran.has('sb-as') ? undefined : 'via AS not run';
  // CPU per request of the hop in the middle: the AS's, or the proxy's.
  const hopCpu = (m) => (m.scenario === 'sb-as' ? m.cpuUsPerReq.AS : m.cpuUsPerReq.proxy);
  const ratioOf = (key, inflight) => row(key, inflight)?.ratioToRaw?.median;
  const ratios = (inflight, keys) =>
    keys
      .filter((k) => ratioOf(k, inflight) !== undefined)
      .map((k) => `${k} ${ratioOf(k, inflight).toFixed(2)}`)
      .join(', ');
  for (const [inflight, goal] of Object.entries(TARGETS.ratioToRaw)) {
    const v = row('sb-as', Number(inflight))?.ratioToRaw;
    const here = ratios(Number(inflight), ['haproxy', 'nginx', 'node-relay']);
    add(`via AS / best raw req/s at ${inflight} in flight`, `≥ ${goal.toFixed(2)}`, v, v ? v.median >= goal : null, notRun ?? (here ? `here: ${here}` : undefined));
  }
  for (const [inflight, goal] of Object.entries(TARGETS.overHaproxy)) {
    const n = Number(inflight);
    // (via AS / best raw) ÷ (haproxy / best raw) in the same round: the best raw cancels out.
    const v = ran.has('haproxy') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'haproxy', inflightA: n, body }) : null;
    const note = !ran.has('haproxy') ? 'haproxy not run' : (notRun ?? `ratios to best raw: ${ratios(n, ['sb-as', 'haproxy']) || '-'}`);
    add(`via AS ratio / haproxy ratio at ${inflight} in flight`, `≥ ${goal.toFixed(2)}`, v, v ? v.median >= goal : null, note);
  }
  for (const [inflight, goal] of Object.entries(TARGETS.overMoleculer)) {
    const v = ran.has('moleculer') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'moleculer', inflightA: Number(inflight), body }) : null;
    add(`via AS / moleculer req/s at ${inflight} in flight`, `≥ ${goal.toFixed(1)}×`, v, v ? v.median >= goal : null, ran.has('moleculer') ? notRun : 'moleculer not run');
  }
  for (const [inflight, goal] of Object.entries(TARGETS.asCpuUs)) {
    const ok = measurements.filter((m) => m.scenario === 'sb-as' && m.inflight === Number(inflight) && m.body === body && m.ok);
    const v = ok.length ? summary(ok.map((m) => m.cpuUsPerReq.AS)) : null;
    add(`AS CPU per request at ${inflight} in flight`, `≤ ${goal} µs`, v, v ? v.median <= goal : null, notRun);
  }
  for (const [inflight, goal] of Object.entries(TARGETS.asCpuOverHaproxy)) {
    const n = Number(inflight);
    const v = ran.has('haproxy') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'haproxy', inflightA: n, body, f: hopCpu }) : null;
    const as = row('sb-as', n)?.cpuUsPerReq?.AS;
    const hap = row('haproxy', n)?.cpuUsPerReq?.proxy;
    const note = !ran.has('haproxy') ? 'haproxy not run' : (notRun ?? `µs per request: AS ${cpuFix(as)}, haproxy ${cpuFix(hap)}`);
    add(`AS CPU / haproxy CPU per request at ${inflight}`, `≤ ${goal.toFixed(2)}`, v, v ? v.median <= goal : null, note);
  }
  // The same ends on both sides (SDK client, FS): the AS hop against the haproxy hop alone, without
  // the raw pair's cheaper client and server counted in haproxy's favour.
  const sameEndsNote = !ran.has('sb-haproxy') ? 'sb-haproxy not run' : notRun;
  for (const inflight of Object.keys(TARGETS.overHaproxy)) {
    const n = Number(inflight);
    const v = ran.has('sb-haproxy') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'sb-haproxy', inflightA: n, body }) : null;
    add(`via AS / SDK via haproxy req/s at ${inflight}`, 'measured', v, null, sameEndsNote ?? `same SDK client and FS; ratios to best raw: ${ratios(n, ['sb-as', 'sb-haproxy']) || '-'}`);
  }
  for (const inflight of Object.keys(TARGETS.asCpuOverHaproxy)) {
    const n = Number(inflight);
    const v = ran.has('sb-haproxy') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'sb-haproxy', inflightA: n, body, f: hopCpu }) : null;
    const hap = row('sb-haproxy', n)?.cpuUsPerReq?.proxy;
    add(`AS CPU / haproxy CPU, same ends, at ${inflight}`, 'measured', v, null, sameEndsNote ?? `µs per request: AS ${cpuFix(row('sb-as', n)?.cpuUsPerReq?.AS)}, haproxy ${cpuFix(hap)}`);
  }
  if (ran.has('director')) {
    for (const [inflight, goal] of Object.entries(TARGETS.directorOverDirect)) {
      const v = ran.has('sb-direct') ? paired(measurements, { a: 'director', b: 'sb-direct', inflightA: Number(inflight), body }) : null;
      add(`director / switchboard direct req/s at ${inflight}`, `≥ ${goal.toFixed(2)}`, v, v ? v.median >= goal : null, ran.has('sb-direct') ? 'SDK in direct mode against the SDK on an FS port' : 'sb-direct not run');
    }
  }
  if (ran.has('raw') && ran.has('raw-best')) {
    for (const inflight of Object.keys(TARGETS.ratioToRaw)) {
      const v = paired(measurements, { a: 'raw-best', b: 'raw', inflightA: Number(inflight), body });
      add(`raw best-effort / raw req/s at ${inflight}`, 'measured', v, null, 'batches in 8 KiB pieces against one write per batch');
    }
  }
  if (ran.has('nginx') && ran.has('haproxy')) {
    for (const inflight of Object.keys(TARGETS.overHaproxy)) {
      const v = paired(measurements, { a: 'nginx', b: 'haproxy', inflightA: Number(inflight), body });
      add(`nginx stream / haproxy tcp req/s at ${inflight}`, 'measured', v, null, 'the two proxies, one worker each');
    }
  }
  // The cheapest Node proxy: what one hop in Node costs before any framing or routing.
  const relayNote = !ran.has('node-relay') ? 'node relay not run' : notRun;
  for (const inflight of Object.keys(TARGETS.overHaproxy)) {
    const n = Number(inflight);
    const v = ran.has('node-relay') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'node-relay', inflightA: n, body }) : null;
    add(`via AS ratio / node relay ratio at ${inflight}`, 'measured', v, null, relayNote ?? `ratios to best raw: ${ratios(n, ['sb-as', 'node-relay']) || '-'}`);
  }
  for (const inflight of Object.keys(TARGETS.asCpuOverHaproxy)) {
    const n = Number(inflight);
    const v = ran.has('node-relay') && ran.has('sb-as') ? paired(measurements, { a: 'sb-as', b: 'node-relay', inflightA: n, body, f: hopCpu }) : null;
    const as = row('sb-as', n)?.cpuUsPerReq?.AS;
    const relay = row('node-relay', n)?.cpuUsPerReq?.proxy;
    add(`AS CPU / node relay CPU per request at ${inflight}`, 'measured', v, null, relayNote ?? `µs per request: AS ${cpuFix(as)}, node relay ${cpuFix(relay)}`);
  }
  // The floor for any Node proxy against haproxy: a Node hop that does no work at all, in the same
  // round, on the same raw ends (the haproxy targets above cannot be met by less than this).
  const floorNote = !ran.has('node-relay') ? 'node relay not run' : !ran.has('haproxy') ? 'haproxy not run' : undefined;
  for (const inflight of Object.keys(TARGETS.overHaproxy)) {
    const n = Number(inflight);
    const v = floorNote ? null : paired(measurements, { a: 'node-relay', b: 'haproxy', inflightA: n, body });
    add(`node relay ratio / haproxy ratio at ${inflight}`, 'measured', v, null, floorNote ?? 'a Node hop with no framing or routing, same ends');
  }
  for (const inflight of Object.keys(TARGETS.asCpuOverHaproxy)) {
    const n = Number(inflight);
    const v = floorNote ? null : paired(measurements, { a: 'node-relay', b: 'haproxy', inflightA: n, body, f: hopCpu });
    add(`node relay CPU / haproxy CPU per request at ${inflight}`, 'measured', v, null, floorNote ?? `µs per request: node relay ${cpuFix(row('node-relay', n)?.cpuUsPerReq?.proxy)}, haproxy ${cpuFix(row('haproxy', n)?.cpuUsPerReq?.proxy)}`);
  }
  if (ran.has('sb-as-many') && ran.has('sb-as')) {
    const many = measurements.find((m) => m.scenario === 'sb-as-many');
    if (many) {
      const v = paired(measurements, { a: 'sb-as-many', b: 'sb-as', inflightA: many.inflight, inflightB: many.refInflight, body });
      add(`32 clients × 8 / one client at ${many.refInflight}, via AS`, 'measured', v, null, '32 connections and 3 FSs against one connection and one FS');
    }
  }
  if (ran.has('sb-direct-contract') && ran.has('sb-direct')) {
    const v = paired(measurements, { a: 'sb-direct-contract', b: 'sb-direct', inflightA: 16, body });
    add('contract (zod check) / plain key req/s at 16', '≥ 0.90', v, v ? v.median >= 0.9 : null, 'validation costs at most 10%');
  }
  if (ran.has('sb-as-tls') && ran.has('sb-as')) {
    for (const inflight of Object.keys(TARGETS.ratioToRaw)) {
      const v = paired(measurements, { a: 'sb-as-tls', b: 'sb-as', inflightA: Number(inflight), body });
      add(`TLS + secret / plain via AS req/s at ${inflight}`, 'measured', v, null, 'the cost of TLS on every hop');
    }
  }
  if (ran.has('sb-http') && ran.has('sb-as')) {
    for (const inflight of Object.keys(TARGETS.ratioToRaw)) {
      const v = paired(measurements, { a: 'sb-http', b: 'sb-as', inflightA: Number(inflight), body });
      add(`HTTP ingress / binary client port req/s at ${inflight}`, 'measured', v, null, 'JSON over HTTP/1.1 against the binary protocol, both via AS');
    }
  }
  const g = scheduler?.growth?.['least-loaded pick'];
  add('scheduler pick, 1,000 vs 3 candidates', `≤ ${TARGETS.schedulerGrowth}×`, g ? { median: g } : null, g ? g <= TARGETS.schedulerGrowth : null);
  const lookup = scheduler?.growth?.['AS lookup: candidates() + least-loaded pick'];
  if (lookup) add('AS lookup + pick, 1,000 vs 3 candidates', `≤ ${TARGETS.schedulerGrowth}×`, { median: lookup }, lookup <= TARGETS.schedulerGrowth);
  const hashed = scheduler?.growth?.['consistent-hash pick'];
  if (hashed) add('consistent-hash pick, 1,000 vs 3 candidates', `≤ ${TARGETS.schedulerGrowth}×`, { median: hashed }, hashed <= TARGETS.schedulerGrowth, 'flat: one hash and one table read');
  return targets;
}

const int = (n) => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const fix = (n, d = 2) => (n === null || n === undefined ? '-' : n.toFixed(d));
const cpuFix = (n) => (n === null || n === undefined ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1));

/** A body size for people: 100, 4 KiB, 64 KiB. */
export const bodyLabel = (b) => (b >= 1024 && b % 1024 === 0 ? `${b / 1024} KiB` : `${b} B`);

/** A plain-text table; columns listed in `left` are left-aligned, the others right-aligned. */
function table(header, lines, left = [0]) {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

export function formatRows(rows) {
  const header = ['scenario', 'body', 'in flight', 'req/s median', '(min–max)', 'p50 µs', 'p99 µs', 'CPU µs/req by process', 'ratio to best raw (min–max)', 'other load'];
  const lines = rows.map((r) => {
    const cpu = Object.entries(r.cpuUsPerReq)
      .map(([role, v]) => `${role} ${cpuFix(v)}`)
      .join(' · ');
    const against = r.ratioAt !== r.inflight ? ` vs ${r.ratioAt}` : '';
    const ratio = r.ratioToRaw ? `${fix(r.ratioToRaw.median)} (${fix(r.ratioToRaw.min)}–${fix(r.ratioToRaw.max)})${against}` : '-';
    return [
      r.name + (r.errors ? ` [${r.errors} errors]` : '') + (r.failed ? ` [${r.failed} failed]` : ''),
      bodyLabel(r.body),
      r.inflightLabel,
      int(r.rps?.median),
      r.rps ? `(${int(r.rps.min)}–${int(r.rps.max)})` : '',
      int(r.p50Us),
      int(r.p99Us),
      cpu ? `${cpu} = ${cpuFix(r.cpuUsPerReqTotal)}` : '-',
      ratio,
      r.otherCores === null ? '-' : `${r.otherCores.toFixed(2)} cores`,
    ];
  });
  return table(header, lines, [0, 7, 8]);
}

export function formatTargets(targets, body) {
  const lines = targets.map((t) => {
    const m = t.measured;
    const d = t.name.includes('CPU') ? 2 : 3;
    const measured = !m ? 'n/a' : m.min !== undefined && m.n > 1 ? `${fix(m.median, d)} (${fix(m.min, d)}–${fix(m.max, d)})` : fix(m.median, d);
    const verdict = t.goal === 'measured' ? (m ? 'info' : 'n/a') : t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL';
    return [t.name, t.goal, measured, verdict, t.note ?? ''];
  });
  const header = [`target (body ${bodyLabel(body)}; ratios per round, to the best raw)`, 'goal', 'measured median (min–max)', 'result', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

export function formatScheduler(s) {
  if (!s) return 'scheduler micro-benchmark: not run';
  if (s.error) return `scheduler micro-benchmark failed: ${s.error}`;
  const header = ['scheduler (ns per op, median)', ...s.sizes.map((n) => `${n.toLocaleString('en-US')} FSs`), `${s.sizes.at(-1)}/${s.sizes[0]}`];
  const lines = Object.entries(s.nsPerOp).map(([name, bySize]) => [name, ...s.sizes.map((n) => fix(bySize[n], 1)), `${fix(s.growth[name])}×`]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  let out = [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
  if (s.managerError) out += `\n(AS lookup not measured: ${s.managerError})`;
  return out;
}

/** System calls per request for each Node process: how well each batches its socket reads and writes. */
export function formatSyscalls(rows) {
  const header = ['syscalls per request (writes / reads)', 'body', 'in flight', 'by process'];
  const lines = rows
    .filter((r) => Object.keys(r.syscallsPerReq ?? {}).length > 0)
    .map((r) => [
      r.name,
      bodyLabel(r.body),
      r.inflightLabel,
      Object.entries(r.syscallsPerReq)
        .map(([role, v]) => `${role} ${fix(v.writes)} / ${fix(v.reads)}`)
        .join(' · '),
    ]);
  return table(header, lines, [0, 3]);
}
