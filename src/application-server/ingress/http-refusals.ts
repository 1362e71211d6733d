import { STATUS_CODES, maxHeaderSize, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * What the HTTP ingress answers for a request that Node's HTTP parser refused before any route ran
 * (the server's 'clientError'): the ingress's `{ code, message, status }` body, then a close, since
 * the parser cannot find where the next request starts. Every case is in docs/http-ingress.md §3.
 */
export function refuseUnparsable(err: Error & { code?: string }, socket: Duplex, closeWhenAnswered: (socket: Duplex) => void = (s) => s.destroy()): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  // Node's own rule, made stricter: an answer under way, or owed to an earlier request that has
  // fully arrived (pipelining), would be paired with this error by the caller. No answer for the
  // bytes that did not parse: the answers owed are written, then the connection closes.
  const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (pending && (pending.headersSent || pending.req.complete)) {
    closeWhenAnswered(socket);
    return;
  }
  const [http, message] = refusal(err);
  const body = JSON.stringify({ code: 'SB_ERR_BAD_REQUEST', message, status: 'BAD_REQUEST' });
  socket.end(
    `HTTP/1.1 ${http} ${STATUS_CODES[http]}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
  // A peer that does not read must not hold the connection open.
  setTimeout(() => socket.destroy(), 1000).unref();
}

function refusal(err: Error & { code?: string; reason?: string }): [number, string] {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'the request did not arrive in time: send the headers within 10 s and the whole request within 60 s'];
    case 'HPE_HEADER_OVERFLOW':
      return [431, `the request headers are too large: the path and every header name and value come to ${maxHeaderSize} bytes or more; send fewer or shorter headers`];
    case 'HPE_PAUSED_H2_UPGRADE':
      return [400, 'this port speaks HTTP/1.1 (and 1.0), not HTTP/2; send HTTP/1.1'];
    default:
      // The parser's own words say what is wrong: "Invalid character in chunk size", ...
      return [400, `the request is not valid HTTP/1.1: ${err.reason ?? err.message} (${err.code ?? 'no code'}); send it with an HTTP client library`];
  }
}

/**
 * Why a Content-Type's charset is refused, or undefined when it has none or names UTF-8. The
 * parameter name and value are case-insensitive, and the value may be quoted (RFC 9110 §8.3.2).
 */
export function badCharset(contentType: string): string | undefined {
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    let value = param.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value.toLowerCase() !== 'utf-8') return value;
  }
  return undefined;
}

/** Host or Content-Type sent more than once (RFC 9112 §3.2 asks a 400 for two Hosts), or undefined. */
export function repeatedHeader(rawHeaders: string[]): string | undefined {
  let host = 0;
  let type = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name === 'host' && ++host > 1) return 'Host';
    if (name === 'content-type' && ++type > 1) return 'Content-Type';
  }
  return undefined;
}

/** An answer written on Node's own response object (no route ran): the ingress's JSON error body. */
export function answerRaw(res: ServerResponse, http: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  res.writeHead(http, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
