#!/usr/bin/env node
// The pair chaos scenario (`npm run chaos -- --pair`): two ASs as an active/standby pair, two FSs
// registered with both, steady mixed load from an SDK client given both endpoints; kill -9 the
// active, restart it (it must stay standby), then SIGSTOP the new active and SIGCONT it later (it
// must step down). Prints one table and exits 1 when a "must" is broken.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

const { Client } = await import('../dist/client/index.js');
const { Role, freePort, killAllNow, logPath, now, stopAll } = await import('./lib/chaos-roles.mjs');
const { pairMeasures, percentile, startPairLoad } = await import('./lib/chaos-load.mjs');
const { renderTable, row, section, ms, secs } = await import('./lib/chaos-table.mjs');

const { values: o } = parseArgs({
  options: {
    pair: { type: 'boolean', default: true },
    'advert-ms': { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '16' },
    'deadline-ms': { type: 'string', default: '3000' },
    'keep-logs': { type: 'boolean', default: false },
  },
  strict: false,
});
const advertMs = Number(o['advert-ms']);
const concurrency = Number(o.concurrency);
const deadlineMs = Number(o['deadline-ms']);
const HB = 250;

const t0 = now();
const logDir = mkdtempSync(join(tmpdir(), 'switchboard-chaos-pair-'));
const secretFile = join(logDir, 'pair.secret');
writeFileSync(secretFile, 'chaos-pair-secret-0123456789abcdef\n', { mode: 0o600 });
const say = (t) => process.stdout.write(`${t}\n`);
const at = (t) => secs(t - t0).padStart(8);
process.on('exit', () => killAllNow());
process.on('SIGINT', () => void stopAll(2000).finally(() => process.exit(130)));

// ── Two ASs on fixed ports (a restarted one comes back where it was) ──
const ports = {};
const used = new Set();
for (const n of ['a', 'b']) {
  ports[n] = {};
  for (const k of ['client', 'control', 'admin', 'pair']) {
    const p = await freePort(used);
    used.add(p);
    ports[n][k] = p;
  }
}
const other = { a: 'b', b: 'a' };
const asRoles = { a: [], b: [] };
/** Role intervals per AS from its own log lines: [{ role, t }], and frozen intervals we caused. */
const timeline = { a: [], b: [] };
const frozen = { a: [], b: [] };

function startAs(n, priority) {
  const label = asRoles[n].length === 0 ? `as-${n}` : `as-${n}.${asRoles[n].length + 1}`;
  const p = ports[n];
  const role = new Role(label, ['as', '--port', `${p.client}`, '--control-port', `${p.control}`, '--admin-port', `${p.admin}`, '--pair-port', `${p.pair}`,
    '--pair-peer', `127.0.0.1:${ports[other[n]].pair}`, '--pair-secret-file', secretFile, '--priority', `${priority}`, '--advert-ms', `${advertMs}`,
    '--heartbeat-ms', `${HB}`, '--reconnect-cap-ms', '500', '--log-level', 'info'], { logFile: logPath(logDir, label), t0 });
  asRoles[n].push(role);
  // Role changes as the AS itself logged them, stamped with our receive time.
  const watch = () => {
    void role.waitFor((l) => typeof l.to === 'string' && l.msg?.startsWith('this application server is now'), { since: watch.since ?? 0, timeoutMs: 600_000 }).then((e) => {
      if (!e) return;
      timeline[n].push({ role: e.line.to, t: e.t, epoch: e.line.epoch, reason: e.line.reason });
      watch.since = e.t + 0.001;
      watch();
    });
  };
  watch();
  role.proc.child.once('exit', () => timeline[n].push({ role: 'gone', t: now() }));
  return role;
}

function startFs(name, port) {
  return new Role(name, ['fs', '--as', `127.0.0.1:${ports.a.control},127.0.0.1:${ports.b.control}`, '--port', `${port}`, '--plugins', 'echo', '--name', name,
    '--heartbeat-ms', `${HB}`, '--log-level', 'info'], { logFile: logPath(logDir, name), t0 });
}

