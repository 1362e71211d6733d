/**
 * autocannon as the load generator for the AS's HTTP ingress (scenario sb-http): `inflight`
 * keep-alive connections, one request in flight on each (no pipelining), POST /v1/call/1 with the
 * JSON form of the payload. Each answer's latency goes into the same meter as every other scenario.
 */
import autocannon from 'autocannon';
import { argValue, handle, onShutdown, ready } from '../child-runtime.mjs';
import { timedRun } from '../meter.mjs';
import { payloadOf } from '../payload.mjs';

const url = `http://127.0.0.1:${Number(argValue('port'))}/v1/call/1`;
const request = (bodyBytes) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payloadOf(bodyBytes)(0)) });
let running;

/** A timedRun driver over one autocannon instance. */
function autocannonDriver(inflight, bodyBytes) {
  let instance;
  let finished;
  return {
    start(meter) {
      instance = autocannon({ url, ...request(bodyBytes), connections: inflight, pipelining: 1, duration: 3600, timeout: 10 });
      running = instance;
      finished = new Promise((resolve) => instance.on('done', resolve));
      instance.on('response', (_client, status, _bytes, ms) => {
        if (status === 200) meter.record(ms);
        else meter.error(new Error(`HTTP ${status}`));
      });
      instance.on('reqError', (err) => meter.error(err));
    },
    stop() {
      instance.stop();
      return finished.then(() => undefined);
    },
  };
}

// The path may need a moment (an FS still registering with the AS): autocannon's own check.
const check = await autocannon({ url, ...request(), connections: 1, amount: 1 });
if (check.non2xx > 0 || check.errors > 0) throw new Error(`HTTP client: the echo service does not answer through the HTTP ingress (${check.non2xx} non-2xx, ${check.errors} errors)`);

handle('run', (o) => timedRun(o, autocannonDriver(o.inflight, o.bodyBytes)));
onShutdown(() => running?.stop());
ready();
