import { describe, expect, it } from 'vitest';
import { CallTable } from '../../src/client/call-table.js';
import { ChannelClosedError, DeadlineExceededError, type SwitchboardError } from '../../src/protocol/errors.js';

/** A call sent on connection 1 (or another), or queued for a connection. */
function call(t: CallTable, deadlineAt = Number.MAX_SAFE_INTEGER, gen: number | 'queued' = 1): { id: number; result: Promise<unknown> } {
  let id = 0;
  const result = new Promise((resolve, reject) => {
    id = t.add(resolve, reject as (e: SwitchboardError) => void, deadlineAt, undefined, gen === 'queued' ? undefined : gen);
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

describe('CallTable across connections', () => {
  it('queues a call until it is sent, then matches its answer only on the connection it went out on', async () => {
    const t = new CallTable();
    const q = call(t, Number.MAX_SAFE_INTEGER, 'queued');
    expect([t.size, t.queued]).toEqual([1, 1]);
    expect(t.queuedIds()).toEqual([q.id]);
    expect(t.isLiveOn(q.id, 1)).toBe(false);
    t.markSent(q.id, 7);
    expect([t.size, t.queued]).toEqual([1, 0]);
    expect(t.isLiveOn(q.id, 7)).toBe(true);
    expect(t.isLiveOn(q.id, 6)).toBe(false);
    expect(t.liveOn(7)).toEqual([q.id]);
    // Lost connection 7: the call goes back to the queue with the same id, and is sent on 8.
    t.requeue(q.id);
    expect(t.isLiveOn(q.id, 7)).toBe(false);
    expect(t.queuedIds()).toEqual([q.id]);
    t.markSent(q.id, 8);
    expect(t.liveOn(7)).toEqual([]);
    expect(t.resolve(q.id, 'answered on 8')).toBe(true);
    await expect(q.result).resolves.toBe('answered on 8');
  });

  it('frees a queued call at its deadline at once, but keeps a sent one owed until its connection goes', async () => {
    const t = new CallTable();
    const queued = call(t, 100, 'queued');
    const sent = call(t, 100, 3);
    const made: boolean[] = [];
    t.expire(100, (q) => {
      made.push(q);
      return new DeadlineExceededError(q ? 'never sent' : 'no answer');
    });
    expect(made.sort()).toEqual([false, true]);
    await expect(queued.result).rejects.toThrow('never sent');
    await expect(sent.result).rejects.toThrow('no answer');
    expect(t.resolve(sent.id, 'late')).toBe(false); // the late answer frees the owed slot...
    const again = call(t, 100, 3);
    expect(again.id).toBe(sent.id);
    t.resolve(again.id, 'x');
    const owed = call(t, 100, 3);
    t.expire(100, () => new DeadlineExceededError('no answer'));
    await expect(owed.result).rejects.toThrow('no answer');
    expect(t.size).toBe(0);
    // The queued slot is free again; the sent one is owed, so a new call gets the queued one's id.
    const next = call(t);
    expect(next.id).not.toBe(owed.id);
    const other = call(t);
    expect(other.id).not.toBe(owed.id);
    // ...or its connection going does: connection 3 went, so its owed slot is free now.
    t.forgetOwedOn(3);
    expect(call(t).id).toBe(owed.id);
  });
});
