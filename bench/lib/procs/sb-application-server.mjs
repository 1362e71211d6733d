/**
 * A Switchboard application server with the CLI's defaults. Tells the runner once an FS has
 * registered and is available, so the via-AS client starts on a working path.
 */
import { argValue, fail, onShutdown, ready, send } from '../child-runtime.mjs';
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

const poll = setInterval(() => {
  const available = as.listFunctionServers().filter((f) => f.state === 'available');
  if (available.length > 0) {
    clearInterval(poll);
    send({ type: 'fs-available', names: available.map((f) => f.name) });
  }
}, 20);
poll.unref();
