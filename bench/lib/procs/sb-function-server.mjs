/**
 * A Switchboard function server hosting the bundled echo plugin (service key 1). With --as it
 * registers with that application server's control port; without it, clients call its data port
 * directly (scenario 2).
 */
import { argValue, fail, onShutdown, ready } from '../child-runtime.mjs';
import { dist } from '../paths.mjs';

const { FunctionServer, createLogger, loadPluginModules } = await import(dist('index.js'));
const { tlsFromDir } = await import('../tls-dir.mjs');
const asEndpoint = argValue('as');
const logger = createLogger('function-server', argValue('log-level', 'warn'));

// --contract adds the contract-bound echo (key 11, a schema for the payload).
const plugins = await loadPluginModules(['echo', ...(process.argv.includes('--contract') ? [new URL('../contract-plugin.mjs', import.meta.url).pathname] : [])]);
const fs = new FunctionServer({
  name: argValue('name', `bench-fs-${process.pid}`),
  plugins,
  host: '127.0.0.1',
  port: 0,
  applicationServer: asEndpoint ? { host: '127.0.0.1', port: Number(asEndpoint) } : undefined,
  drainTimeoutMs: 1000,
  logger,
  ...tlsFromDir(argValue('tls-dir'), 'client'),
});
const addr = await fs.start().catch(fail);
onShutdown(() => fs.stop());
ready({ port: addr.port });
