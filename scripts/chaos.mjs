#!/usr/bin/env node
// The chaos scenario: an AS and three FSs (one standby) as real processes through the CLI, a steady
// mixed load from a client in this process, and on a timeline kill -9, SIGSTOP/SIGCONT and SIGTERM,
// each followed by a restart. Prints one table and exits 1 when a "must" is broken.
// Run after a build: `npm run build && node scripts/chaos.mjs [--duration 32] [--plan silent|drain]`.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intOption } from './lib/int-option.mjs';

const DIST = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(DIST)) {
  process.stderr.write(`chaos: ${DIST} is missing; build first (npm run build)\n`);
  process.exit(2);
}
if (process.argv.includes('--pair')) {
  // The AS pair's scenario: kill -9, restart, SIGSTOP/SIGCONT of the active AS; with
  // `--pair-mode etcd` the pair elects its active through an etcd that the scenario starts.
  const modeAt = process.argv.indexOf('--pair-mode');
  const mode = modeAt >= 0 ? process.argv[modeAt + 1] : process.argv.find((a) => a.startsWith('--pair-mode='))?.slice('--pair-mode='.length);
  if (mode !== undefined && mode !== 'udp' && mode !== 'etcd') {
    process.stderr.write(`chaos: --pair-mode must be udp or etcd, got "${mode}"\n`);
    process.exit(2);
  }
  await import(mode === 'etcd' ? './lib/chaos-pair-etcd.mjs' : './chaos-pair.mjs');
  await new Promise(() => undefined); // the pair scenarios exit by themselves
}
const { Client } = await import('../dist/client/index.js');
const { Role, freePort, getJson, killAllNow, logPath, now, poll, stopAll } = await import('./lib/chaos-roles.mjs');
const { startLoad, settle } = await import('./lib/chaos-load.mjs');
const { FAULTS, PLANS, TIMELINE } = await import('./lib/chaos-plans.mjs');
const { buildReport } = await import('./lib/chaos-report.mjs');
const { renderTable, secs } = await import('./lib/chaos-table.mjs');

const HELP = `usage: node scripts/chaos.mjs [options]
  --duration <s>          load duration in seconds (default 32, at least ${TIMELINE.minDuration / 1000} at a 500 ms heartbeat)
  --plan <silent|drain>   which FS gets which fault (default silent; see the printed plan)
  --concurrency <n>       calls in flight (default 16)
  --rate <n>              most calls per second (default 1000)
  --deadline-ms <ms>      each call's deadline (default 3000)
  --heartbeat-ms <ms>     heartbeat period of the AS and FSs (default 500)
  --reconnect-cap-ms <ms> AS reconnect cap (default 1000)
  --verbose               echo the children's warnings to stderr
  --keep-logs             keep the children's logs when every "must" holds (they are always kept otherwise)
Exits 0 when every "must" holds, 1 when one is broken, 2 on a set-up failure, 130 on SIGINT.`;

