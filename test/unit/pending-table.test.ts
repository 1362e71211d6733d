import { describe, expect, it } from 'vitest';
import { PendingTable } from '../../src/common/pending-table.js';
import { PendingRequest, type ReplyTarget } from '../../src/application-server/registry/upstream-connection.js';

const target: ReplyTarget = { closed: false, inflight: 0, done: () => undefined, reply: () => undefined, replyFrom: () => undefined, pause: () => undefined, resume: () => undefined };
const req = (clientId: number, deadlineAt = Number.MAX_SAFE_INTEGER): PendingRequest => new PendingRequest(target, clientId, 1, 0, deadlineAt, 0, 100, null, 1);

describe('PendingTable', () => {
  it('hands out non-zero ids, finds each request by its id once, and reuses freed slots', () => {
    const t = new PendingTable();
    const a = req(10);
    const b = req(11);
    const ia = t.add(a);
    const ib = t.add(b);
    expect(ia).not.toBe(0);
    expect(ib).not.toBe(ia);
    expect(t.size).toBe(2);
    expect(t.take(ia)).toBe(a);
    expect(t.take(ia)).toBeUndefined(); // a duplicate answer is dropped
    expect(t.take(0)).toBeUndefined();
    expect(t.take(9999)).toBeUndefined();
    expect(t.size).toBe(1);
    expect(t.add(req(12))).toBe(ia);
  });

  it('does not reuse the slot of a timed-out request until its late answer has come', () => {
    const t = new PendingTable();
    const late = req(1, 100);
    const id = t.add(late);
    expect(t.takeExpired(100)).toEqual([late]);
    expect(t.size).toBe(0);
    const next = req(2);
    const nextId = t.add(next);
    expect(nextId).not.toBe(id); // the FS still owes an answer on `id`
    expect(t.take(id)).toBeUndefined(); // the late answer frees the slot and matches nothing
    expect(t.add(req(3))).toBe(id);
    expect(t.take(nextId)).toBe(next);
  });

  it('takeExpired leaves requests within their deadline; takeAll empties the table', () => {
    const t = new PendingTable();
    const early = req(1, 50);
    const later = req(2, 500);
    t.add(early);
    const laterId = t.add(later);
    expect(t.takeExpired(100)).toEqual([early]);
    expect(t.takeExpired(100)).toEqual([]);
    expect(t.takeAll()).toEqual([later]);
    expect(t.size).toBe(0);
    expect(t.take(laterId)).toBeUndefined();
  });
});
