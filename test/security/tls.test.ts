import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChannelClosedError, Client, ConnectError, encodeRequest, type FunctionServerInfo, type TlsOptions } from '../../src/index.js';
import { makeTestCerts, type TestCerts } from '../fixtures/certs.js';
import { backgroundEcho, expectTrafficUnharmed, useHarness, waitFor, waitForAvailable } from '../fixtures/cluster.js';
import { JOIN_SECRET, OTHER_SECRET, captureLogger } from './clients-helpers.js';

const h = useHarness();
let certs: TestCerts;

beforeAll(() => {
  certs = makeTestCerts();
});
afterAll(() => certs?.remove());

const HOST = '127.0.0.1';

/** The AS: its certificate, and the CA that signs its FSs (mutual TLS on the control port and pool connections). */
const asTls = (extra: Partial<TlsOptions> = {}): TlsOptions => ({ cert: certs.server.cert, key: certs.server.key, ca: certs.ca, ...extra });
/** An FS: a certificate signed by the same CA, and the CA to check the AS with. */
const fsTls = (): TlsOptions => ({ cert: certs.client.cert, key: certs.client.key, ca: certs.ca });

/** A TLS client of the AS, with its background echo (stopped at teardown). */
async function tlsBackground(tls: TlsOptions): Promise<ReturnType<typeof backgroundEcho>> {
  const c = await h.client({ tls });
  const bg = backgroundEcho(c);
  h.defer(() => bg.stop());
  await waitFor(() => bg.ok() >= 10, 'background traffic over TLS');
  return bg;
}

/** The error a promise rejects with (it must reject). */
function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => {
      throw new Error('it succeeded; it should have failed');
    },
    (e: Error) => e,
  );
}

