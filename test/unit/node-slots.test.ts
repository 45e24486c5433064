/** NodeSlots: a node whose calls are timing out may have at most `limit` calls in flight; a node whose calls are answered, however slowly, is never limited. */
import { describe, expect, it } from 'vitest';
import { NodeSlots, TIMING_OUT_MEMORY_MS, saturatedDelay, slowSlotsPerNode } from '../../src/queue/node-slots.js';

describe('NodeSlots', () => {
  it('limits a node once a call of it timed out, counting every call in flight, until one is answered or the memory runs out', () => {
    const slots = new NodeSlots(2);
    const first = slots.enter('n');
    slots.enter('n');
    slots.enter('n');
    // Slow calls alone limit nothing: a slow backend that answers needs its slots.
    expect(slots.saturated('n', 5_000)).toBe(false);
    slots.leave('n', first, 'timeout', 3_000);
    // Timing out, two calls in flight (however young): saturated.
    expect(slots.saturated('n', 3_001)).toBe(true);
    expect(slots.inFlight('n')).toBe(2);
    expect(slots.saturated('other', 3_001)).toBe(false);
    // Past the memory with no answer: no longer limited.
    expect(slots.saturated('n', 3_000 + TIMING_OUT_MEMORY_MS + 1)).toBe(false);
    // An answer after the timeout ends the limit at once.
    const late = slots.enter('n');
    slots.leave('n', late, 'ok', 4_100);
    expect(slots.saturated('n', 4_101)).toBe(false);
  });

  it('forgets a node with nothing in flight and nothing recent to remember', () => {
    const slots = new NodeSlots(1);
    slots.leave('n', slots.enter('n'), 'ok', 10);
    expect(slots.inFlight('n')).toBe(0);
    slots.leave('t', slots.enter('t'), 'timeout', 10);
    slots.enter('t');
    expect(slots.saturated('t', 30)).toBe(true);
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
    expect(slots.saturated('late', 300)).toBe(true);
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
