// The pair chaos scenario on an etcd election (`npm run chaos -- --pair --pair-mode etcd`): the
// scenario of scripts/chaos-pair.mjs (two ASs, two FSs registered with both, an SDK client given
// both endpoints under mixed load; kill -9 the active, restart it, SIGSTOP then SIGCONT the new
// active), but the ASs run `--pair-mode etcd` against a real etcd this script starts on loopback.
// The active holds its role only while its lease lives at etcd, so a frozen active loses the role
// before the other is elected: time with two actives serving must be 0. Prints one table; exits 1
// when a "must" is broken, 2 when the set-up fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { etcdMissing, startEtcd } from './etcd.mjs';
import { intOption } from './int-option.mjs';

const { Client } = await import('../../dist/client/index.js');
const { Role, freePort, getJson, killAllNow, logPath, now, stopAll } = await import('./chaos-roles.mjs');
const { pairMeasures, percentile, startPairLoad } = await import('./chaos-load.mjs');
const { renderTable, row, section, ms, secs } = await import('./chaos-table.mjs');

const HELP = `usage: node scripts/chaos.mjs --pair --pair-mode etcd [options]
  --pair-ttl-seconds <s>  the election's lease TTL (default 2; etcd grants no less than 2 s with its defaults)
  --concurrency <n>       calls in flight (default 16)
  --deadline-ms <ms>      each call's deadline (default 6000: a takeover waits for a lease to expire)
  --keep-logs             keep the children's logs when every "must" holds
Needs etcd on the PATH (Debian: etcd-server). Exits 0 when every "must" holds, 1 when one is broken, 2 on a set-up failure.`;