const roleOf = (n) => timeline[n].at(-1)?.role;
async function until(cond, timeoutMs, what) {
  const end = now() + timeoutMs;
  while (!cond()) {
    if (now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

say(`Switchboard pair chaos: as-a (priority 150) and as-b (100), advert ${advertMs} ms, heartbeat ${HB} ms; fs-1, fs-2 registered with both.`);
say(`  load: ${concurrency} calls in flight from one SDK client given both endpoints, half key 1 (echo, idempotent), half key 2 (delayed 5-20 ms, not idempotent), deadline ${deadlineMs} ms`);
say(`  logs: ${logDir}`);
const A = startAs('a', 150);
const B = startAs('b', 100);
await until(() => (roleOf('a') === 'active' && roleOf('b') === 'standby') || (roleOf('b') === 'active' && roleOf('a') === 'standby'), 10_000, 'the pair to negotiate');
const fss = [startFs('fs-1', await freePort(used)), startFs('fs-2', await freePort(used))];
await Promise.all(fss.map((f) => f.waitFor((l) => l.msg === 'registered with the application server', { timeoutMs: 10_000 })));
await sleep(800); // both ASs dial both FSs

// ── The load: every answer checked and stamped with the AS that gave it ──
const load = await startPairLoad(Client, ports, { concurrency, deadlineMs, heartbeatMs: HB });
const { tally, failovers, endpointName } = load;

const activeName = () => (roleOf('a') === 'active' ? 'a' : roleOf('b') === 'active' ? 'b' : undefined);
const marks = [];
const mark = (text) => {
  marks.push({ t: now(), text });
  say(`  [${at(now())}] ${text}`);
};

await sleep(3000);
// 1. kill -9 the active.
const first = activeName();
const victim = first === 'a' ? A : B;
const kill = { t: now(), who: first };
mark(`kill -9 as-${first} (active, epoch ${timeline[first].at(-1).epoch})`);
victim.signal('SIGKILL');
await until(() => roleOf(other[first]) === 'active', 5000, 'the standby to take over');
mark(`as-${other[first]} is active (epoch ${timeline[other[first]].at(-1).epoch})`);
await sleep(3000);
// 2. restart the old active: it must come back as standby (no preemption).
const restarted = startAs(first, first === 'a' ? 150 : 100);
await until(() => roleOf(first) === 'standby', 10_000, `the restarted as-${first} to settle`);
mark(`as-${first} restarted: ${roleOf(first)}`);
await sleep(3000);
// 3. SIGSTOP the new active, SIGCONT it later: the other takes over, then the woken one steps down.
const second = other[first];
const frozenRole = second === 'a' ? A : B;
const stopT = now();
frozen[second].push([stopT, undefined]);
mark(`SIGSTOP as-${second} (active)`);
frozenRole.signal('SIGSTOP');
await until(() => roleOf(first) === 'active', 5000, `as-${first} to take over from the frozen one`);
mark(`as-${first} is active (epoch ${timeline[first].at(-1).epoch})`);
await sleep(3000);
const contT = now();
frozen[second][0][1] = contT;
frozenRole.signal('SIGCONT');
mark(`SIGCONT as-${second}`);
await until(() => roleOf(second) === 'standby', 5000, `the woken as-${second} to step down`);
mark(`as-${second} stepped down: ${roleOf(second)}`);
await sleep(2000);
await load.stop();
await stopAll(3000);
void restarted;

// ── Measures ──
const answersOf = (n, from, to) => tally.answers.filter((x) => x.as === n && x.t >= from && x.t <= to);
const { lastBefore, firstAfter, bothActiveMs: overlap, bothServingMs: bothServing, failedOf } = pairMeasures(tally, timeline, frozen, now());
const takeover1 = firstAfter(other[first], kill.t) - lastBefore(first, kill.t);
const takeover2 = firstAfter(first, stopT) - lastBefore(second, stopT);
const fails = [...tally.failures.entries()];
const channelClosed2 = tally.failures.get('SB_ERR_CHANNEL_CLOSED')?.[2] ?? 0;
const nonIdempotentOther = failedOf(2) - channelClosed2;
const lat = [...tally.latencies].sort((x, y) => x - y);

const rows = [
  section('load'),
  row('calls sent', tally.sent),
  row('answered OK', `${tally.ok} (p50 ${Math.round(percentile(lat, 50))} ms, p99 ${Math.round(percentile(lat, 99))} ms)`),
  row('never answered (the client gave up)', (tally.failures.get('CLIENT_GAVE_UP')?.[1] ?? 0) + (tally.failures.get('CLIENT_GAVE_UP')?.[2] ?? 0), 'must be 0', !tally.failures.has('CLIENT_GAVE_UP')),
  row('idempotent failures (key 1 not OK)', failedOf(1), 'must be 0', failedOf(1) === 0),
  row('wrong answers', tally.wrong, 'must be 0', tally.wrong === 0),
  row('non-idempotent CHANNEL_CLOSED (key 2)', channelClosed2, 'allowed: they were on the AS that died or froze'),
  row('non-idempotent, other failures', `${nonIdempotentOther} ${fails.filter(([k]) => k !== 'SB_ERR_CHANNEL_CLOSED').map(([k, f]) => `${k}:${f[2]}`).join(' ')}`, 'must be 0', nonIdempotentOther === 0),
  row('client failovers', failovers.map((f) => `${secs(f.t - t0)} ${endpointName(f.from)}→${endpointName(f.to)} (${f.reason})`).join('; ')),
  section('roles'),
  row(`kill -9 as-${first}: takeover (last answer from it → first from as-${other[first]})`, ms(takeover1), 'must be ≤ 1000 ms', takeover1 <= 1000),
  row(`restarted as-${first} comes back`, roleOf(first) === 'standby' || timeline[first].some((e) => e.role === 'standby') ? 'standby' : roleOf(first), 'must be standby (no preemption)', timeline[first].filter((e) => e.t > kill.t).some((e) => e.role === 'standby')),
  row(`SIGSTOP as-${second}: takeover (last answer from it → first from as-${first})`, ms(takeover2), `client heartbeat ${HB} ms: detection ≤ 3 × ${HB} ms`),
  row(`SIGCONT as-${second}: steps down after`, ms(timeline[second].find((e) => e.t > contT && e.role === 'standby')?.t - contT), 'should be ≤ one advert', timeline[second].find((e) => e.t > contT && e.role === 'standby')?.t - contT <= advertMs + 100),
  row('time with two actives serving clients (10 ms windows with answers from both)', ms(bothServing), 'must be 0 with an intact pair link', bothServing === 0),
  row('time both believed they were active (neither frozen)', ms(overlap), 'the woken one learns within one advert'),
  row('answers per AS', `a ${answersOf('a', 0, Infinity).length} · b ${answersOf('b', 0, Infinity).length}`),
];
say('');
say(renderTable(rows));
say('');
for (const n of ['a', 'b']) say(`as-${n} roles: ${timeline[n].map((e) => `${secs(e.t - t0)} ${e.role}${e.epoch !== undefined ? `@${e.epoch}` : ''}`).join(', ')}`);
const broken = rows.filter((r) => r.broken);
if (broken.length === 0 && !o['keep-logs']) rmSync(logDir, { recursive: true, force: true });
say(broken.length ? `\n${broken.length} must(s) broken; logs kept in ${logDir}` : '\nevery must holds');
process.exit(broken.length ? 1 : 0);
