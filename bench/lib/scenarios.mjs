/**
 * The scenarios. Each start() launches its processes (server side first, then one client
 * process with one connection) and returns the client and the processes whose CPU is counted.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { makeTestCerts } from '../../scripts/lib/certs.mjs';
import { findHaproxy, startHaproxy } from './haproxy.mjs';
import { RESULTS_DIR } from './paths.mjs';

const require = createRequire(import.meta.url);

export const SCENARIOS = [
  {
    key: 'raw',
    name: 'raw direct',
    describe: 'hand-written client → hand-written echo server (same header, msgpack)',
    async start(children) {
      const server = await children.fork('raw-server', 'raw-server');
      const client = await children.fork('raw-client', 'raw-client', ['--port', String(server.info.port)]);
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
      const as = await children.fork('sb-as', 'sb-application-server', ['--log-level', o.logLevel]);
      const available = as.waitFor('fs-available', { timeoutMs: 20_000 });
      const fs = await children.fork('sb-fs-via-as', 'sb-function-server', ['--name', 'bench-fs-via-as', '--as', String(as.info.controlPort), '--log-level', o.logLevel]);
      await available;
      const client = await children.fork('sb-client-as', 'sb-client', ['--port', String(as.info.port)]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fs }] };
    },
  },
  {
    key: 'sb-http',
    name: 'via AS, HTTP ingress',
    describe: 'HTTP/1.1 keep-alive client, JSON body → the AS HTTP ingress → FunctionServer (msgpack)',
    async start(children, o) {
      const as = await children.fork('sb-as-http', 'sb-application-server', ['--log-level', o.logLevel, '--http']);
      const available = as.waitFor('fs-available', { timeoutMs: 20_000 });
      const fs = await children.fork('sb-fs-via-as-http', 'sb-function-server', ['--name', 'bench-fs-via-as-http', '--as', String(as.info.controlPort), '--log-level', o.logLevel]);
      await available;
      const client = await children.fork('http-client', 'http-client', ['--port', String(as.info.httpPort)]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fs }] };
    },
  },
  {
    key: 'sb-as-tls',
    name: 'via AS, TLS + secret',
    describe: 'as via AS, with TLS on every hop (mutual TLS AS↔FS) and a join secret',
    available() {
      try {
        const dir = join(RESULTS_DIR, 'tls');
        mkdirSync(dir, { recursive: true });
        makeTestCerts(dir);
        writeFileSync(join(dir, 'join.secret'), 'bench-join-secret-0123456789\n', { mode: 0o600 });
        return { ok: true, dir };
      } catch (err) {
        return { ok: false, reason: `cannot make test certificates with openssl: ${err.message}` };
      }
    },
    async start(children, o, avail) {
      const tls = ['--tls-dir', avail.dir];
      const as = await children.fork('sb-as-tls', 'sb-application-server', ['--log-level', o.logLevel, ...tls]);
      const available = as.waitFor('fs-available', { timeoutMs: 20_000 });
      const fs = await children.fork('sb-fs-via-as-tls', 'sb-function-server', ['--name', 'bench-fs-via-as-tls', '--as', String(as.info.controlPort), '--log-level', o.logLevel, ...tls]);
      await available;
      const client = await children.fork('sb-client-as-tls', 'sb-client', ['--port', String(as.info.port), ...tls]);
      return { client, servers: [{ role: 'AS', child: as }, { role: 'FS', child: fs }] };
    },
  },
  {
    key: 'haproxy',
    name: 'haproxy (tcp)',
    describe: 'raw client → haproxy mode tcp, 1 thread → raw echo server',
    available() {
      const h = findHaproxy();
      return h ? { ok: true, version: h.version, bin: h.bin } : { ok: false, reason: 'haproxy is not on PATH (Debian: apt-get install haproxy)' };
    },
    async start(children, o, avail) {
      const server = await children.fork('raw-server-haproxy', 'raw-server');
      const proxy = await startHaproxy(children, avail.bin, server.info.port);
      const client = await children.fork('raw-client-haproxy', 'raw-client', ['--port', String(proxy.port)]);
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
