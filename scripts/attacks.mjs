#!/usr/bin/env node
// The attack replay: an AS and two good FSs as real processes (with a join secret), a steady good
// client in this process, and the attacks of docs/security.md one after another, each in its own
// window. Prints one table (attack, outcome, good-client calls and errors, p99, AS RSS peak) and
// exits 1 when a defence did not hold or the good client saw an error.
// Run after a build: `npm run build && node scripts/attacks.mjs`.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(DIST)) {
  process.stderr.write(`attacks: ${DIST} is missing; build first (npm run build)\n`);
  process.exit(2);
}
const { Client } = await import('../dist/client/index.js');
const { RoleProcess } = await import('../dist/cli/child-process.js');
const { freePort, getJson, now } = await import('./lib/chaos-roles.mjs');
const { percentile } = await import('./lib/chaos-load.mjs');
const peers = await import('./lib/attack-peers.mjs');

const WINDOW_MS = Number(process.env.ATTACK_WINDOW_MS ?? 4000);
const dir = mkdtempSync(join(tmpdir(), 'sb-attacks-'));
const secretFile = join(dir, 'join.secret');
writeFileSync(secretFile, `${'s3cret-'.repeat(6)}\n`, { mode: 0o600 });
const secret = readFileSync(secretFile).subarray(0, -1);
const roles = [];
const start = (label, args) => {
  const r = new RoleProcess(label, [...args, '--log-level', 'info']);
  roles.push(r);
  return r;
};
const stopAll = () => Promise.all(roles.map((r) => r.stop('SIGTERM', 3000).catch(() => undefined)));
process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

