/**
 * Many clients in one process (scenario sb-as-many): --connections Client instances, each its own
 * connection to the AS, with --per requests in flight on each (32 × 8 by default), all in one
 * closed loop. The in-flight count the runner asks for does not apply: it is fixed here.
 */
import { argValue, handle, onShutdown, ready } from '../child-runtime.mjs';
import { promiseDriver, sleep, timedRun } from '../meter.mjs';
import { dist } from '../paths.mjs';
import { payloadOf } from '../payload.mjs';

const ECHO = 1;
const { Client } = await import(dist('index.js'));
const port = Number(argValue('port'));
const connections = Number(argValue('connections', '32'));
const per = Number(argValue('per', '8'));

const clients = await Promise.all(Array.from({ length: connections }, () => Client.connect({ host: '127.0.0.1', port })));
for (let i = 0; ; i++) {
  try {
    await Promise.all(clients.map((c) => c.call(ECHO, payloadOf()(0), { timeoutMs: 2000 })));
    break;
  } catch (err) {
    if (i >= 50) throw new Error(`switchboard clients: the echo service does not answer: ${err.message}`, { cause: err });
    await sleep(100);
  }
}

handle('run', (o) => {
  const body = payloadOf(o.bodyBytes);
  // Worker w calls on connection w % connections: `per` workers on each.
  return timedRun(o, promiseDriver(connections * per, (seq, w) => clients[w % connections].call(ECHO, body(seq))));
});
onShutdown(() => Promise.all(clients.map((c) => c.close())));
ready({ connections, per });