const { values: o } = parseArgs({
  options: {
    duration: { type: 'string', default: '32' },
    plan: { type: 'string', default: 'silent' },
    concurrency: { type: 'string', default: '16' },
    rate: { type: 'string', default: '1000' },
    'deadline-ms': { type: 'string', default: '3000' },
    'heartbeat-ms': { type: 'string', default: '500' },
    'reconnect-cap-ms': { type: 'string', default: '1000' },
    verbose: { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (o.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const int = (name, min, max) => intOption(o, HELP, name, min, max);
const cfg = {
  heartbeatMs: int('heartbeat-ms', 50, 5000),
  reconnectCapMs: int('reconnect-cap-ms', 10, 60_000),
  concurrency: int('concurrency', 1, 1000),
  rate: int('rate', 1, 100_000),
  deadlineMs: int('deadline-ms', 100, 60_000),
  refreshMs: 250,
};
const plan = PLANS[o.plan];
if (!plan) {
  process.stderr.write(`chaos: --plan must be one of ${Object.keys(PLANS).join(', ')}, got "${o.plan}"\n`);
  process.exit(2);
}
const scale = Math.max(1, cfg.heartbeatMs / 500);
const T = Object.fromEntries(Object.entries(TIMELINE).map(([k, v]) => [k, v * scale]));
cfg.durationMs = int('duration', 1, 3600) * 1000;
if (cfg.durationMs < T.minDuration) {
  process.stderr.write(`chaos: --duration must be at least ${T.minDuration / 1000} s for this timeline\n`);
  process.exit(2);
}

const t0 = now();
const logDir = mkdtempSync(join(tmpdir(), 'switchboard-chaos-'));
const say = (text) => process.stdout.write(`${text}\n`);
let loadT0 = t0;
const marks = [];
const mark = (text, t = now()) => {
  marks.push({ t, text });
  say(`  [${secs(t - loadT0).padStart(8)}] ${text}`);
};

// ── Stop every child by PID on the way out, however we leave. ──
let cleaning;
const cleanup = () => (cleaning ??= stopAll(5000));
process.on('exit', () => killAllNow());
process.on('SIGINT', () => {
  if (cleaning) {
    killAllNow();
    process.exit(130);
  }
  process.stderr.write('\nchaos: interrupted; stopping every child process\n');
  void cleanup().finally(() => process.exit(130));
});
process.on('SIGTERM', () => void cleanup().finally(() => process.exit(143)));

async function main() {
  say(`Switchboard chaos scenario, plan "${o.plan}": fs-1 and fs-2 active, fs-3 standby (--standby).`);
  for (const l of plan.about) say(`  ${l}`);
  say(
    `  load: ${cfg.concurrency} calls in flight, at most ${cfg.rate}/s, half key 1 (echo, idempotent), half key 2 (delayed 5-20 ms, ` +
      `not idempotent), deadline ${cfg.deadlineMs} ms, for ${secs(cfg.durationMs)}; heartbeat ${cfg.heartbeatMs} ms, reconnect cap ${cfg.reconnectCapMs} ms`,
  );
  if (cfg.deadlineMs <= 4 * cfg.heartbeatMs) {
    say(`  note: the deadline (${cfg.deadlineMs} ms) is not longer than silent-peer detection (up to 4 heartbeats, ${4 * cfg.heartbeatMs} ms):`);
    say('  key 1 calls pending on the frozen FS will time out before they can be re-sent, by design.');
  }
  say(`  child logs: ${logDir} (kept when a "must" breaks, or with --keep-logs)`);

  // ── The AS, then three FSs on fixed ports so that a restarted FS comes back where it was. ──
  const as = new Role('as', ['as', '--port', '0', '--control-port', '0', '--admin-port', '0', '--heartbeat-ms', `${cfg.heartbeatMs}`,
    '--reconnect-cap-ms', `${cfg.reconnectCapMs}`, '--load-refresh-ms', `${cfg.refreshMs}`, '--log-level', 'info'], { logFile: logPath(logDir, 'as'), t0 });
  if (o.verbose) echoWarnings(as);
  const listening = await as.waitFor((l) => l.msg === 'application server listening', { timeoutMs: 10_000 });
  const adminLine = await as.waitFor((l) => l.msg === 'admin surface listening', { timeoutMs: 10_000 });
  if (!listening || !adminLine) throw new Error(`the AS did not log that it listens within 10 s (${as.alive ? 'still running' : `exit ${JSON.stringify(as.exit)}`}); see ${logPath(logDir, 'as')}`);
  const { port, controlPort } = listening.line;
  const adminPort = adminLine.line.adminPort;
  const used = new Set([port, controlPort, adminPort]);
  const slots = [];
  for (const [name, standby] of [['fs-1', false], ['fs-2', false], ['fs-3', true]]) {
    const p = await freePort(used);
    used.add(p);
    slots.push({ name, standby, port: p, roles: [] });
  }
  const byName = Object.fromEntries(slots.map((s) => [s.name, s]));

  const startFs = async (slot) => {
    const firstSpawn = now();
    for (let attempt = 1; attempt <= 3; attempt++) {
      const label = slot.roles.length === 0 ? slot.name : `${slot.name}.${slot.roles.length + 1}`;
      const role = new Role(label, ['fs', '--as', `127.0.0.1:${controlPort}`, '--port', `${slot.port}`, '--plugins', 'echo', '--name', slot.name,
        '--heartbeat-ms', `${cfg.heartbeatMs}`, '--refresh-ms', `${cfg.refreshMs}`, '--drain-timeout-ms', '5000', '--log-level', 'info', ...(slot.standby ? ['--standby'] : [])],
      { logFile: logPath(logDir, label), t0 });
      if (o.verbose) echoWarnings(role);
      slot.roles.push(role);
      const up = await role.waitFor((l) => l.msg === 'function server listening', { timeoutMs: 10_000 });
      if (up) return { role, spawnedAt: firstSpawn, listeningAt: up.t, attempts: attempt };
      say(`  ${label} did not start (exit ${JSON.stringify(role.exit)}); see ${logPath(logDir, label)}`);
      await role.stop(1000);
      await sleep(300);
    }
    throw new Error(`${slot.name} did not start on port ${slot.port} in 3 attempts`);
  };
  const current = (slot) => slot.roles.at(-1);

  await Promise.all(slots.map(startFs));
  const allAvailable = async () => {
    const list = await getJson(adminPort, '/functionservers');
    return Array.isArray(list) && slots.every((s) => list.some((f) => f.name === s.name && f.state === 'available')) ? list : undefined;
  };
  const ready = await poll(allAvailable, { timeoutMs: 15_000 });
  if (!ready) throw new Error(`the three FSs were not all available within 15 s; see ${logDir}`);
  say(`  ready: ${ready.map((f) => `${f.name}@${f.port}${f.standby ? ' (standby)' : ''}`).join(', ')}; AS client port ${port}`);

  const client = await Client.connect({ port, heartbeatMs: cfg.heartbeatMs });
  await client.call(1, 'warm-up', { timeoutMs: cfg.deadlineMs });
  await client.call(2, { ms: 1, value: 'warm-up' }, { timeoutMs: cfg.deadlineMs });

  // ── Admin snapshots (served counts per FS) every 250 ms while the scenario runs. ──
  const snapshots = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const list = await getJson(adminPort, '/functionservers');
      if (Array.isArray(list)) snapshots.push({ t: now(), list });
      await sleep(250);
    }
  })();

  // ── Load and the fault timeline, side by side. ──
  loadT0 = now();
  say(`timeline (seconds after the load started; ${secs(loadT0 - t0)} into the child logs):`);
  const endAt = loadT0 + cfg.durationMs;
  const load = startLoad(client, { concurrency: cfg.concurrency, rate: cfg.rate, deadlineMs: cfg.deadlineMs, endAt, t0: loadT0 });
  mark('load started');
  const at = async (ms) => {
    const wait = loadT0 + ms - now();
    if (wait > 0) await sleep(wait);
  };
  const faults = {};
  const fault = (which) => {
    const { fs, fault: kind } = plan[which];
    const slot = byName[fs];
    const role = current(slot);
    const t = role.signal(FAULTS[kind].signal);
    faults[fs] = { fs, kind, which, role, at: t ?? now(), delivered: t !== undefined };
    mark(`${FAULTS[kind].verb} ${fs} (pid ${role.pid})${t === undefined ? ' -- it had already exited!' : ''}`, t);
  };
  const waitOut = (fs, timeoutMs) => {
    const f = faults[fs];
    return as.waitFor((l) => l.msg === FAULTS[f.kind].out && l.fs === fs, { since: f.at, timeoutMs });
  };
  const recover = async (which) => {
    const { fs, fault: kind } = plan[which];
    const f = faults[fs];
    if (kind === 'stop') {
      f.recoverAt = f.role.signal('SIGCONT') ?? now();
      mark(`SIGCONT ${fs} (pid ${f.role.pid})`, f.recoverAt);
      return;
    }
    if (!(await f.role.exited(kind === 'term' ? 8000 : 2000))) {
      mark(`${fs} has not exited after ${FAULTS[kind].verb}; sending SIGKILL`);
      f.role.signal('SIGKILL');
      await f.role.exited(2000);
    }
    f.exit = f.role.exit;
    f.exitedAt = f.role.exitedAt;
    const s = await startFs(byName[fs]);
    Object.assign(f, { recoverAt: s.spawnedAt, listeningAt: s.listeningAt, attempts: s.attempts });
    mark(`restarted ${fs} on port ${byName[fs].port} (pid ${s.role.pid}; listening after ${Math.round(s.listeningAt - s.spawnedAt)} ms)`, s.spawnedAt);
  };

  await at(T.first);
  fault('first');
  const out = await waitOut(plan.first.fs, Math.max(6000, T.second - T.first + 3000));
  if (out) mark(`AS: ${plan.first.fs} is ${out.line.to ?? 'out'}`, out.t);
  else mark(`AS never logged "${FAULTS[plan.first.fault].out}" for ${plan.first.fs}`);
  await at(T.second);
  fault('second');
  const out2 = await waitOut(plan.second.fs, 3000);
  if (out2) mark(`AS: ${plan.second.fs} is ${out2.line.to ?? 'out'}: no active FS left, standby fs-3 serves`, out2.t);
  await at(T.recoverFirst);
  await recover('first');
  await at(T.recoverSecond);
  await recover('second');
  await at(T.standbyFault);
  fault('standby');
  await at(T.standbyRecover);
  await recover('standby');
  await at(cfg.durationMs);
  mark('load stopped; waiting for every outstanding call');
  const settleMs = cfg.deadlineMs + 3000;
  await settle(load.tally, settleMs, loadT0);
  const left = load.tally.unsettled.length;
  mark(left === 0 ? 'every call has settled' : `${left} calls still unsettled after waiting ${settleMs} ms`);

  const final = await poll(allAvailable, { timeoutMs: 10_000 });
  const finalList = final ?? (await getJson(adminPort, '/functionservers')) ?? [];
  polling = false;
  await poller;
  await client.close();

  const report = buildReport({ cfg, plan, planName: o.plan, tally: load.tally, faults, as, slots, snapshots, finalList, loadT0, current });
  await cleanup();
  say('');
  say(renderTable(report.rows));
  for (const n of report.notes) say(n);
  const broken = report.rows.filter((r) => r.broken);
  if (broken.length > 0) {
    say(`\nBROKEN: ${broken.map((r) => r.metric).join('; ')}. Child logs: ${logDir}`);
    return 1;
  }
  if (o['keep-logs']) say(`\nevery "must" holds. Child logs: ${logDir}`);
  else {
    rmSync(logDir, { recursive: true, force: true });
    say('\nevery "must" holds (child logs removed; --keep-logs keeps them).');
  }
  return 0;
}

function echoWarnings(role) {
  let next = 0;
  const timer = setInterval(() => {
    for (; next < role.events.length; next++) {
      const e = role.events[next];
      if ((e.line.level ?? 0) < 40) continue;
      process.stderr.write(`  [${role.label} ${secs(e.t - loadT0)}] ${e.line.msg} ${e.line.fs ?? ''} ${e.line.reason ?? ''}\n`);
    }
    if (!role.alive) clearInterval(timer);
  }, 200);
  timer.unref();
}

let code;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`chaos: ${err?.stack ?? err}\n`);
  code = 2;
}
await cleanup();
process.exit(code);
