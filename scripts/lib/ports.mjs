// Loopback ports for a process started later that must listen on a port known in advance (an FS
// that comes back on the same port, a CLI process, etcd). Types: ports.d.mts.
//
// Picked at random below Linux's ephemeral range (32768-60999 by default) and checked by binding:
// a port the kernel hands out for listen(0) or an outgoing connection, in this process or in a
// test file running beside it, can then never be the one a process is about to listen on.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const LOW = 20_000;
const SPAN = 12_000;

function tryBind(port, udp) {
  return new Promise((resolve) => {
    const s = udp ? createSocket('udp4') : createServer();
    s.once('error', () => resolve(undefined));
    const bound = () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    };
    if (udp) s.bind(port, '127.0.0.1', bound);
    else s.listen(port, '127.0.0.1', bound);
  });
}

/** A loopback port free now, not in `avoid`; UDP with `{ udp: true }`. */
export async function freePort(avoid = new Set(), { udp = false } = {}) {
  for (let i = 0; i < 50; i++) {
    const p = LOW + Math.floor(Math.random() * SPAN);
    if (avoid.has(p)) continue;
    if ((await tryBind(p, udp)) === p) return p;
  }
  // Fall back to the kernel's choice (bind port 0, read it, close).
  for (let i = 0; i < 10; i++) {
    const p = await tryBind(0, udp);
    if (p !== undefined && !avoid.has(p)) return p;
  }
  throw new Error('could not find a free loopback port: is 127.0.0.1 up, and are ports 20000-32000 taken?');
}

/** `n` distinct free TCP ports and `m` distinct free UDP ports, none of them equal. */
export async function freePorts(n, m = 0) {
  const used = new Set();
  const tcp = [];
  const udp = [];
  for (let i = 0; i < n; i++) {
    const p = await freePort(used);
    used.add(p);
    tcp.push(p);
  }
  for (let i = 0; i < m; i++) {
    const p = await freePort(used, { udp: true });
    used.add(p);
    udp.push(p);
  }
  return { tcp, udp };
}