const { values: o } = parseArgs({
  options: {
    pair: { type: 'boolean', default: true },
    'pair-mode': { type: 'string', default: 'etcd' },
    'pair-ttl-seconds': { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '16' },
    'deadline-ms': { type: 'string', default: '6000' },
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: false,
});
if (o.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const int = (name, min, max) => intOption(o, HELP, name, min, max);
const ttlS = int('pair-ttl-seconds', 1, 60);
const concurrency = int('concurrency', 1, 1000);
const deadlineMs = int('deadline-ms', 100, 120_000);
const HB = 250;
const missing = etcdMissing();
if (missing) {
  process.stderr.write(`chaos: --pair-mode etcd needs a local etcd: ${missing}\n`);
  process.exit(2);
}

const t0 = now();
const logDir = mkdtempSync(join(tmpdir(), 'switchboard-chaos-pair-etcd-'));
const say = (t) => process.stdout.write(`${t}\n`);
const at = (t) => secs(t - t0).padStart(8);
const prefix = `/switchboard-chaos-${process.pid}`;

// ── Clean-up: every child by PID, then etcd, however we leave ──
let etcd;
let cleaning;
const cleanup = () =>
  (cleaning ??= (async () => {
    await stopAll(3000).catch(() => killAllNow());
    await etcd?.stop().catch(() => etcd.killNow());
  })());
process.on('exit', () => {
  killAllNow();
  etcd?.killNow();
});
process.on('SIGINT', () => void cleanup().finally(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().finally(() => process.exit(143)));

const ports = {};
const other = { a: 'b', b: 'a' };
const asRoles = { a: [], b: [] };
/** Role changes per AS as it logged them (our receive time), and the intervals we kept it frozen. */
const timeline = { a: [], b: [] };
const frozen = { a: [], b: [] };
const roleOf = (n) => timeline[n].at(-1)?.role;
const current = (n) => asRoles[n].at(-1);

function startAs(n) {
  const label = asRoles[n].length === 0 ? `as-${n}` : `as-${n}.${asRoles[n].length + 1}`;
  const p = ports[n];
  const role = new Role(label, ['as', '--port', `${p.client}`, '--control-port', `${p.control}`, '--admin-port', `${p.admin}`,
    '--pair-mode', 'etcd', '--registry', etcd.url, '--registry-prefix', prefix, '--pair-ttl-seconds', `${ttlS}`,
    '--heartbeat-ms', `${HB}`, '--reconnect-cap-ms', '500', '--log-level', 'info'], { logFile: logPath(logDir, label), t0 });
  asRoles[n].push(role);
  const watch = (since) => {
    void role.waitFor((l) => typeof l.to === 'string' && l.msg?.startsWith('this application server is now'), { since, timeoutMs: 600_000 }).then((e) => {
      if (!e) return;
      timeline[n].push({ role: e.line.to, t: e.t, epoch: e.line.epoch, reason: e.line.reason, label });
      watch(e.t + 0.001);
    });
  };
  watch(0);
  role.proc.child.once('exit', () => timeline[n].push({ role: 'gone', t: now(), label }));
  return role;
}

function startFs(name, port) {
  return new Role(name, ['fs', '--as', `127.0.0.1:${ports.a.control},127.0.0.1:${ports.b.control}`, '--port', `${port}`, '--plugins', 'echo', '--name', name,
    '--heartbeat-ms', `${HB}`, '--log-level', 'info'], { logFile: logPath(logDir, name), t0 });
}

/** Resolves true once `cond()` holds, false after `timeoutMs`. */
async function until(cond, timeoutMs) {
  const end = now() + timeoutMs;
  while (!cond()) {
    if (now() > end) return false;
    await sleep(10);
  }
  return true;
}
async function must(cond, timeoutMs, what) {
  if (!(await until(cond, timeoutMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; logs: ${logDir}`);
}

async function main() {
  etcd = await startEtcd();
  const used = new Set([etcd.clientPort]);
  for (const n of ['a', 'b']) {
    ports[n] = {};
    for (const k of ['client', 'control', 'admin']) {
      const p = await freePort(used);
      used.add(p);
      ports[n][k] = p;
    }
  }
  const ttlMs = ttlS * 1000;
  say(`Switchboard pair chaos on an etcd election: as-a and as-b campaign on etcd ${etcd.url} (pid ${etcd.pid}, prefix ${prefix}), lease TTL ${ttlS} s, heartbeat ${HB} ms; fs-1, fs-2 registered with both.`);
  say(`  load: ${concurrency} calls in flight from one SDK client given both endpoints, half key 1 (echo, idempotent), half key 2 (delayed 5-20 ms, not idempotent), deadline ${deadlineMs} ms`);
  say(`  logs: ${logDir}`);

  // as-a first, so that it leads; as-b campaigns behind it.
  startAs('a');
  await must(() => roleOf('a') === 'active', 15_000, 'as-a to be elected');
  startAs('b');
  await must(() => roleOf('b') === 'standby', 15_000, 'as-b to see as-a lead');
  const fss = [startFs('fs-1', await freePort(used)), startFs('fs-2', await freePort(used))];
  const registered = await Promise.all(fss.map((f) => f.waitFor((l) => l.msg === 'registered with the application server', { timeoutMs: 10_000 })));
  if (registered.some((r) => !r)) throw new Error(`an FS did not register within 10 s; logs: ${logDir}`);
  await sleep(800); // both ASs dial both FSs

  // ── GET /pair on both admin ports every 50 ms: samples in which both say "active" ──
  const pairSamples = { n: 0, both: 0, roles: new Set() };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [pa, pb] = await Promise.all([getJson(ports.a.admin, '/pair', 500), getJson(ports.b.admin, '/pair', 500)]);
      pairSamples.n++;
      pairSamples.roles.add(`${pa?.role ?? '-'}/${pb?.role ?? '-'}`);
      if (pa?.role === 'active' && pb?.role === 'active') pairSamples.both++;
      await sleep(50);
    }
  })();

  // ── The load: every answer checked and stamped with the AS whose connection carried it ──
  const load = await startPairLoad(Client, ports, { concurrency, deadlineMs, heartbeatMs: HB });
  const { tally, failovers, endpointName } = load;
  const mark = (text, t = now()) => say(`  [${at(t)}] ${text}`);
  const activeName = () => (roleOf('a') === 'active' ? 'a' : roleOf('b') === 'active' ? 'b' : undefined);
  const becameActive = (n, since) => timeline[n].find((e) => e.t > since && e.role === 'active');

  await sleep(3000);
  // 1. kill -9 the active: it cannot resign, so the standby waits for its lease to expire.
  const first = activeName();
  const second = other[first];
  const killT = current(first).signal('SIGKILL');
  mark(`kill -9 as-${first} (active, epoch ${timeline[first].at(-1).epoch}): it cannot resign; its lease must expire`, killT);
  await until(() => roleOf(second) === 'active', ttlMs + 10_000);
  const up1 = becameActive(second, killT);
  mark(up1 ? `as-${second} is active (epoch ${up1.epoch}; ${up1.reason})` : `as-${second} did not become active`, up1?.t);
  await sleep(3000);
  // 2. Restart the old active: it campaigns behind the leader, so it must come back standby.
  const restartT = now();
  startAs(first);
  await until(() => timeline[first].some((e) => e.t > restartT && e.role !== 'gone'), 15_000);
  mark(`as-${first} restarted: ${roleOf(first)}`);
  await sleep(3000);
  // 3. SIGSTOP the new active: it cannot renew its lease, so it loses the role at etcd; SIGCONT later.
  const frozenRole = current(second);
  const stopT = frozenRole.signal('SIGSTOP');
  frozen[second].push([stopT, undefined]);
  mark(`SIGSTOP as-${second} (active): frozen, it can neither renew its lease nor step down`, stopT);
  await until(() => roleOf(first) === 'active', ttlMs + 10_000);
  const up2 = becameActive(first, stopT);
  mark(up2 ? `as-${first} is active (epoch ${up2.epoch}; ${up2.reason}) -- the frozen one's lease has expired at etcd` : `as-${first} did not become active`, up2?.t);
  await sleep(3000);
  const contT = frozenRole.signal('SIGCONT');
  frozen[second][0][1] = contT;
  mark(`SIGCONT as-${second}`, contT);
  await until(() => timeline[second].some((e) => e.t > contT && e.role === 'standby'), 10_000);
  const woken = timeline[second].filter((e) => e.t > contT);
  for (const e of woken) mark(`as-${second} is ${e.role} (${e.reason})`, e.t);
  await sleep(2000);
  await load.stop();
  sampling = false;
  await sampler;
  const finalRoles = { a: roleOf('a'), b: roleOf('b') };
  await stopAll(3000);

  // ── Measures ──
  const answersOf = (n) => tally.answers.filter((x) => x.as === n);
  const { lastBefore, firstAfter, bothActiveMs: overlap, bothServingMs: bothServing, failedOf } = pairMeasures(tally, timeline, frozen, now());
  const gap1 = firstAfter(second, killT) - lastBefore(first, killT);
  const gap2 = firstAfter(first, stopT) - lastBefore(second, stopT);
  const fromFrozenAfterTakeover = up2 ? tally.answers.filter((x) => x.as === second && x.t > up2.t).length : NaN;
  const fails = [...tally.failures.entries()];
  const gaveUp = (tally.failures.get('CLIENT_GAVE_UP')?.[1] ?? 0) + (tally.failures.get('CLIENT_GAVE_UP')?.[2] ?? 0);
  const channelClosed2 = tally.failures.get('SB_ERR_CHANNEL_CLOSED')?.[2] ?? 0;
  const nonIdempotentOther = failedOf(2) - channelClosed2;
  const lat = [...tally.latencies].sort((x, y) => x - y);
  const restarted = timeline[first].filter((e) => e.t > restartT && e.t < stopT && e.role !== 'gone'); // before its sibling was frozen
  const stepDown = woken.find((e) => e.role !== 'active');
  const wokenStandby = woken.find((e) => e.role === 'standby');
  const takeoverRule = `must be <= TTL + 2 s (${ttlMs + 2000} ms)`;

  const rows = [
    section('load'),
    row('calls sent', tally.sent),
    row('answered OK', `${tally.ok} (p50 ${ms(percentile(lat, 50))}, p99 ${ms(percentile(lat, 99))}, max ${ms(lat.at(-1))})`),
    row('never answered (the client gave up)', gaveUp, 'must be 0', gaveUp === 0),
    row('idempotent failures (key 1 not OK)', `${failedOf(1)} ${fails.filter(([, f]) => f[1] > 0).map(([k, f]) => `${k}:${f[1]}`).join(' ')}`.trim(), 'must be 0', failedOf(1) === 0),
    row('wrong answers', tally.wrong, 'must be 0', tally.wrong === 0),
    row('non-idempotent CHANNEL_CLOSED (key 2)', channelClosed2, 'allowed: they were on the AS that died or froze'),
    row('non-idempotent, other failures', `${nonIdempotentOther} ${fails.filter(([k, f]) => k !== 'SB_ERR_CHANNEL_CLOSED' && f[2] > 0).map(([k, f]) => `${k}:${f[2]}`).join(' ')}`.trim(), 'must be 0', nonIdempotentOther === 0),
    row('client failovers', failovers.map((f) => `${secs(f.t - t0)} ${endpointName(f.from)}->${endpointName(f.to)}`).join('; ') || 'none'),
    section(`roles (etcd election, lease TTL ${ttlS} s)`),
    row(`kill -9 as-${first}: as-${second} active after (its log line, received)`, ms(up1 && up1.t - killT), takeoverRule, up1 !== undefined && up1.t - killT <= ttlMs + 2000),
    row(`kill -9 as-${first}: client gap (last answer from it -> first from as-${second})`, ms(gap1), takeoverRule, gap1 <= ttlMs + 2000),
    row(`restarted as-${first} comes back`, restarted.map((e) => e.role).join(' -> ') || 'no role', 'must be standby (behind the leader)', restarted.length > 0 && restarted.every((e) => e.role === 'standby')),
    row(`SIGSTOP as-${second}: as-${first} active after (its log line, received)`, ms(up2 && up2.t - stopT), takeoverRule, up2 !== undefined && up2.t - stopT <= ttlMs + 2000),
    row(`SIGSTOP as-${second}: client gap (last answer from it -> first from as-${first})`, ms(gap2), 'reported (client heartbeat, then the lease expiry)'),
    row(`SIGCONT as-${second}: leaves active / is standby after`, `${ms(stepDown && stepDown.t - contT)} / ${ms(wokenStandby && wokenStandby.t - contT)}`, 'must be standby after SIGCONT', wokenStandby !== undefined),
    row(`answers from the frozen as-${second} after as-${first} took over`, fromFrozenAfterTakeover, 'must be 0', fromFrozenAfterTakeover === 0),
    row('time with two actives serving clients (10 ms windows with answers from both)', ms(bothServing), 'must be 0 (strict exclusion)', bothServing === 0),
    row('GET /pair samples (both admin ports, every 50 ms) with two actives', `${pairSamples.both} of ${pairSamples.n}`, 'must be 0', pairSamples.both === 0),
    row('time both logged active (frozen time excluded)', ms(overlap), 'reported: the woken one until its first timer tick'),
    row('answers per AS', `a ${answersOf('a').length} · b ${answersOf('b').length}`),
    row('roles at the end', `as-a ${finalRoles.a}, as-b ${finalRoles.b}`, 'must be one active, one standby', [finalRoles.a, finalRoles.b].sort().join() === 'active,standby'),
  ];
  say('');
  say(renderTable(rows));
  say('');
  for (const n of ['a', 'b']) say(`as-${n} roles: ${timeline[n].map((e) => `${secs(e.t - t0)} ${e.role}${e.epoch !== undefined ? `@${e.epoch}` : ''}`).join(', ')}`);
  say('');
  say(`What happened to the SIGSTOPped active: as-${second} was frozen at ${secs(stopT - t0)} while active. Frozen, it sent no keep-alive, so etcd let its lease expire`);
  say(`and deleted its campaign key; only then could as-${first} be elected (${up2 ? `${ms(up2.t - stopT)} after the SIGSTOP, epoch ${up2.epoch}` : 'it was not'}). The client had left the frozen AS`);
  say(`on its own heartbeat and was refused (NOT_ACTIVE) or kept waiting until the election; ${fromFrozenAfterTakeover} answers came from as-${second} after the takeover.`);
  say(
    `On SIGCONT (${secs(contT - t0)}) as-${second} ${stepDown ? `left the active role ${ms(stepDown.t - contT)} later ("${stepDown.reason}")` : 'never logged leaving the active role'}` +
      `${wokenStandby ? ` and was standby ${ms(wokenStandby.t - contT)} after SIGCONT` : ', and never became standby'}; GET /pair on both admin ports showed two actives in ${pairSamples.both} of ${pairSamples.n} samples (a/b pairs seen: ${[...pairSamples.roles].join(', ')}).`,
  );
  const broken = rows.filter((r) => r.broken);
  if (broken.length === 0 && !o['keep-logs']) rmSync(logDir, { recursive: true, force: true });
  say(broken.length ? `\n${broken.length} must(s) broken: ${broken.map((r) => r.metric).join('; ')}; logs kept in ${logDir}` : '\nevery must holds');
  return broken.length ? 1 : 0;
}

let code;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`chaos: ${err?.stack ?? err}\nlogs: ${logDir}\n`);
  code = 2;
}
await cleanup();
process.exit(code);
