import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer as netCreateServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer, type ConnectionOptions, type TlsOptions as NodeTlsOptions } from 'node:tls';
import { ConfigError } from '../protocol/index.js';

/**
 * One process's TLS identity and trust: its certificate and key, and the CA that signs its peers.
 * With a CA, listeners that take peers of our own (the control port, an FS's data port) ask for a
 * client certificate signed by it (mutual TLS); dialers present theirs and check the listener's.
 */
export interface TlsOptions {
  cert?: string | Buffer;
  key?: string | Buffer;
  /** CA bundle that signs the peers; without it, Node's default roots check the peer. */
  ca?: string | Buffer;
  /** On the AS client port: ask every client for a certificate signed by `ca`. */
  requireClientCert?: boolean;
  /** Name the dialled certificate must carry, when it differs from the host dialled. */
  servername?: string;
}

export interface TlsFiles {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  requireClientCert?: boolean;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read TLS ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

/** Reads the files named; undefined when none is. A certificate without its key (or the reverse) is refused. */
export function loadTlsFiles(f: TlsFiles): TlsOptions | undefined {
  if (!f.certFile && !f.keyFile && !f.caFile) return undefined;
  if (!f.certFile !== !f.keyFile) throw new ConfigError('give --tls-cert and --tls-key together: a certificate is useless without its key');
  return {
    cert: f.certFile ? readPem(f.certFile, 'certificate') : undefined,
    key: f.keyFile ? readPem(f.keyFile, 'key') : undefined,
    ca: f.caFile ? readPem(f.caFile, 'CA bundle') : undefined,
    requireClientCert: f.requireClientCert,
  };
}

/** A listener for `onConnection`: TLS when `tls` has a certificate, plain TCP otherwise. */
export function createListener(
  tls: TlsOptions | undefined,
  opts: { mutual: boolean; handshakeTimeoutMs: number },
  onConnection: (socket: Socket) => void,
): Server {
  if (!tls?.cert) return netCreateServer(onConnection);
  if (!tls.key) throw new ConfigError('a TLS certificate needs its key (tls.key)');
  const mutual = opts.mutual && tls.ca !== undefined;
  const o: NodeTlsOptions & { handshakeTimeout: number } = {
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    requestCert: mutual,
    rejectUnauthorized: mutual,
    handshakeTimeout: opts.handshakeTimeoutMs,
    minVersion: 'TLSv1.2',
  };
  const server = tlsCreateServer(o, onConnection);
  // A failed handshake (no certificate, wrong CA, plain bytes) only ends that socket.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return server;
}

export interface DialOptions {
  host: string;
  port: number;
  tls?: TlsOptions;
}

/**
 * Dials plain TCP or TLS; `onReady` runs once the socket can carry frames (after the TLS handshake
 * and the certificate check).
 */
export function dial(o: DialOptions, onReady: () => void): Socket {
  if (!o.tls) {
    const s = netConnect({ host: o.host, port: o.port });
    s.once('connect', onReady);
    return s;
  }
  const c: ConnectionOptions = {
    host: o.host,
    port: o.port,
    ca: o.tls.ca,
    cert: o.tls.cert,
    key: o.tls.key,
    servername: o.tls.servername ?? (isIpLiteral(o.host) ? undefined : o.host),
    minVersion: 'TLSv1.2',
  };
  const s = tlsConnect(c);
  s.once('secureConnect', onReady);
  return s;
}

function isIpLiteral(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