describe('TLS on every hop', () => {
  it('client → AS → FS over TLS and mutual TLS; the client port speaks only TLS', async () => {
    await h.cluster({ tls: asTls() }, [{ name: 'fs-tls', tls: fsTls() }]);
    const c = await h.client({ tls: { ca: certs.ca } });
    expect(await c.call(1, { over: 'tls' })).toEqual({ over: 'tls' });
    expect(h.as.clientConnections).toBe(1);

    // A plain TCP peer that sends a Switchboard request gets no Switchboard frame back.
    const plain = await h.raw();
    plain.write(encodeRequest(1, 1, 'plain'));
    await plain.waitClosed(6000);
    expect(plain.frames).toEqual([]);
    expect(h.as.closedConnections().client.get('protocol')).toBe(0); // never got as far as the frame parser
    expect(await c.call(1, 'still')).toBe('still');
  });

  it('large batches over TLS: frames of 40 KB sent together (a gathered writev on every hop) arrive whole and in order', async () => {
    await h.cluster({ tls: asTls() }, [{ name: 'fs-tls', tls: fsTls() }]);
    const c = await h.client({ tls: { ca: certs.ca } });
    const bodies = Array.from({ length: 8 }, (_, i) => ({ i, pad: String.fromCharCode(97 + i).repeat(40_000) }));
    for (let round = 0; round < 3; round++) expect(await Promise.all(bodies.map((b) => c.call(1, b)))).toEqual(bodies);
  });

  it('an FS with a rogue certificate, or none, is never registered; a registered one keeps serving', async () => {
    await h.cluster({ tls: asTls() }, [{ name: 'fs-tls', tls: fsTls() }]);
    const bg = await tlsBackground({ ca: certs.ca });
    const joined: string[] = [];
    h.as.on('fs-joined', (i: FunctionServerInfo) => joined.push(i.id));
    const rogueLog = captureLogger();
    const bareLog = captureLogger();
    const control = { host: HOST, port: h.controlPort };
    const common = { register: false, applicationServer: control, reconnectBaseMs: 20, reconnectCapMs: 100 } as const;
    const rogue = await h.startFs({ name: 'fs-rogue', tls: { cert: certs.rogue.cert, key: certs.rogue.key, ca: certs.ca }, logger: rogueLog.logger, ...common });
    const bare = await h.startFs({ name: 'fs-bare', tls: { ca: certs.ca }, logger: bareLog.logger, ...common });
    let registered = 0;
    rogue.on('registered', () => registered++);
    bare.on('registered', () => registered++);
    const lost = (l: typeof rogueLog): { reason: unknown; err: unknown }[] =>
      l.lines.filter((x) => x.msg === 'control link to the application server lost; will register again').map((x) => ({ reason: x.reason, err: x.err }));
    await waitFor(() => lost(rogueLog).length >= 2 && lost(bareLog).length >= 2, 'both FSs to be turned away twice');
    // The AS's TLS layer turned them away before any frame: the FS without a certificate is told so
    // by a TLS alert; the rogue one's connection is closed under its HELLO, which is never answered.
    expect(String(lost(bareLog)[0].err)).toMatch(/alert certificate required/);
    expect(lost(rogueLog)[0].reason).toMatch(/^(remote|error)$/);
    expect(rogueLog.lines.some((x) => x.msg === 'registered with the application server')).toBe(false);
    expect(registered).toBe(0);
    expect(joined).toEqual([]);
    expect(h.as.listFunctionServers().map((f) => [f.id, f.state])).toEqual([['fs-tls', 'available']]);
    expect(h.as.controlConnections).toBe(1);
    await expectTrafficUnharmed(bg);
  });

  it('a client that trusts the rogue CA cannot connect (ConnectError)', async () => {
    await h.cluster({ tls: asTls() }, [{ name: 'fs-tls', tls: fsTls() }]);
    const bg = await tlsBackground({ ca: certs.ca });
    const e = await failure(Client.connect({ port: h.port, tls: { ca: certs.rogueCa } }));
    expect(e).toBeInstanceOf(ConnectError);
    expect(e.code).toBe('SB_ERR_CONNECT');
    expect(e.message).toMatch(/self-signed|unable to verify|certificate/i);
    const plainClient = await failure(
      Client.connect({ port: h.port, connectTimeoutMs: 1000 }).then(async (c) => {
        try {
          await c.call(1, 'plain client', { timeoutMs: 500 });
        } finally {
          await c.close();
        }
      }),
    );
    expect(plainClient).toBeDefined(); // a client without TLS gets nowhere either
    await expectTrafficUnharmed(bg);
  });

  it('with requireClientCert, a client without a certificate fails and one with the CA-signed certificate works', async () => {
    await h.cluster({ tls: asTls({ requireClientCert: true }) }, [{ name: 'fs-tls', tls: fsTls() }]);
    const withCert = { ca: certs.ca, cert: certs.client.cert, key: certs.client.key };
    const bg = await tlsBackground(withCert);
    // TLS 1.3 checks the client's certificate after the client considers itself connected, so the
    // refusal may come at connect or as the connection closing under the first call.
    const noCert = await failure(
      Client.connect({ port: h.port, tls: { ca: certs.ca } }).then(async (c) => {
        try {
          await c.call(1, 'no cert', { timeoutMs: 2000 });
        } finally {
          await c.close();
        }
      }),
    );
    expect(noCert instanceof ConnectError || noCert instanceof ChannelClosedError, `${noCert.name}: ${noCert.message}`).toBe(true);
    expect(noCert.message).toMatch(/certificate required|alert|closed/i);
    const rogueCert = await failure(
      Client.connect({ port: h.port, tls: { ca: certs.ca, cert: certs.rogue.cert, key: certs.rogue.key } }).then(async (c) => {
        try {
          await c.call(1, 'rogue cert', { timeoutMs: 2000 });
        } finally {
          await c.close();
        }
      }),
    );
    expect(rogueCert instanceof ConnectError || rogueCert instanceof ChannelClosedError, `${rogueCert.name}: ${rogueCert.message}`).toBe(true);
    const ok = await h.client({ tls: withCert });
    expect(await ok.call(1, 'with cert')).toBe('with cert');
    await expectTrafficUnharmed(bg);
  });

  it('TLS and a join secret together: the FS must have both; a valid certificate with the wrong secret is refused', async () => {
    await h.cluster({ tls: asTls(), joinSecret: JOIN_SECRET }, [{ name: 'fs-both', tls: fsTls(), joinSecret: JOIN_SECRET }]);
    const bg = await tlsBackground({ ca: certs.ca });
    const c = await h.client({ tls: { ca: certs.ca } });
    expect(await c.call(1, 'both')).toBe('both');
    const log = captureLogger();
    const wrong = await h.startFs({ name: 'fs-wrong', register: false, applicationServer: { host: HOST, port: h.controlPort }, tls: fsTls(), joinSecret: OTHER_SECRET, reconnectBaseMs: 20, reconnectCapMs: 100, logger: log.logger });
    let registered = false;
    wrong.on('registered', () => (registered = true));
    await waitFor(() => (h.as.closedConnections().control.get('auth') ?? 0) >= 2, 'two control connections closed for auth');
    const failed = log.lines.filter((l) => l.msg === 'the application server and this FS could not prove the join secret to each other');
    expect(failed[0]).toMatchObject({ code: 'SB_ERR_AUTH_FAILED' });
    expect(registered).toBe(false);
    expect(h.as.listFunctionServers().map((f) => f.id)).toEqual(['fs-both']);
    await waitForAvailable(h.as, 1);
    await expectTrafficUnharmed(bg);
  });
});
