/** Turns the measurements into per-scenario summaries, the targets, and the printed table. */
import { median, summary } from './stats.mjs';

export const TARGETS = {
  ratioToRaw: { 1: 0.55, 16: 0.72, 128: 1.0 },
  overMoleculer: { 16: 2, 128: 2 },
  asCpuUs: { 16: 4, 128: 1.5 },
  schedulerGrowth: 2,
};

/** One row per scenario and in-flight count: medians and ranges over rounds, ratios to raw in the same round. */
export function summarize(measurements, scenarios, inflights) {
  const at = (key, inflight, round) => measurements.find((m) => m.scenario === key && m.inflight === inflight && m.round === round && m.ok);
  const rows = [];
  for (const s of scenarios) {
    for (const inflight of inflights) {
      const ms = measurements.filter((m) => m.scenario === s.key && m.inflight === inflight);
      const ok = ms.filter((m) => m.ok);
      const roles = [...new Set(ok.flatMap((m) => Object.keys(m.cpuUsPerReq)))];
      const cpu = {};
      for (const r of roles) cpu[r] = median(ok.map((m) => m.cpuUsPerReq[r]));
      const ratios = ok.map((m) => {
        const raw = at('raw', inflight, m.round);
        return raw && raw.rps > 0 ? m.rps / raw.rps : null;
      });
      rows.push({
        scenario: s.key,
        name: s.name,
        inflight,
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
  return rows;
}

/** Per-round ratio of one scenario's req/s to another's at the same in-flight count. */
function pairedRatio(measurements, a, b, inflight) {
  const out = [];
  for (const m of measurements) {
    if (m.scenario !== a || m.inflight !== inflight || !m.ok) continue;
    const o = measurements.find((x) => x.scenario === b && x.inflight === inflight && x.round === m.round && x.ok);
    if (o && o.rps > 0) out.push(m.rps / o.rps);
  }
  return summary(out);
}

export function evaluateTargets(rows, measurements, scheduler, ran) {
  const row = (key, inflight) => rows.find((r) => r.scenario === key && r.inflight === inflight);
  const targets = [];
  const add = (name, goal, measured, pass, note) => targets.push({ name, goal, measured, pass, note });
  const notRun = ran.has('sb-as') ? undefined : 'via AS not run';
  for (const [inflight, goal] of Object.entries(TARGETS.ratioToRaw)) {
    const r = row('sb-as', Number(inflight));
    const v = r?.ratioToRaw;
    const hap = row('haproxy', Number(inflight))?.ratioToRaw;
    add(`via AS / raw req/s at ${inflight} in flight`, `≥ ${goal.toFixed(2)}`, v, v ? v.median >= goal : null, hap ? `haproxy here: ${hap.median.toFixed(2)}` : notRun);
  }
  for (const [inflight, goal] of Object.entries(TARGETS.overMoleculer)) {
    const v = ran.has('moleculer') && ran.has('sb-as') ? pairedRatio(measurements, 'sb-as', 'moleculer', Number(inflight)) : null;
    add(`via AS / moleculer req/s at ${inflight} in flight`, `≥ ${goal.toFixed(1)}×`, v, v ? v.median >= goal : null, ran.has('moleculer') ? notRun : 'moleculer not run');
  }
  for (const [inflight, goal] of Object.entries(TARGETS.asCpuUs)) {
    const r = row('sb-as', Number(inflight));
    const ok = r?.rounds ? measurements.filter((m) => m.scenario === 'sb-as' && m.inflight === Number(inflight) && m.ok) : [];
    const v = ok.length ? summary(ok.map((m) => m.cpuUsPerReq.AS)) : null;
    add(`AS CPU per request at ${inflight} in flight`, `≤ ${goal} µs`, v, v ? v.median <= goal : null, notRun);
  }
  if (ran.has('sb-direct-contract') && ran.has('sb-direct')) {
    const v = pairedRatio(measurements, 'sb-direct-contract', 'sb-direct', 16);
    add('contract (zod check) / plain key req/s at 16', '≥ 0.90', v, v ? v.median >= 0.9 : null, 'validation costs at most 10%');
  }
  if (ran.has('sb-as-tls') && ran.has('sb-as')) {
    for (const inflight of Object.keys(TARGETS.ratioToRaw)) {
      const v = pairedRatio(measurements, 'sb-as-tls', 'sb-as', Number(inflight));
      add(`TLS + secret / plain via AS req/s at ${inflight}`, 'measured', v, null, 'the cost of TLS on every hop');
    }
  }
  if (ran.has('sb-http') && ran.has('sb-as')) {
    for (const inflight of Object.keys(TARGETS.ratioToRaw)) {
      const v = pairedRatio(measurements, 'sb-http', 'sb-as', Number(inflight));
      add(`HTTP ingress / binary client port req/s at ${inflight}`, 'measured', v, null, 'JSON over HTTP/1.1 against the binary protocol, both via AS');
    }
  }
  const g = scheduler?.growth?.['least-loaded pick'];
  add('scheduler pick, 1,000 vs 3 candidates', `≤ ${TARGETS.schedulerGrowth}×`, g ? { median: g } : null, g ? g <= TARGETS.schedulerGrowth : null);
  const lookup = scheduler?.growth?.['AS lookup: candidates() + least-loaded pick'];
  if (lookup) add('AS lookup + pick, 1,000 vs 3 candidates', `≤ ${TARGETS.schedulerGrowth}×`, { median: lookup }, lookup <= TARGETS.schedulerGrowth);
  return targets;
}

const int = (n) => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const fix = (n, d = 2) => (n === null || n === undefined ? '-' : n.toFixed(d));
const cpuFix = (n) => (n === null || n === undefined ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1));

/** A plain-text table; columns listed in `left` are left-aligned, the others right-aligned. */
function table(header, lines, left = [0]) {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

export function formatRows(rows) {
  const header = ['scenario', 'in flight', 'req/s median', '(min–max)', 'p50 µs', 'p99 µs', 'CPU µs/req by process', 'ratio to raw (min–max)', 'other load'];
  const lines = rows.map((r) => {
    const cpu = Object.entries(r.cpuUsPerReq)
      .map(([role, v]) => `${role} ${cpuFix(v)}`)
      .join(' · ');
    const ratio = r.ratioToRaw ? `${fix(r.ratioToRaw.median)} (${fix(r.ratioToRaw.min)}–${fix(r.ratioToRaw.max)})` : '-';
    return [
      r.name + (r.errors ? ` [${r.errors} errors]` : '') + (r.failed ? ` [${r.failed} failed]` : ''),
      String(r.inflight),
      int(r.rps?.median),
      r.rps ? `(${int(r.rps.min)}–${int(r.rps.max)})` : '',
      int(r.p50Us),
      int(r.p99Us),
      cpu ? `${cpu} = ${cpuFix(r.cpuUsPerReqTotal)}` : '-',
      ratio,
      r.otherCores === null ? '-' : `${r.otherCores.toFixed(2)} cores`,
    ];
  });
  return table(header, lines, [0, 6, 7]);
}

export function formatTargets(targets) {
  const lines = targets.map((t) => {
    const m = t.measured;
    const d = t.name.includes('CPU') ? 2 : 3;
    const measured = !m ? 'n/a' : m.min !== undefined && m.n > 1 ? `${fix(m.median, d)} (${fix(m.min, d)}–${fix(m.max, d)})` : fix(m.median, d);
    const verdict = t.goal === 'measured' ? 'info' : t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL';
    return [t.name, t.goal, measured, verdict, t.note ?? ''];
  });
  const header = ['target (scenario 3: switchboard via AS)', 'goal', 'measured median (min–max)', 'result', 'note'];
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
  const header = ['syscalls per request (writes / reads)', 'in flight', 'by process'];
  const lines = rows
    .filter((r) => Object.keys(r.syscallsPerReq ?? {}).length > 0)
    .map((r) => [
      r.name,
      String(r.inflight),
      Object.entries(r.syscallsPerReq)
        .map(([role, v]) => `${role} ${fix(v.writes)} / ${fix(v.reads)}`)
        .join(' · '),
    ]);
  return table(header, lines, [0, 2]);
}
