import type { AddressInfo } from 'node:net';
import { ConfigError } from '../protocol/errors.js';

interface Listenable {
  listen(port: number, host: string, cb: () => void): unknown;
  once(event: 'error', cb: (err: Error) => void): unknown;
  off(event: 'error', cb: (err: Error) => void): unknown;
  address(): AddressInfo | string | null;
}

/** Listens and resolves with the bound port (useful with port 0); a bind failure says what to do. */
export function listenOn(server: Listenable, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error & { code?: string }): void => {
      const hint = err.code === 'EADDRINUSE' ? 'another process holds that port: stop it or pick another port (0 picks a free one)' : 'check the address';
      reject(new ConfigError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}; ${hint}`, { cause: err }));
    };
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
