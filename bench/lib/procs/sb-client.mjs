/**
 * Switchboard's client SDK as a load generator (sb-direct, sb-as, sb-as-tls, director): one Client,
 * one connection, `inflight` closed-loop callers of client.call(ECHO, body).
 *
 * --mode direct (scenario director) connects with Client.connect({ endpoints, mode: 'direct' }):
 * the AS's client port is only where the client learns its FSs. When that throws, the process
 * says why and exits, and the runner skips the scenario with that reason.
 */
import { argValue, fail, handle, onShutdown, ready } from '../child-runtime.mjs';
import { promiseDriver, sleep, timedRun } from '../meter.mjs';
import { dist } from '../paths.mjs';
import { payloadOf } from '../payload.mjs';

// --key 11 calls the contract-bound echo instead (scenario sb-direct-contract).
const ECHO = Number(argValue('key', '1'));
const { Client } = await import(dist('index.js'));
const port = Number(argValue('port'));
const mode = argValue('mode');

const { tlsFromDir } = await import('../tls-dir.mjs');
const tlsDir = argValue('tls-dir');
const tls = tlsDir ? tlsFromDir(tlsDir, 'client').tls : undefined;
let client;
try {
  client = mode
    ? await Client.connect({ endpoints: [{ host: '127.0.0.1', port }], mode, tls })
    : await Client.connect({ host: '127.0.0.1', port, tls });
} catch (err) {
  fail(new Error(`Client.connect(${mode ? `{ mode: '${mode}' }` : ''}) threw: ${err?.message ?? err}`));
  await new Promise(() => undefined); // fail() exits
}
const small = payloadOf();
// The path may need a moment (an FS still registering with the AS): try, bounded.
for (let i = 0; ; i++) {
  try {
    await client.call(ECHO, small(0), { timeoutMs: 2000 });
    break;
  } catch (err) {
    if (i >= 50) throw new Error(`switchboard client: the echo service does not answer: ${err.message}`, { cause: err });
    await sleep(100);
  }
}

handle('run', (o) => {
  const body = payloadOf(o.bodyBytes);
  return timedRun(o, promiseDriver(o.inflight, (seq) => client.call(ECHO, body(seq))));
});
// `n` calls one after another (the director scenario checks they did not go through the AS).
handle('probe', async (o) => {
  for (let i = 0; i < o.n; i++) await client.call(ECHO, small(i), { timeoutMs: 2000 });
  return { n: o.n };
});
onShutdown(() => client?.close());
ready();
