/**
 * The raw load generator (scenarios raw, raw-best, haproxy, nginx): one connection, a fixed number
 * of requests in flight, each answer sends the next; every request encoded and every answer
 * decoded with msgpack. All requests made while handling one 'data' event leave in one socket
 * write; with --pieces N (raw-best) the first N bytes of that batch leave at once and the rest in
 * pieces of 8 N (see FrameWriter), as the Switchboard SDK writes.
 */
import { connect } from 'node:net';
import { Packr } from 'msgpackr';
import { argValue, fail, handle, onShutdown, ready } from '../child-runtime.mjs';
import { timedRun } from '../meter.mjs';
import { payloadOf } from '../payload.mjs';
import { FLAG_REQUEST, FLAG_TWO_WAY, FrameReader, FrameWriter, HEADER, MSGPACK } from '../raw-frames.mjs';

const ECHO = 1;
const SLOTS = 4096; // > the most requests in flight; ids are looked up by id % SLOTS
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const port = Number(argValue('port'));

const pieceBytes = Number(argValue('pieces', '0'));

const socket = connect({ host: '127.0.0.1', port });
socket.setNoDelay(true);
const out = new FrameWriter({ write: (b) => socket.write(b), pieceBytes });
let makeBody = payloadOf();
const startedAt = new Float64Array(SLOTS);
const idAt = new Uint32Array(SLOTS);
let seq = 0;
let outstanding = 0;
let target = 0;
let meter = null;
let whenDrained = null;

function enqueue() {
  seq = (seq + 1) >>> 0 || 1;
  const slot = seq % SLOTS;
  idAt[slot] = seq;
  startedAt[slot] = performance.now();
  out.frame(FLAG_REQUEST | FLAG_TWO_WAY | MSGPACK, 0, seq, ECHO, packr.pack(makeBody(seq)));
  outstanding++;
}

const reader = new FrameReader((buf, off, total) => {
  const id = buf.readUInt32BE(off + 8);
  const slot = id % SLOTS;
  if (idAt[slot] !== id) return;
  idAt[slot] = 0;
  outstanding--;
  const status = buf[off + 4];
  packr.unpack(buf.subarray(off + HEADER, off + total));
  if (status === 0) meter.record(performance.now() - startedAt[slot]);
  else meter.error(new Error(`status ${status}`));
  if (outstanding < target && meter.allow()) enqueue();
});

socket.on('data', (chunk) => {
  reader.push(chunk);
  out.endBatch();
  if (outstanding === 0 && whenDrained) {
    const done = whenDrained;
    whenDrained = null;
    done();
  }
});
socket.on('error', fail);
socket.on('close', () => fail(new Error('raw client: connection closed')));

handle('run', (o) =>
  timedRun(o, {
    start(m) {
      if (outstanding > 0) {
        // The last run's answers did not all come back: forget them, they will be ignored.
        idAt.fill(0);
        outstanding = 0;
      }
      meter = m;
      target = o.inflight;
      makeBody = payloadOf(o.bodyBytes);
      while (outstanding < target && m.allow()) enqueue();
      out.endBatch();
    },
    stop() {
      target = 0;
      return outstanding === 0 ? Promise.resolve() : new Promise((r) => (whenDrained = r));
    },
  }),
);

socket.once('connect', () => ready());
onShutdown(async () => {
  socket.removeAllListeners('close');
  socket.destroy();
});
