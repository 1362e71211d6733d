import { describe, expect, it } from 'vitest';
import { Plugin, Service, type ServiceContext } from '../../src/index.js';
import { useHarness } from '../fixtures/cluster.js';

const h = useHarness();
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
    const [fs] = await h.cluster({}, [{ name: 'fs-abort', plugins: [PatientPlugin] }]);
    const client = await h.client();
    await expect(client.call(7001, {})).rejects.toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    expect(seen).toHaveLength(1);
    expect(seen[0].aborted).toBe(true);
    expect(seen[0].reason).toMatchObject({ code: 'SB_ERR_TIMEOUT' });
    expect(fs.inflight).toBe(0);
  });
});
