// The attackers of the attack replay: raw peers that speak just enough of the protocol to do harm.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventKind, FrameConnection, FrameParser, decodeBody, encodeEventRequest, encodeEventResponse, encodeRequest, requestIdOf, statusOf, statusName } from '../../dist/index.js';
import { authenticateDialer } from '../../dist/security/index.js';

/** Connects a raw socket; resolves once connected (or undefined on error). */
export function rawConnect(port) {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(undefined));
  });
}

/** The first non-heartbeat frame a socket receives: { status, code } or 'closed'. */
export function firstAnswer(socket, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ status: 'none' }), timeoutMs);
    const parser = new FrameParser({
      maxBodyBytes: 1 << 20,
      onFrame: (f) => {
        if (f[5] === EventKind.HEARTBEAT || f[5] === EventKind.CHALLENGE) return;
        clearTimeout(timer);
        const body = decodeBody(f);
        resolve({ status: statusName(statusOf(f)), code: body?.code, id: requestIdOf(f) });
      },
      onError: () => undefined,
    });
    socket.on('data', (c) => parser.push(c));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ status: 'closed' });
    });
  });
}

/** A connection that answers every heartbeat and sends nothing else: it holds a slot as long as it can. */
export async function slotHolder(port) {
  const s = await rawConnect(port);
  if (!s) return undefined;
  s.on('error', () => undefined);
  const parser = new FrameParser({
    maxBodyBytes: 1 << 20,
    onFrame: (f) => {
      if (f[5] === EventKind.HEARTBEAT && (f[3] & 0x80) !== 0) s.write(encodeEventResponse(EventKind.HEARTBEAT, requestIdOf(f), undefined));
    },
    onError: () => undefined,
  });
  s.on('data', (c) => parser.push(c));
  return s;
}

export function hello(name, port, keys = [1]) {
  return { name, poolType: 0, standby: false, endpoint: { host: '127.0.0.1', port }, services: keys.map((key) => ({ key, idempotent: true })) };
}

/** A HELLO from someone without the join secret; resolves with what the AS answered. */
export async function outsiderHello(controlPort, body) {
  const s = await rawConnect(controlPort);
  if (!s) return { status: 'connect failed' };
  const answer = firstAnswer(s);
  s.write(encodeEventRequest(EventKind.HELLO, 1, body, true));
  const r = await answer;
  s.destroy();
  return r;
}

/**
 * A control link that holds the join secret (a compromised or misconfigured FS): proves the
 * secret, then sends each HELLO and collects the answers. Returns { link, answers }.
 */
export async function insiderHellos(controlPort, secret, bodies) {
  const s = await rawConnect(controlPort);
  const answers = [];
  let wake;
  const conn = new FrameConnection(s, { heartbeatMs: 0 });
  await authenticateDialer(conn, { secret, realm: 'join', timeoutMs: 3000 }, {
    onEvent: (f) => {
      const body = decodeBody(f);
      answers.push({ status: statusName(statusOf(f)), code: body?.code });
      wake?.();
    },
  });
  for (let i = 0; i < bodies.length; i++) {
    conn.send(encodeEventRequest(EventKind.HELLO, i + 10, bodies[i], true));
    if (i % 50 === 49) await sleep(1);
  }
  const end = Date.now() + 5000;
  while (answers.length < bodies.length && Date.now() < end) await new Promise((r) => ((wake = r), setTimeout(r, 50)));
  return { conn, answers };
}

/** A client that sends `n` calls of `key` (1 echo, 2 delayed echo) with `bytes`-byte bodies and never reads. */
export async function neverReader(port, n, bytes, key = 1) {
  const s = await rawConnect(port);
  s.on('error', () => undefined);
  s.pause();
  const pad = 'x'.repeat(bytes);
  for (let i = 1; i <= n; i++) s.write(encodeRequest(i, key, key === 2 ? { ms: 300, value: pad } : { pad }));
  return s;
}
