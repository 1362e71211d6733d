/** Scenario 5's client: a second Moleculer broker that reaches the server by its static URL and calls echo.echo. */
import { createRequire } from 'node:module';
import { argValue, fail, handle, onShutdown, ready } from '../child-runtime.mjs';
import { promiseDriver, timedRun } from '../meter.mjs';
import { brokerOptions } from '../moleculer-serializer.mjs';
import { payload, payloadOf } from '../payload.mjs';

const { ServiceBroker } = createRequire(import.meta.url)('moleculer');
const url = `127.0.0.1:${argValue('port')}/${argValue('node')}`;
const broker = new ServiceBroker(brokerOptions(`bench-mol-cli-${process.pid}`, [url]));
await broker.start().catch(fail);
await broker.waitForServices(['echo'], 15_000).catch(fail);
await broker.call('echo.echo', payload(0));

handle('run', (o) => {
  const body = payloadOf(o.bodyBytes);
  return timedRun(o, promiseDriver(o.inflight, (seq) => broker.call('echo.echo', body(seq))));
});
onShutdown(() => broker.stop());
ready();
