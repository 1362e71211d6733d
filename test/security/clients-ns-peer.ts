import type { ChildProcess } from 'node:child_process';
import type { PeerNamespace } from '../fixtures/netns.js';
import { withTimeout } from '../fixtures/wait.js';

/**
 * A peer that runs inside a network namespace (so its address is not loopback). It writes frames
 * by hand and proves a secret with node:crypto exactly as src/security/handshake.ts specifies, so
 * it is an independent implementation of the wire, not the code under test. It prints one JSON
 * line and exits.
 *
 * env: HOST, PORT; SECRET (prove it when set); ACT = 'hello' (control port) or 'describe' (data port).
 */
const SCRIPT = String.raw`
import { connect } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { Packr } from 'msgpackr';
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const { HOST, PORT, SECRET, ACT, NAME } = process.env;
const giveUp = setTimeout(() => { process.stdout.write(JSON.stringify({ error: 'peer timed out' }) + '\n'); process.exit(3); }, 6000);
function frame(flags, kind, id, body) {
  const b = body === undefined ? Buffer.alloc(0) : packr.pack(body);
  const h = Buffer.alloc(24);
  h.writeUInt16BE(0x5342, 0); h[2] = 1; h[3] = flags; h[5] = kind;
  h.writeUInt32BE(id, 8); h.writeUInt32BE(b.length, 20);
  return Buffer.concat([h, b]);
}
const s = connect({ host: HOST, port: Number(PORT) });
let buf = Buffer.alloc(0);
const queue = [];
let wake = () => {};
let closed = false;
const closedP = new Promise((r) => s.once('close', () => { closed = true; wake(); r(); }));
s.on('error', () => {});
s.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 24) {
    const len = buf.readUInt32BE(20);
    if (buf.length < 24 + len) break;
    const f = buf.subarray(0, 24 + len);
    buf = buf.subarray(24 + len);
    if ((f[3] & 0x20) !== 0 && f[5] === 1) {
      if ((f[3] & 0x80) !== 0) s.write(frame(0x21, 1, f.readUInt32BE(8)));
      continue;
    }
    queue.push(f);
  }
  wake();
});
async function next() {
  while (queue.length === 0) {
    if (closed) return undefined;
    await new Promise((r) => (wake = r));
  }
  const f = queue.shift();
  return { flags: f[3], status: f[4], kind: f[5], requestId: f.readUInt32BE(8), body: f.length > 24 ? packr.unpack(f.subarray(24)) : undefined };
}
s.once('connect', async () => {
  const out = { local: s.localAddress };
  if (SECRET) {
    const ch = await next();
    out.challenge = ch && { kind: ch.kind, event: (ch.flags & 0x20) !== 0, realm: ch.body && ch.body.realm };
    const L = ch.body.nonce;
    const D = randomBytes(32);
    const key = Buffer.from(SECRET, 'utf8');
    const proof = (role) => createHmac('sha256', key).update('switchboard-auth-v1\0' + ch.body.realm + '\0' + role + '\0').update(L).update(D).digest();
    s.write(frame(0xe1, 7, 1, { mechanism: 'hmac-sha256', nonce: D, proof: proof('dialer') }));
    const a = await next();
    out.auth = a && { status: a.status, kind: a.kind, code: a.body && a.body.code, listenerProved: a.status === 0 && Buffer.compare(Buffer.from(a.body.proof), proof('listener')) === 0 };
  }
  if (ACT === 'hello') {
    s.write(frame(0xe1, 2, 1, { name: NAME, poolType: 0, endpoint: { host: HOST, port: 1 }, services: [{ key: 1 }] }));
  } else {
    s.write(frame(0xe1, 5, 1, { maxBodyBytes: 8388608 }));
  }
  const r = await next();
  out.first = r && { requestId: r.requestId, status: r.status, kind: r.kind, event: (r.flags & 0x20) !== 0, code: r.body && r.body.code, message: r.body && r.body.message, name: r.body && (r.body.fsId || r.body.name) };
  if (r && r.requestId === 0 && r.status !== 0) {
    await Promise.race([closedP, new Promise((res) => setTimeout(res, 2000))]);
    out.closedAfterRefusal = closed;
  }
  clearTimeout(giveUp);
  process.stdout.write(JSON.stringify(out) + '\n');
  s.destroy();
  process.exit(0);
});
`;

export interface PeerResult {
  local?: string;
  error?: string;
  challenge?: { kind: number; event: boolean; realm: string };
  auth?: { status: number; kind: number; code?: string; listenerProved: boolean };
  first?: { requestId: number; status: number; kind: number; event: boolean; code?: string; message?: string; name?: string };
  closedAfterRefusal?: boolean;
}

/** Runs the peer in `ns`, returns what it printed. The child is killed by PID if it outlives `timeoutMs`. */
export async function runNsPeer(ns: PeerNamespace, env: { HOST: string; PORT: number; SECRET?: string; ACT: 'hello' | 'describe'; NAME?: string }, timeoutMs = 7000): Promise<PeerResult> {
  const child: ChildProcess = ns.node(['--input-type=module', '-e', SCRIPT], {
    env: { ...process.env, HOST: env.HOST, PORT: String(env.PORT), SECRET: env.SECRET ?? '', ACT: env.ACT, NAME: env.NAME ?? 'ns-peer' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await withTimeout(exited, timeoutMs, 'the namespace peer to finish');
  } finally {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  }
  const line = stdout.trim().split('\n').pop();
  if (!line) throw new Error(`the namespace peer printed nothing (stderr: ${stderr.trim()})`);
  return JSON.parse(line) as PeerResult;
}
