/**
 * The scenarios. Each start() launches its processes (server side first, then one client process)
 * and returns the client and the processes whose CPU is counted: `servers` entries are
 * { role, child } or, for several processes counted as one role, { role, children }.
 *
 * Optional fields: available() (sync or async) says whether it can run here, { ok, reason };
 * fixedInflight and inflightLabel for a scenario whose load does not follow the round's in-flight
 * count (it then runs once per round and body size, with the round's largest count).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCerts } from '../../scripts/lib/certs.mjs';
import { findHaproxy, startHaproxy } from './haproxy.mjs';
import { findNginx, startNginx } from './nginx.mjs';
import { DIST } from './paths.mjs';

const require = createRequire(import.meta.url);

/** The SDK's piece size: the first 8 KiB of a batch leave at once (src/client, src/function-server). */
const SDK_PIECE_BYTES = 8192;
export const MANY = { connections: 32, per: 8 };

/** An AS with `fsCount` FSs registered over its control port; resolves once all are available. */
async function asWithFs(children, o, tag, { fsCount = 1, asArgs = [], fsArgs = [] } = {}) {
  const as = await children.fork(`sb-as${tag}`, 'sb-application-server', ['--log-level', o.logLevel, '--expect-fs', String(fsCount), ...asArgs]);
  const available = as.waitFor('fs-available', { timeoutMs: 20_000 });
  const fss = [];
  for (let i = 1; i <= fsCount; i++) {
    const suffix = fsCount > 1 ? `-${i}` : '';
    fss.push(await children.fork(`sb-fs-via-as${tag}${suffix}`, 'sb-function-server', ['--name', `bench-fs-via-as${tag}${suffix}`, '--as', String(as.info.controlPort), '--log-level', o.logLevel, ...fsArgs]));
  }
  await available;
  return { as, fss };
}

