/**
 * Switchboard's client SDK as a load generator (scenarios 2 and 3): one Client, one connection,
 * `inflight` closed-loop callers of client.call(ECHO, body).
 */
import { argValue, handle, onShutdown, ready } from '../child-runtime.mjs';
import { promiseDriver, sleep, timedRun } from '../meter.mjs';
import { dist } from '../paths.mjs';
import { payload } from '../payload.mjs';

// --key 11 calls the contract-bound echo instead (scenario sb-direct-contract).
const ECHO = Number(argValue('key', '1'));
const { Client } = await import(dist('index.js'));
const port = Number(argValue('port'));

const { tlsFromDir } = await import('../tls-dir.mjs');
const tlsDir = argValue('tls-dir');
const client = await Client.connect({ host: '127.0.0.1', port, tls: tlsDir ? tlsFromDir(tlsDir, 'client').tls : undefined });
// The path may need a moment (an FS still registering with the AS): try, bounded.
for (let i = 0; ; i++) {
  try {
    await client.call(ECHO, payload(0), { timeoutMs: 2000 });
    break;
  } catch (err) {
    if (i >= 50) throw new Error(`switchboard client: the echo service does not answer: ${err.message}`, { cause: err });
    await sleep(100);
  }
}

handle('run', (o) => timedRun(o, promiseDriver(o.inflight, (seq) => client.call(ECHO, payload(seq)))));
onShutdown(() => client.close());
ready();
