/**
 * The raw scenarios' server: a hand-written echo server on the Switchboard header and msgpack, no
 * framework. Decodes each request body and encodes the answer (the work an FS does), parses
 * frames in a loop and answers everything read in one 'data' event with one socket write; with
 * --pieces N (raw-best) the first N bytes of those answers leave at once and the rest in pieces of
 * 8 N, as the Switchboard FS writes.
 */
import { createServer } from 'node:net';
import { Packr } from 'msgpackr';
import { argValue, onShutdown, ready, fail } from '../child-runtime.mjs';
import { FLAG_REQUEST, FrameReader, FrameWriter, HEADER, MSGPACK } from '../raw-frames.mjs';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const sockets = new Set();
const pieceBytes = Number(argValue('pieces', '0'));

const server = createServer((socket) => {
  socket.setNoDelay(true);
  sockets.add(socket);
  const out = new FrameWriter({ write: (b) => socket.write(b), pieceBytes });
  const reader = new FrameReader((buf, off, total) => {
    const flags = buf[off + 3];
    if ((flags & FLAG_REQUEST) === 0) return;
    const id = buf.readUInt32BE(off + 8);
    const key = buf.readUInt32BE(off + 12);
    const value = packr.unpack(buf.subarray(off + HEADER, off + total));
    out.frame(MSGPACK, 0, id, key, packr.pack(value));
  });
  socket.on('data', (chunk) => {
    try {
      reader.push(chunk);
    } catch (err) {
      socket.destroy(err);
      return;
    }
    out.endBatch();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => sockets.delete(socket));
});

server.listen(0, '127.0.0.1', () => ready({ port: server.address().port }));
server.on('error', fail);
onShutdown(async () => {
  for (const s of sockets) s.destroy();
  server.close();
});
