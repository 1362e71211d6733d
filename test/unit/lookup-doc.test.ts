import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EventKind, encodeEventRequest, encodeEventResponse, lookupReplySchema, tryDecodeBody } from '../../src/index.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

/** The hex lines under the example line that starts with `label` in docs/protocol.md, as one buffer. */
function example(label: string): Buffer {
  const lines = doc.split('\n');
  const at = lines.findIndex((l) => l.startsWith(label));
  if (at < 0) throw new Error(`docs/protocol.md has no example "${label}"`);
  const hex: string[] = [];
  for (const l of lines.slice(at + 1)) {
    if (l.startsWith('```')) break;
    hex.push(l.replace(/\s+/g, ''));
  }
  return Buffer.from(hex.join(''), 'hex');
}

describe('LOOKUP in docs/protocol.md, section 6.9', () => {
  it('the request example is what the codec writes', () => {
    expect(example('LOOKUP 101, request id 7 (42 bytes)').toString('hex')).toBe(encodeEventRequest(EventKind.LOOKUP, 7, { key: 101, poolType: 0 }, true).toString('hex'));
  });

  it('the answer example is what the AS writes, and the client schema reads it', () => {
    const body = { endpoints: [{ id: 'fs-1', host: '127.0.0.1', port: 7200, weight: 500 }], leaseMs: 10000, idempotent: false };
    const doc105 = example('The answer without a ticket, for a service not declared idempotent (105 bytes)');
    expect(doc105).toHaveLength(105);
    expect(doc105.toString('hex')).toBe(encodeEventResponse(EventKind.LOOKUP, 7, body).toString('hex'));
    expect(lookupReplySchema.parse(tryDecodeBody(doc105))).toEqual(body);
  });
});