/** The AS's resident memory, from /proc (Linux). */
function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Prometheus text → value of one series (labels matched exactly as written). */
async function metric(adminPort, series) {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`).catch(() => undefined);
  if (!res) return 0;
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

// ── The cluster ──
const [port, controlPort, adminPort] = [await freePort(), await freePort(), await freePort()];
const as = start('as', [
  'as', '--port', String(port), '--control-port', String(controlPort), '--admin-port', String(adminPort),
  '--join-secret-file', secretFile, '--heartbeat-ms', '500', '--max-function-servers', '64',
  '--max-client-buffered-bytes', String(16 * 1024 * 1024), '--max-connections', '1500', '--forget-unavailable-ms', '5000',
]);
await as.waitForLog('application server listening');
for (const name of ['fs-1', 'fs-2']) {
  const fs = start(name, ['fs', '--as', `127.0.0.1:${controlPort}`, '--port', String(await freePort()), '--plugins', 'echo', '--name', name, '--join-secret-file', secretFile, '--heartbeat-ms', '500']);
  await fs.waitForLog('registered with the application server');
}

// ── The good client: 16 calls in flight, at most 800 per second, 2 s deadline, every answer checked ──
const client = await Client.connect({ port });
const good = { calls: 0, errors: [], latencies: [] };
let stopGood = false;
const goodWorkers = Array.from({ length: 16 }, async (_, w) => {
  while (!stopGood) {
    const t = now();
    const body = { w, n: good.calls };
    good.calls++;
    try {
      const got = await client.call(1, body, { timeoutMs: 2000 });
      if (got?.w !== w || got?.n !== body.n) good.errors.push(`wrong answer ${JSON.stringify(got)}`);
      else good.latencies.push(now() - t);
    } catch (err) {
      good.errors.push(`${err.code}: ${err.message}`);
    }
    const wait = 20 - (now() - t);
    if (wait > 1) await sleep(wait);
  }
});

const rows = [];
/** Runs one attack in its own window and records the good client's view of it. */
async function phase(name, attack) {
  const before = { calls: good.calls, errors: good.errors.length, lat: good.latencies.length };
  let peak = rssMb(as.pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(as.pid))), 50);
  const t0 = now();
  let outcome;
  let held;
  try {
    const r = await attack();
    outcome = r.outcome;
    held = r.held;
  } catch (err) {
    outcome = `script error: ${err.message}`;
    held = false;
  }
  const left = WINDOW_MS - (now() - t0);
  if (left > 0) await sleep(left);
  clearInterval(sampler);
  const lat = good.latencies.slice(before.lat).sort((a, b) => a - b);
  rows.push({ name, outcome, held, calls: good.calls - before.calls, errors: good.errors.length - before.errors, p99: percentile(lat, 99), rss: peak });
  process.stderr.write(`  ${name}: ${outcome}\n`);
}

await phase('none (baseline)', async () => ({ outcome: 'steady good load only', held: true }));

await phase('impostor HELLO without the secret', async () => {
  const r = await peers.outsiderHello(controlPort, peers.hello('fs-1', 1));
  return { outcome: `answered ${r.status} ${r.code ?? ''}, connection closed`, held: r.status === 'UNAUTHORIZED' && r.code === 'SB_ERR_AUTH_REQUIRED' };
});

await phase('impostor HELLO with the secret (same name)', async () => {
  const { conn, answers } = await peers.insiderHellos(controlPort, secret, [peers.hello('fs-1', await freePort())]);
  conn.destroy();
  const served = (await getJson(adminPort, '/functionservers'))?.find((f) => f.name === 'fs-1');
  return { outcome: `answered ${answers[0]?.status} ${answers[0]?.code}; fs-1 still ${served?.state} at ${served?.port}`, held: answers[0]?.code === 'SB_ERR_NAME_TAKEN' && served?.state === 'available' };
});

await phase('HELLO flood: 10,000 without the secret', async () => {
  const before = await metric(adminPort, 'switchboard_connections_closed_total{port="control",reason="auth"}');
  let sent = 0;
  for (let batch = 0; batch < 100; batch++) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const s = await peers.rawConnect(controlPort);
        if (!s) return;
        s.on('error', () => undefined);
        s.end(Buffer.from(await import('../dist/index.js').then((m) => m.encodeEventRequest(2, 1, peers.hello(`flood-${batch}-${i}`, 1), true))));
        sent++;
      }),
    );
  }
  await sleep(300);
  const refused = (await metric(adminPort, 'switchboard_connections_closed_total{port="control",reason="auth"}')) - before;
  const list = (await getJson(adminPort, '/functionservers')) ?? [];
  return { outcome: `${sent} sent, ${refused} closed unproven; registry holds ${list.length}`, held: list.length === 2 };
});

await phase('HELLO flood: 500 with the secret', async () => {
  // 100 proven control links, 5 HELLOs each: a link registers one FS, the registry at most 64.
  const bodies = Array.from({ length: 500 }, (_, i) => peers.hello(`insider-${i}`, 40_000 + i));
  const links = await Promise.all(Array.from({ length: 100 }, (_, l) => peers.insiderHellos(controlPort, secret, bodies.slice(l * 5, l * 5 + 5))));
  const answers = links.flatMap((l) => l.answers);
  const full = answers.filter((a) => a.code === 'SB_ERR_REGISTRY_FULL').length;
  const oneEach = answers.filter((a) => a.code === 'SB_ERR_BAD_REQUEST').length;
  const list = (await getJson(adminPort, '/functionservers')) ?? [];
  for (const l of links) l.conn.destroy();
  return {
    outcome: `${answers.length - full - oneEach} admitted, ${full} refused REGISTRY_FULL, ${oneEach} refused as a second FS on one link; registry holds ${list.length} (max 64), unreachable ones forgotten after 5 s`,
    held: list.length <= 64 && full > 0,
  };
});

await phase('client that never reads, 1 MiB bodies', async () => {
  const series = (reason) => `switchboard_connections_closed_total{port="client",reason="${reason}"}`;
  const before = { limit: await metric(adminPort, series('output-limit')), stall: await metric(adminPort, series('write-stall')) };
  // Key 2 answers after 300 ms: by then the AS has forwarded every request it read, and all the
  // answers come back at once, for a client that reads none of them.
  const s = await peers.neverReader(port, 120, 1024 * 1024, 2);
  let closed;
  for (let i = 0; i < 60 && closed === undefined; i++) {
    await sleep(100);
    if ((await metric(adminPort, series('output-limit'))) > before.limit) closed = 'output limit (16 MiB held)';
    else if ((await metric(adminPort, series('write-stall'))) > before.stall) closed = 'write-stall (read nothing for 3 heartbeats)';
  }
  s.destroy();
  return { outcome: closed ? `closed: ${closed}` : 'not closed', held: closed !== undefined };
});

await phase('black-hole FS (has the secret, never answers)', async () => {
  const t = now();
  const bh = start('black-hole', ['fs', '--as', `127.0.0.1:${controlPort}`, '--port', String(await freePort()), '--plugins', fileURLToPath(new URL('./lib/attack-plugins.mjs', import.meta.url)), '--name', 'black-hole', '--join-secret-file', secretFile, '--heartbeat-ms', '500']);
  await bh.waitForLog('registered with the application server');
  let ejectedAt;
  for (let i = 0; i < 80 && ejectedAt === undefined; i++) {
    await sleep(100);
    const f = (await getJson(adminPort, '/functionservers'))?.find((x) => x.name === 'black-hole');
    if (f?.state === 'ejected') ejectedAt = now();
  }
  const hedged = await metric(adminPort, 'switchboard_requests_hedged_total');
  return { outcome: ejectedAt ? `ejected ${((ejectedAt - t) / 1000).toFixed(1)} s after start; ${hedged} calls hedged meanwhile` : 'never ejected', held: ejectedAt !== undefined };
});

await phase('connection flood: 2,000 slot holders', async () => {
  const refusedBefore = await metric(adminPort, 'switchboard_client_connections_refused_total');
  // Peers that answer every heartbeat and ask for nothing: only maxConnections (and, after
  // clientIdleTimeoutMs, the idle rule) stands between them and every slot.
  const socks = (await Promise.all(Array.from({ length: 2000 }, () => peers.slotHolder(port)))).filter(Boolean);
  // The AS takes them off its accept queue at its own pace: wait until it holds its maximum.
  for (let i = 0; i < 50 && (await metric(adminPort, 'switchboard_client_connections')) < 1500; i++) await sleep(100);
  // Those past the maximum may still sit in the accept queue when it gets there: give the AS up to
  // 5 s to take (and refuse) them, rather than reading the count at once.
  const refusedNow = async () => (await metric(adminPort, 'switchboard_client_connections_refused_total')) - refusedBefore;
  for (let i = 0; i < 50 && (await refusedNow()) === 0; i++) await sleep(100);
  const refused = await refusedNow();
  const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status).catch(() => 0);
  const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.status).catch(() => 0);
  for (const s of socks) s.destroy();
  return { outcome: `${refused} refused at maxConnections 1500 when counted (the rest still in the accept queue); /readyz ${ready}, /healthz ${health}`, held: refused > 0 && ready === 503 && health === 200 };
});

await phase('slow frames: 300 half headers', async () => {
  const before = await metric(adminPort, 'switchboard_connections_closed_total{port="client",reason="read-timeout"}');
  const socks = (await Promise.all(Array.from({ length: 300 }, () => peers.rawConnect(port)))).filter(Boolean);
  for (const s of socks) {
    s.on('error', () => undefined);
    s.write(Buffer.from('5342010100', 'hex'));
  }
  await sleep(2000);
  const closed = (await metric(adminPort, 'switchboard_connections_closed_total{port="client",reason="read-timeout"}')) - before;
  for (const s of socks) s.destroy();
  return { outcome: `${closed} closed by the stalled-frame rule within 2 s`, held: closed >= 290 };
});

stopGood = true;
await Promise.all(goodWorkers);
await client.close();
await stopAll();
rmSync(dir, { recursive: true, force: true });

// ── The table ──
const pad = (s, n) => String(s).padEnd(n);
const lines = [
  `${pad('attack', 46)} ${pad('defence held', 12)} ${pad('good calls', 10)} ${pad('good errors', 11)} ${pad('good p99', 9)} ${pad('AS RSS peak', 11)} outcome`,
  `${'-'.repeat(46)} ${'-'.repeat(12)} ${'-'.repeat(10)} ${'-'.repeat(11)} ${'-'.repeat(9)} ${'-'.repeat(11)} -------`,
  ...rows.map((r) => `${pad(r.name, 46)} ${pad(r.held ? 'yes' : 'NO', 12)} ${pad(r.calls, 10)} ${pad(r.errors, 11)} ${pad(`${r.p99.toFixed(1)} ms`, 9)} ${pad(`${r.rss.toFixed(0)} MB`, 11)} ${r.outcome}`),
];
process.stdout.write(`\n${lines.join('\n')}\n`);
const failed = rows.filter((r) => !r.held || r.errors > 0);
if (good.errors.length) process.stdout.write(`\ngood-client errors (first 5): ${good.errors.slice(0, 5).join(' | ')}\n`);
process.stdout.write(failed.length ? `\n${failed.length} row(s) broke a must: defence held = yes and good errors = 0\n` : '\nevery defence held; the good client saw 0 errors\n');
process.exit(failed.length ? 1 : 0);
