export interface CertPair {
  cert: Buffer;
  key: Buffer;
  certFile: string;
  keyFile: string;
}

export interface TestCerts {
  dir: string;
  /** The cluster's CA: it signs the AS, the FSs and trusted clients. */
  ca: Buffer;
  caFile: string;
  /** A certificate for 127.0.0.1 and localhost, signed by the CA. */
  server: CertPair;
  /** Another leaf signed by the CA (an FS, a client). */
  client: CertPair;
  /** A leaf for 127.0.0.1 signed by a different CA: what an impostor would hold. */
  rogue: CertPair;
  rogueCa: Buffer;
  remove(): void;
}

export function makeTestCerts(dir?: string): TestCerts;