/** Whether the built client knows director mode: dist/ must mention mode 'direct' at all. */
function distHasDirectMode() {
  const dir = fileURLToPath(DIST);
  const files = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.js')) files.push(join(d, e.name));
    }
  };
  walk(dir);
  return files.some((f) => /['"]direct['"]/.test(readFileSync(f, 'utf8')));
}

/** haproxy's binary and version for the scenarios that put it in the middle, or why they cannot run. */
function haproxyAvailable() {
  const h = findHaproxy();
  return h ? { ok: true, version: h.version, bin: h.bin } : { ok: false, reason: 'haproxy is not on PATH (npm run bench:setup, or on Debian: apt-get install haproxy)' };
}

export const SCENARIOS = [
  {
    key: 'raw',
    name: 'raw direct',
    describe: 'hand-written client → hand-written echo server (same header, msgpack), one write per batch',
    async start(children) {
      const server = await children.fork('raw-server', 'raw-server');
      const client = await children.fork('raw-client', 'raw-client', ['--port', String(server.info.port)]);
      return { client, servers: [{ role: 'server', child: server }] };
    },
  },
  {
    key: 'raw-best',
    name: 'raw best-effort',
    describe: `as raw direct, but batches leave in pieces (first ${SDK_PIECE_BYTES / 1024} KiB at once, then ${(8 * SDK_PIECE_BYTES) / 1024} KiB), as the SDK writes`,
    async start(children) {
      const pieces = ['--pieces', String(SDK_PIECE_BYTES)];
      const server = await children.fork('raw-best-server', 'raw-server', pieces);
      const client = await children.fork('raw-best-client', 'raw-client', ['--port', String(server.info.port), ...pieces]);
      return { client, servers: [{ role: 'server', child: server }] };
    },
  },
  {
    key: 'sb-direct',
    name: 'switchboard direct',
    describe: 'Client SDK → FunctionServer data port (no AS)',
    async start(children, o) {
      const fs = await children.fork('sb-fs-direct', 'sb-function-server', ['--name', 'bench-fs-direct', '--log-level', o.logLevel]);
      const client = await children.fork('sb-client-direct', 'sb-client', ['--port', String(fs.info.port)]);
      return { client, servers: [{ role: 'FS', child: fs }] };
    },
  },
  {
    key: 'sb-direct-contract',
    name: 'direct, contract',
    describe: 'as switchboard direct, but the service is bound to a contract whose zod schema the FS checks on every request',
    async start(children, o) {
      const fs = await children.fork('sb-fs-direct-contract', 'sb-function-server', ['--name', 'bench-fs-direct-contract', '--log-level', o.logLevel, '--contract']);
      const client = await children.fork('sb-client-direct-contract', 'sb-client', ['--port', String(fs.info.port), '--key', '11']);
      return { client, servers: [{ role: 'FS', child: fs }] };
    },
  },
  {
    key: 'sb-as',
    name: 'switchboard via AS',
    describe: 'Client SDK → ApplicationServer → FunctionServer (three processes)',
    async start(children, o) {
      const { as, fss } = await asWithFs(children, o, '');
      const client = await children.fork('sb-client-as', 'sb-client', ['--port', String(as.info.port)]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fss[0] }] };
    },
  },
  {
    key: 'sb-as-many',
    name: 'via AS, 32 clients',
    describe: `${MANY.connections} Client connections × ${MANY.per} in flight (fixed) → ApplicationServer → 3 FunctionServers`,
    fixedInflight: MANY.connections * MANY.per,
    inflightLabel: `${MANY.connections}×${MANY.per}`,
    async start(children, o) {
      const { as, fss } = await asWithFs(children, o, '-many', { fsCount: 3 });
      const client = await children.fork('sb-client-many', 'sb-client-many', ['--port', String(as.info.port), '--connections', String(MANY.connections), '--per', String(MANY.per)]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS×3', children: fss }] };
    },
  },
  {
    key: 'director',
    name: 'director (SDK direct)',
    describe: "Client.connect({ endpoints: [AS client port], mode: 'direct' }) → FunctionServer, the AS only naming it",
    available() {
      try {
        if (!distHasDirectMode()) return { ok: false, reason: "dist/ has no director mode yet (nothing in it mentions mode 'direct'); rebuild (npm run build) once it lands in src/client" };
      } catch (err) {
        return { ok: false, reason: `cannot read dist/: ${err.message}` };
      }
      return { ok: true };
    },
    async start(children, o) {
      const { as, fss } = await asWithFs(children, o, '-director');
      const client = await children.fork('sb-client-director', 'sb-client', ['--port', String(as.info.port), '--mode', 'direct']);
      // Director mode means the calls skip the AS: an SDK that ignores `mode` would measure sb-as again.
      const PROBE = 200;
      const before = (await as.request({ type: 'served' }, 5000)).served;
      await client.request({ type: 'probe', n: PROBE }, 20_000);
      const through = (await as.request({ type: 'served' }, 5000)).served - before;
      if (through >= PROBE / 2) throw new Error(`Client.connect accepted mode 'direct', but ${through} of ${PROBE} calls went through the AS: no director mode in this build`);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fss[0] }] };
    },
  },
  {
    key: 'sb-http',
    name: 'via AS, HTTP ingress',
    describe: 'autocannon, HTTP/1.1 keep-alive, JSON body → the AS HTTP ingress → FunctionServer (msgpack)',
    async start(children, o) {
      const { as, fss } = await asWithFs(children, o, '-http', { asArgs: ['--http'] });
      const client = await children.fork('http-client', 'http-client', ['--port', String(as.info.httpPort)]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fss[0] }] };
    },
  },
  {
    key: 'sb-as-tls',
    name: 'via AS, TLS + secret',
    describe: 'as via AS, with TLS on every hop (mutual TLS AS↔FS) and a join secret',
    available() {
      try {
        // A fresh directory per run, removed at exit.
        const dir = mkdtempSync(join(tmpdir(), 'sb-bench-tls-'));
        process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
        makeTestCerts(dir);
        writeFileSync(join(dir, 'join.secret'), 'bench-join-secret-0123456789\n', { mode: 0o600 });
        return { ok: true, dir };
      } catch (err) {
        return { ok: false, reason: `cannot make test certificates with openssl: ${err.message}` };
      }
    },
    async start(children, o, avail) {
      const tls = ['--tls-dir', avail.dir];
      const { as, fss } = await asWithFs(children, o, '-tls', { asArgs: tls, fsArgs: tls });
      const client = await children.fork('sb-client-as-tls', 'sb-client', ['--port', String(as.info.port), ...tls]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fss[0] }] };
    },
  },
  {
    key: 'node-relay',
    name: 'node relay (pipe)',
    describe: 'raw client → minimal Node TCP relay (net, socket.pipe both ways, no framing) → raw echo server',
    async start(children) {
      const server = await children.fork('raw-server-node-relay', 'raw-server');
      const relay = await children.fork('node-relay', 'node-relay', ['--upstream', String(server.info.port)]);
      const client = await children.fork('raw-client-node-relay', 'raw-client', ['--port', String(relay.info.port)]);
      return { client, servers: [{ role: 'proxy', child: relay }, { role: 'server', child: server }] };
    },
  },
  {
    key: 'haproxy',
    name: 'haproxy (tcp)',
    describe: 'raw client → haproxy mode tcp, 1 thread → raw echo server',
    available: haproxyAvailable,
    async start(children, o, avail) {
      const server = await children.fork('raw-server-haproxy', 'raw-server');
      const proxy = await startHaproxy(children, avail.bin, server.info.port);
      const client = await children.fork('raw-client-haproxy', 'raw-client', ['--port', String(proxy.port)]);
      return { client, servers: [{ role: 'proxy', child: proxy.child }, { role: 'server', child: server }] };
    },
  },
  {
    key: 'sb-haproxy',
    name: 'SDK via haproxy',
    describe: 'Client SDK → haproxy mode tcp, 1 thread → FunctionServer data port: the AS hop swapped for haproxy, same ends as via AS',
    available: haproxyAvailable,
    async start(children, o, avail) {
      const fs = await children.fork('sb-fs-haproxy', 'sb-function-server', ['--name', 'bench-fs-haproxy', '--log-level', o.logLevel]);
      const proxy = await startHaproxy(children, avail.bin, fs.info.port);
      const client = await children.fork('sb-client-haproxy', 'sb-client', ['--port', String(proxy.port)]);
      return { client, servers: [{ role: 'proxy', child: proxy.child }, { role: 'FS', child: fs }] };
    },
  },
  {
    key: 'nginx',
    name: 'nginx (stream)',
    describe: 'raw client → nginx stream proxy, 1 worker process → raw echo server',
    available() {
      return findNginx();
    },
    async start(children, o, avail) {
      const server = await children.fork('raw-server-nginx', 'raw-server');
      const proxy = await startNginx(children, avail, server.info.port);
      const client = await children.fork('raw-client-nginx', 'raw-client', ['--port', String(proxy.port)]);
      return { client, servers: [{ role: 'proxy', child: proxy.child }, { role: 'server', child: server }] };
    },
  },
  {
    key: 'moleculer',
    name: 'moleculer (tcp)',
    describe: 'two brokers, TCP transporter, static URLs, msgpackr serializer, broker.call',
    available() {
      try {
        const version = String(require('moleculer').MOLECULER_VERSION);
        if (!version.startsWith('0.15')) return { ok: false, reason: `moleculer ${version} is installed, the bench wants 0.15` };
        return { ok: true, version: `moleculer ${version}` };
      } catch (err) {
        return { ok: false, reason: `moleculer is not installed (npm install -D moleculer@0.15): ${err.message}` };
      }
    },
    async start(children) {
      const server = await children.fork('moleculer-server', 'moleculer-server');
      const client = await children.fork('moleculer-client', 'moleculer-client', ['--port', String(server.info.port), '--node', server.info.nodeID]);
      return { client, servers: [{ role: 'server', child: server }] };
    },
  },
];

/** The scenarios every ratio is taken against: the best of them in each round is "best raw". */
export const RAW_KEYS = ['raw', 'raw-best'];
