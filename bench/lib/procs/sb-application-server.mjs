/**
 * A Switchboard application server with the CLI's defaults. Tells the runner once an FS has
 * registered and is available (--expect-fs N: once N are), so the via-AS client starts on a
 * working path. Answers 'served' with the requests its FSs have answered so far (the director
 * scenario checks that its calls do not come this way).
 */
import { argValue, fail, handle, onShutdown, ready, send } from '../child-runtime.mjs';
import { dist } from '../paths.mjs';

const { ApplicationServer, createLogger } = await import(dist('index.js'));
const { tlsFromDir } = await import('../tls-dir.mjs');
const logger = createLogger('application-server', argValue('log-level', 'warn'));

const secure = tlsFromDir(argValue('tls-dir'), 'server');
// --http adds the HTTP ingress on a free port (scenario sb-http).
const http = process.argv.includes('--http') ? { httpPort: 0 } : {};
const as = new ApplicationServer({ host: '127.0.0.1', port: 0, controlPort: 0, logger, ...http, ...secure });
const ports = await as.start().catch(fail);
onShutdown(() => as.stop());
ready({ port: ports.port, controlPort: ports.controlPort, httpPort: ports.httpPort });

const expected = Number(argValue('expect-fs', '1'));
handle('served', () => ({ served: as.listFunctionServers().reduce((n, f) => n + f.served, 0) }));

const poll = setInterval(() => {
  const available = as.listFunctionServers().filter((f) => f.state === 'available');
  if (available.length >= expected) {
    clearInterval(poll);
    send({ type: 'fs-available', names: available.map((f) => f.name) });
  }
}, 20);
poll.unref();
