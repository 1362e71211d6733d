/**
 * The node-relay scenario's proxy: the cheapest TCP relay Node can be. Every accepted connection
 * dials the upstream server (--upstream <port> on 127.0.0.1), both sockets get TCP_NODELAY, and
 * bytes are piped both ways as they come: no framing, no parsing, no buffering of our own. It is
 * the floor of any proxy hop written in Node.
 */
import { connect, createServer } from 'node:net';
import { argValue, fail, onShutdown, ready } from '../child-runtime.mjs';

const upstream = Number(argValue('upstream'));
const sockets = new Set();

const server = createServer((a) => {
  const b = connect({ host: '127.0.0.1', port: upstream });
  a.setNoDelay(true);
  b.setNoDelay(true);
  sockets.add(a);
  sockets.add(b);
  // Whichever side errors or closes, both go.
  const end = () => {
    a.destroy();
    b.destroy();
    sockets.delete(a);
    sockets.delete(b);
  };
  for (const s of [a, b]) {
    s.on('error', end);
    s.on('close', end);
  }
  a.pipe(b);
  b.pipe(a);
});

server.on('error', fail);
if (Number.isInteger(upstream) && upstream > 0 && upstream < 65536) server.listen(0, '127.0.0.1', () => ready({ port: server.address().port }));
else fail(new Error(`--upstream wants the server's port, got "${argValue('upstream')}"`));
onShutdown(async () => {
  for (const s of sockets) s.destroy();
  server.close();
});
