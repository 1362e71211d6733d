/**
 * An HTTP/1.1 load generator for the AS's HTTP ingress (scenario sb-http): one keep-alive socket
 * per caller, `inflight` closed-loop callers of POST /v1/call/1 with the JSON form of the payload.
 */
import { Agent, request } from 'node:http';
import { argValue, handle, onShutdown, ready } from '../child-runtime.mjs';
import { promiseDriver, sleep, timedRun } from '../meter.mjs';
import { payload } from '../payload.mjs';

const port = Number(argValue('port'));
const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

function call(seq) {
  const body = JSON.stringify(payload(seq));
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/v1/call/1', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`));
          else resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// The path may need a moment (an FS still registering with the AS): try, bounded.
for (let i = 0; ; i++) {
  try {
    await call(0);
    break;
  } catch (err) {
    if (i >= 50) throw new Error(`HTTP client: the echo service does not answer: ${err.message}`, { cause: err });
    await sleep(100);
  }
}

handle('run', (o) => timedRun(o, promiseDriver(o.inflight, call)));
onShutdown(() => agent.destroy());
ready();
