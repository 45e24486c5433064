/** NodeSlots: a node whose calls are timing out, or that has not answered for longer than it takes it to, may have at most `limit` calls in flight; a node whose calls end is not limited. */
import { describe, expect, it } from 'vitest';
import { NOT_ANSWERING_FACTOR, NOT_ANSWERING_FLOOR_MS, NodeSlots, TIMING_OUT_MEMORY_MS, saturatedDelay, slowSlotsPerNode } from '../../src/queue/node-slots.js';

describe('NodeSlots', () => {
  it('limits a node once a call of it timed out, counting every call in flight, until one is answered or the memory runs out', () => {
    const slots = new NodeSlots(2);
    const first = slots.enter('n', 0);
    slots.leave('n', slots.enter('n', 0), 'ok', 100);
    slots.enter('n', 2_900);
    slots.enter('n', 2_950);
    slots.leave('n', first, 'timeout', 3_000);
    // Timing out, two calls in flight (however young): saturated.
    expect(slots.saturated('n', 3_001)).toBe('timing out');
    expect(slots.inFlight('n')).toBe(2);
    expect(slots.saturated('other', 3_001)).toBeUndefined();
    // Past the memory the timeout no longer limits it: calls started since count as not answering only after the floor.
    const answered = new NodeSlots(2);
    answered.leave('n', answered.enter('n', 0), 'timeout', 3_000);
    answered.enter('n', 3_000 + TIMING_OUT_MEMORY_MS);
    answered.enter('n', 3_000 + TIMING_OUT_MEMORY_MS);
    expect(answered.saturated('n', 3_001 + TIMING_OUT_MEMORY_MS)).toBeUndefined();
    // An answer after the timeout ends the limit at once.
    const late = slots.enter('n', 4_000);
    slots.leave('n', late, 'ok', 4_100);
    expect(slots.saturated('n', 4_101)).toBeUndefined();
  });

  it('limits a node with `limit` calls in flight none of which has ended for 0.5 s, before any timeout: a backend that stopped answering', () => {
    const slots = new NodeSlots(2);
    slots.enter('n', 1_000);
    expect(slots.saturated('n', 3_000)).toBeUndefined();
    slots.enter('n', 1_200);
    // Busy since 1,000 with no call ended: limited once that is longer than NOT_ANSWERING_FLOOR_MS.
    expect(slots.saturated('n', 1_000 + NOT_ANSWERING_FLOOR_MS)).toBeUndefined();
    expect(slots.saturated('n', 1_001 + NOT_ANSWERING_FLOOR_MS)).toBe('not answering');
    // A call ending (an answer, or an error that is not a timeout) lifts it at once; a timeout turns it into timing out.
    slots.leave('n', slots.enter('n', 1_600), 'other', 1_700);
    expect(slots.saturated('n', 1_701)).toBeUndefined();
    expect(slots.saturated('n', 1_701 + NOT_ANSWERING_FLOOR_MS)).toBe('not answering');
    const third = slots.enter('n', 2_300);
    slots.leave('n', third, 'timeout', 2_400);
    expect(slots.saturated('n', 2_401)).toBe('timing out');
    // Still silent once the timeout is forgotten: still limited, as not answering.
    expect(slots.saturated('n', 2_402 + TIMING_OUT_MEMORY_MS)).toBe('not answering');
  });

  it('gives a node known to be slow four times its recent answer time, and counts the time from when it became busy again', () => {
    const slots = new NodeSlots(1);
    // Answers taking 2 s: 8 s without one before it counts as not answering.
    for (let i = 0; i < 3; i++) slots.leave('slow', slots.enter('slow', i * 10_000), 'ok', i * 10_000 + 2_000);
    slots.enter('slow', 100_000);
    expect(slots.saturated('slow', 100_000 + NOT_ANSWERING_FACTOR * 2_000)).toBeUndefined();
    expect(slots.saturated('slow', 100_001 + NOT_ANSWERING_FACTOR * 2_000)).toBe('not answering');
    // A weighted mean: one quick answer moves it a fifth of the way (2,000 → 1,600 ms).
    const quick = new NodeSlots(1);
    quick.leave('n', quick.enter('n', 0), 'ok', 2_000);
    quick.leave('n', quick.enter('n', 10_000), 'ok', 10_000);
    quick.enter('n', 50_000);
    expect(quick.saturated('n', 50_000 + NOT_ANSWERING_FACTOR * 1_600)).toBeUndefined();
    expect(quick.saturated('n', 50_001 + NOT_ANSWERING_FACTOR * 1_600)).toBe('not answering');
  });

  it('forgets a node with nothing in flight and nothing recent to remember', () => {
    const slots = new NodeSlots(1);
    slots.leave('n', slots.enter('n', 0), 'ok', 10);
    expect(slots.inFlight('n')).toBe(0);
    slots.leave('t', slots.enter('t', 0), 'timeout', 10);
    slots.enter('t', 20);
    expect(slots.saturated('t', 30)).toBe('timing out');
  });

  it('counts a call once however often it is ended', () => {
    const slots = new NodeSlots(1);
    const call = slots.enter('n', 0);
    slots.enter('n', 0);
    slots.leave('n', call, 'ok', 1);
    slots.leave('n', call, 'ok', 2);
    expect(slots.inFlight('n')).toBe(1);
  });

  it('forgets idle nodes once 1,024 are remembered, and keeps those in flight or timing out', () => {
    const slots = new NodeSlots(1);
    const busy = slots.enter('busy', 0);
    slots.leave('late', slots.enter('late', 0), 'timeout', 100);
    slots.enter('late', 100);
    for (let i = 0; i < 1_100; i++) slots.leave(`idle-${i}`, slots.enter(`idle-${i}`, 200), 'ok', 200);
    // Swept once when the 1,025th node came: the 1,022 idle ones then, not the busy or the timing-out node.
    expect(slots.remembered).toBeLessThan(200);
    expect(slots.inFlight('busy')).toBe(1);
    expect(slots.saturated('late', 300)).toBe('timing out');
    slots.leave('busy', busy, 'ok', 300);
    expect(slots.inFlight('busy')).toBe(0);
  });

  it("gives a node a quarter of the worker's slots, at least one", () => {
    expect([1, 4, 8, 64, 65].map(slowSlotsPerNode)).toEqual([1, 1, 2, 16, 16]);
  });

  it('lets a waiting job return after a quarter of its age, 1–15 s, spread ±25%', () => {
    const at = (random: number) => (ageMs: number) => saturatedDelay(ageMs, () => random);
    // Young jobs wait at least 1 s, old ones at most 15 s (before the spread).
    expect([0, 4_000, 20_000, 60_000, 600_000].map(at(0.5))).toEqual([1_000, 1_000, 5_000, 15_000, 15_000]);
    expect([0, 20_000, 600_000].map(at(0))).toEqual([750, 3_750, 11_250]);
    expect([0, 20_000, 600_000].map(at(0.999_999))).toEqual([1_250, 6_250, 18_750]);
  });
});
