// Turns what the chaos scenario recorded (call tally, AS log lines with receive times, admin
// snapshots) into the rows of its one table.
import { FAULTS } from './chaos-plans.mjs';
import { ECHO, ECHO_DELAYED, percentile } from './chaos-load.mjs';
import { ms, row, secs, section } from './chaos-table.mjs';

export function buildReport({ cfg, plan, tally, faults, as, slots, snapshots, finalList, loadT0 }) {
  const rows = [];
  const notes = [];
  const rel = (t) => secs(t - loadT0);
  const asLine = (msg, fs, since) => (since === undefined ? undefined : as.find((l) => l.msg === msg && l.fs === fs, since));

  // ── Requests ──
  rows.push(section('requests'));
  const lat = [...tally.latencies].sort((a, b) => a - b);
  rows.push(row('calls sent', tally.sent));
  rows.push(row('answered OK', `${tally.ok} (p50 ${ms(percentile(lat, 50))}, p99 ${ms(percentile(lat, 99))}, max ${ms(lat.at(-1))})`));
  for (const [name, f] of [...tally.failures].sort((a, b) => b[1][1] + b[1][2] - (a[1][1] + a[1][2]))) {
    const onlyKey2 = f[ECHO] === 0;
    const rule = name === 'CHANNEL_CLOSED' && onlyKey2 ? 'allowed for key 2: its FS died under it' : onlyKey2 ? 'key 2 only (not idempotent)' : 'key 1 failed: see below';
    rows.push(row(`answered ${name}`, `${f[ECHO] + f[ECHO_DELAYED]} (key 1: ${f[ECHO]}, key 2: ${f[ECHO_DELAYED]}; ${secs(f.first)}-${secs(f.last)})`, rule));
  }
  rows.push(
    row(
      'never answered',
      `${tally.neverAnswered} (unsettled at the end: ${tally.unsettled.length}, given up by the client's own deadline: ${tally.clientGaveUp.length})`,
      'must be 0',
      tally.neverAnswered === 0,
    ),
  );
  rows.push(row('idempotent failures (key 1 not OK)', tally.idempotentFailures, 'must be 0', tally.idempotentFailures === 0));
  rows.push(row('non-idempotent failures (key 2 not OK)', tally.failedOfKey(ECHO_DELAYED) + tally.unsettled.filter((c) => c.key === ECHO_DELAYED).length, 'reported'));
  rows.push(row('wrong answers (OK, but not what was sent)', tally.wrong.length, 'must be 0', tally.wrong.length === 0));
  let orphans = 0;
  let resent = 0;
  for (const e of as.events) {
    if (e.line.msg !== 'requests pending on a lost connection were re-sent or failed') continue;
    orphans += Number(e.line.orphans ?? 0);
    resent += Number(e.line.resent ?? 0);
  }
  rows.push(row('pending on a lost FS connection (AS log)', `${orphans} (re-sent: ${resent}, failed: ${orphans - resent})`, 'reported'));

  // ── Faults, detection, re-admission ──
  rows.push(section(`faults (plan: ${Object.values(plan).filter((p) => p.fs).map((p) => `${p.fs} ${FAULTS[p.fault].verb}`).join(', ')})`));
  const outAt = {};
  const backAt = {};
  for (const which of ['first', 'second', 'standby']) {
    const { fs, fault: kind } = plan[which];
    const f = faults[fs];
    if (!f) {
      rows.push(row(`${fs} ${FAULTS[kind].verb}`, 'not reached', 'must run', false));
      continue;
    }
    const hb = cfg.heartbeatMs;
    if (kind === 'stop') {
      const d = asLine('function server is unavailable', fs, f.at);
      outAt[fs] = d?.t;
      rows.push(row(`${fs} SIGSTOP -> unavailable (silent peer)`, `${ms(d && d.t - f.at)} (at ${rel(f.at)})`, `must be detected; expect <= 4 heartbeats (${4 * hb} ms)`, d !== undefined));
    } else if (kind === 'kill') {
      const d = asLine('function server is unavailable', fs, f.at);
      outAt[fs] = d?.t;
      const exit = f.exitedAt !== undefined ? `; its exit seen after ${ms(f.exitedAt - f.at)}` : '';
      rows.push(row(`${fs} kill -9 -> unavailable`, `${ms(d && d.t - f.at)} (at ${rel(f.at)}${exit})`, 'must be detected', d !== undefined));
    } else {
      const d = asLine('function server is draining', fs, f.at);
      const left = asLine('function server left', fs, f.at);
      outAt[fs] = d?.t;
      const exit = f.exit ? `exit ${f.exit.code ?? f.exit.signal} after ${ms(f.exitedAt - f.at)}` : 'did not exit';
      rows.push(row(`${fs} SIGTERM -> draining / left`, `${ms(d && d.t - f.at)} / ${ms(left && left.t - f.at)} (at ${rel(f.at)}; ${exit})`, 'must drain and exit 0', d !== undefined && f.exit?.code === 0));
    }
    if (f.recoverAt === undefined) {
      rows.push(row(`${fs} ${FAULTS[kind].recover}`, 'not reached', 'must be re-admitted', false));
      continue;
    }
    const avail = asLine('function server is available', fs, f.recoverAt);
    backAt[fs] = avail?.t;
    let how = `(at ${rel(f.recoverAt)}`;
    if (f.listeningAt !== undefined) how += `; listening after ${ms(f.listeningAt - f.recoverAt)}${f.attempts > 1 ? `, ${f.attempts} starts` : ''}`;
    if (kind === 'term') {
      const joined = asLine('function server joined', fs, f.recoverAt);
      how += `; joined after ${ms(joined && joined.t - f.recoverAt)}`;
    }
    rows.push(row(`${fs} ${FAULTS[kind].recover} -> available`, `${ms(avail && avail.t - f.recoverAt)} ${how})`, 'must be re-admitted', avail !== undefined));
  }

  // ── The standby's share, from the admin surface's served counts ──
  const sb = plan.standby.fs;
  rows.push(section(`standby ${sb} (OK answers it served, admin /functionservers)`));
  const served = (t) => {
    let v;
    for (const s of snapshots) {
      if (s.t > t) break;
      v = s.list.find((x) => x.name === sb)?.served ?? 0;
    }
    return v ?? 0;
  };
  const [a1, a2] = [plan.first.fs, plan.second.fs];
  const bothOut = outAt[a1] !== undefined && outAt[a2] !== undefined ? Math.max(outAt[a1], outAt[a2]) : undefined;
  const firstBack = Math.min(backAt[a1] ?? Infinity, backAt[a2] ?? Infinity);
  const standbyFaultAt = faults[sb]?.at ?? Infinity;
  if (bothOut !== undefined && Number.isFinite(firstBack)) {
    const before = served(bothOut) - served(loadT0);
    const during = served(firstBack + 500) - served(bothOut);
    const after = served(Math.min(standbyFaultAt, snapshots.at(-1)?.t ?? 0) - 100) - served(firstBack + 1000);
    rows.push(row('while an active FS was available (before)', before, 'should be 0', before === 0));
    rows.push(row(`while both actives were out (${rel(bothOut)}-${rel(firstBack)})`, during, 'should be > 0 (standby steps in)', during > 0));
    rows.push(row(`after an active returned (${rel(firstBack + 1000)}-${rel(standbyFaultAt)})`, after, 'should be 0 (standby steps back)', after === 0));
  } else {
    rows.push(row('both actives out at once', 'never observed', 'should happen in this plan', false));
  }

  // ── The end ──
  rows.push(section('end'));
  const states = slots.map((s) => `${s.name} ${finalList.find((f) => f.name === s.name)?.state ?? 'absent'}`);
  const allUp = slots.every((s) => finalList.some((f) => f.name === s.name && f.state === 'available'));
  rows.push(row('FS states after the run', states.join(', '), 'must all be available', allUp));
  const roles = [as, ...slots.flatMap((s) => s.roles)];
  const errLines = roles.flatMap((r) => r.events.filter((e) => (e.line.level ?? 0) >= 50).map((e) => ({ r, e })));
  rows.push(row('error-level log lines (all processes)', errLines.length, 'should be 0', errLines.length === 0));

  // ── Details for anything that went wrong ──
  if (tally.neverAnswered > 0) {
    notes.push(`never answered (first 10): ${JSON.stringify([...tally.unsettled, ...tally.clientGaveUp].slice(0, 10).map((c) => ({ ...c, sentAt: secs(c.sentAt) })))}`);
  }
  if (tally.wrong.length > 0) notes.push(`wrong answers (first 5): ${JSON.stringify(tally.wrong.slice(0, 5))}`);
  for (const { r, e } of errLines.slice(0, 10)) notes.push(`error log ${r.label} at ${rel(e.t)}: ${e.line.msg} ${e.line.err ? JSON.stringify(e.line.err) : ''}`);
  if (rows.some((r) => r.broken || r.verdict === 'warn')) {
    notes.push('AS state changes (time after load start, fs, message, why/reason):');
    for (const e of as.events) {
      if (typeof e.line.fs !== 'string' || !/^function server (is|joined|left)/.test(e.line.msg ?? '')) continue;
      notes.push(`  ${rel(e.t).padStart(8)}  ${e.line.fs}  ${e.line.msg}  ${e.line.why ?? e.line.reason ?? ''}`);
    }
  }
  return { rows, notes };
}
