import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { RateLimitedLog } from '../../src/common/rate-limited-log.js';
import { PairNode, type PairOptions } from '../../src/application-server/pair/pair-node.js';
import { rmemMax } from '../fixtures/kernel.js';

/*
 * What a PairNode says at start (docs/pair.md sections 1, 2 and 7): the warnings an operator must
 * see, on a real UDP socket on 127.0.0.1 whose sibling never answers.
 */

const HOST = '127.0.0.1';
const SECRET = Buffer.alloc(32, 0x5a);
const nodes: PairNode[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop(false)));
});

async function started(o: Partial<PairOptions>): Promise<{ node: PairNode; lines: Record<string, unknown>[] }> {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  // A long negotiation: the node stays initial and sends nothing that matters during the test.
  const node = new PairNode({ port: 0, peer: { host: HOST, port: 9 }, negotiationTimeoutMs: 600_000, ...o }, HOST, { host: HOST, port: 7100 }, logger, new RateLimitedLog(logger));
  nodes.push(node);
  await node.start();
  return { node, lines };
}

const warnings = (lines: Record<string, unknown>[]): string[] => lines.filter((l) => l.level === 40).map((l) => String(l.msg));

describe('PairNode at start', () => {
  it('--pair-insecure: warns at start what it means and what to do; with a secret, no such warning', async () => {
    const insecure = await started({ insecure: true });
    const said = warnings(insecure.lines).filter((m) => m.startsWith('the pair runs without a secret'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('any host that can send to the pair port can make this AS active or standby');
    expect(said[0]).toContain('--pair-secret-file');
    const secured = await started({ secret: SECRET });
    expect(warnings(secured.lines).filter((m) => m.startsWith('the pair runs without a secret'))).toEqual([]);
  });

  // 1 GiB is above any usual net.core.rmem_max, so the kernel gives less than asked.
  it.skipIf((rmemMax() ?? 2 ** 30) >= 2 ** 30)('a receive buffer smaller than asked (net.core.rmem_max) is logged at info, naming both sizes', async () => {
    const { lines } = await started({ secret: SECRET, recvBufferBytes: 2 ** 30 });
    const line = lines.find((l) => String(l.msg).startsWith('the pair socket got a smaller receive buffer than asked'));
    expect(line).toMatchObject({ level: 30, askedBytes: 2 ** 30, gotBytes: 2 * (rmemMax() as number) });
    expect(String(line?.msg)).toContain('net.core.rmem_max');
  });

  it('refuses a pair port or peer that is not a port (JavaScript callers get no type check)', () => {
    const logger = pino({ level: 'silent' });
    const make = (o: Record<string, unknown>) => () => new PairNode({ port: 0, peer: { host: HOST, port: 9 }, secret: SECRET, ...o } as PairOptions, HOST, { host: HOST, port: 7100 }, logger, new RateLimitedLog(logger));
    expect(make({ port: undefined })).toThrow(/pair port undefined must be a whole number from 0 to 65535/);
    expect(make({ port: 70_000 })).toThrow(/pair port 70000/);
    expect(make({ port: '7300' })).toThrow(/pair port "7300" must be a whole number/);
    expect(make({ peer: undefined })).toThrow(/pair peer undefined must be \{ host, port \}/);
    expect(make({ peer: { host: HOST } })).toThrow(/pair peer/);
    expect(make({ peer: { host: '', port: 9 } })).toThrow(/pair peer/);
    expect(make({ peer: { host: HOST, port: 0 } })).toThrow(/port 1 to 65535/);
    expect(make({})).not.toThrow();
  });

  it('refuses a recvBufferBytes outside 64 KiB to 1 GiB, saying the range', () => {
    const logger = pino({ level: 'silent' });
    expect(() => new PairNode({ port: 0, peer: { host: HOST, port: 9 }, secret: SECRET, recvBufferBytes: 1000 }, HOST, { host: HOST, port: 7100 }, logger, new RateLimitedLog(logger))).toThrow(/from 65536 to 1073741824/);
  });
});
