// Reads the TLS scenario's files (made by scripts/lib/certs.mjs) into the options of a role.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** { tls, joinSecret } for `leaf` ('server' or 'client') from `dir`, or {} when dir is undefined. */
export function tlsFromDir(dir, leaf) {
  if (!dir) return {};
  const read = (f) => readFileSync(join(dir, f));
  return {
    tls: { cert: read(`${leaf}.pem`), key: read(`${leaf}.key`), ca: read('ca.pem') },
    joinSecret: read('join.secret').subarray(0, -1),
  };
}
