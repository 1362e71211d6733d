import { describe, expect, it } from 'vitest';
import { CallTable } from '../../src/client/call-table.js';
import { ChannelClosedError, DeadlineExceededError, type SwitchboardError } from '../../src/protocol/errors.js';

function call(t: CallTable, deadlineAt = Number.MAX_SAFE_INTEGER): { id: number; result: Promise<unknown> } {
  let id = 0;
  const result = new Promise((resolve, reject) => {
    id = t.add(resolve, reject as (e: SwitchboardError) => void, deadlineAt);
  });
  return { id, result };
}

describe('CallTable', () => {
  it('settles each call once by its id, reuses freed slots, and ignores unknown ids', async () => {
    const t = new CallTable();
    const a = call(t);
    const b = call(t);
    expect(a.id).toBeGreaterThan(0);
    expect(b.id).not.toBe(a.id);
    expect(t.size).toBe(2);
    expect(t.resolve(a.id, 'A')).toBe(true);
    expect(t.resolve(a.id, 'again')).toBe(false);
    expect(t.resolve(0, 'x')).toBe(false);
    expect(t.resolve(12345, 'x')).toBe(false);
    expect(t.reject(b.id, new ChannelClosedError())).toBe(true);
    await expect(a.result).resolves.toBe('A');
    await expect(b.result).rejects.toBeInstanceOf(ChannelClosedError);
    expect(t.size).toBe(0);
    expect([call(t).id, call(t).id].sort()).toEqual([a.id, b.id].sort());
  });

  it('fails expired calls and keeps their slots until the late answer, which matches no new call', async () => {
    const t = new CallTable();
    const late = call(t, 100);
    const kept = call(t, 1000);
    t.expire(100, () => new DeadlineExceededError());
    await expect(late.result).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(t.size).toBe(1);
    const fresh = call(t);
    expect(fresh.id).not.toBe(late.id);
    expect(t.resolve(late.id, 'too late')).toBe(false); // frees the slot, settles nothing
    expect(call(t).id).toBe(late.id);
    expect(t.resolve(kept.id, 'on time')).toBe(true);
    await expect(kept.result).resolves.toBe('on time');
  });

  it('grows past its first arrays and rejects everything on rejectAll', async () => {
    const t = new CallTable();
    const calls = Array.from({ length: 200 }, () => call(t));
    expect(new Set(calls.map((c) => c.id)).size).toBe(200);
    t.rejectAll(new ChannelClosedError('gone'));
    for (const c of calls) await expect(c.result).rejects.toThrow('gone');
    expect(t.size).toBe(0);
  });
});
