// Certificates for tests and the benchmark, made with Debian's openssl in a fresh temporary
// directory: a CA, two leaves it signs (for 127.0.0.1 and localhost), and a leaf signed by another CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ca(dir, name) {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`]);
  return readFileSync(join(dir, `${name}.pem`));
}

function leaf(dir, name, caName, cn) {
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}

/** Files: ca.pem, server.pem/.key, client.pem/.key, rogue.pem/.key (signed by rogue-ca.pem). */
export function makeTestCerts(dir = mkdtempSync(join(tmpdir(), 'sb-certs-'))) {
  const caPem = ca(dir, 'ca');
  const rogueCa = ca(dir, 'rogue-ca');
  return {
    dir,
    ca: caPem,
    caFile: join(dir, 'ca.pem'),
    server: leaf(dir, 'server', 'ca', 'switchboard-as'),
    client: leaf(dir, 'client', 'ca', 'switchboard-peer'),
    rogue: leaf(dir, 'rogue', 'rogue-ca', 'switchboard-as'),
    rogueCa,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
