import { afterEach, describe, expect, it } from 'vitest';
import { ApplicationServer, Client, FunctionServer, Plugin, Service, type ServiceContext } from '../../src/index.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

const seen: { aborted: boolean; reason: unknown }[] = [];

@Plugin({ name: 'patient' })
class PatientPlugin {
  /** Waits until its signal says nobody wants the answer any more, and records that. */
  @Service(7001, { timeoutMs: 150 })
  wait(_body: unknown, ctx: ServiceContext): Promise<string> {
    return new Promise((resolve) => {
      ctx.signal.addEventListener('abort', () => {
        seen.push({ aborted: ctx.signal.aborted, reason: ctx.signal.reason });
        resolve('too late');
      });
    });
  }
}

describe('the handler AbortSignal', () => {
  it('is aborted with a TIMEOUT error when the service deadline passes, after the caller got TIMEOUT', async () => {
    const as = new ApplicationServer();
    const { port, controlPort } = await as.start();
    stops.push(() => as.stop());
    const up = new Promise<void>((r) => as.on('fs-state', (i) => i.state === 'available' && r()));
    const fs = new FunctionServer({ name: 'fs-abort', plugins: [PatientPlugin], applicationServer: { host: '127.0.0.1', port: controlPort } });
    await fs.start();
    stops.push(() => fs.stop());
    await up;
    const client = await Client.connect({ port });
    stops.push(() => client.close());
    await expect(client.call(7001, {})).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    expect(seen).toHaveLength(1);
    expect(seen[0].aborted).toBe(true);
    expect(seen[0].reason).toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    expect(fs.inflight).toBe(0);
  });
});
