/** Scenario 5's server: a Moleculer broker with an echo action, TCP transporter on a free loopback port. */
import { createRequire } from 'node:module';
import { fail, onShutdown, ready } from '../child-runtime.mjs';
import { brokerOptions } from '../moleculer-serializer.mjs';

const { ServiceBroker } = createRequire(import.meta.url)('moleculer');
const nodeID = `bench-mol-srv-${process.pid}`;
const broker = new ServiceBroker(brokerOptions(nodeID, []));
broker.createService({
  name: 'echo',
  actions: {
    echo(ctx) {
      return ctx.params;
    },
  },
});
await broker.start().catch(fail);
onShutdown(() => broker.stop());
ready({ port: broker.transit.tx.opts.port, nodeID });
