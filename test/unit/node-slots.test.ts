/** NodeSlots: a node whose calls are timing out may have at most `limit` calls in flight; a node whose calls are answered, however slowly, is never limited. */
import { describe, expect, it } from 'vitest';
import { DeferredJobs, NodeSlots, REMEMBERED_DEFERRALS, SATURATED_DEADLINE_MS, TIMING_OUT_MEMORY_MS, saturatedDelay, slowSlotsPerNode } from '../../src/queue/node-slots.js';

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

  it('says which answer ends a node\'s timing out: the first after a timeout, not those that follow, nor one after the memory ran out', () => {
    const slots = new NodeSlots(2);
    expect(slots.leave('n', slots.enter('n'), 'ok', 1_000)).toBe(false);
    expect(slots.leave('n', slots.enter('n'), 'timeout', 2_000)).toBe(false);
    expect(slots.leave('n', slots.enter('n'), 'other', 2_500)).toBe(false);
    expect(slots.leave('n', slots.enter('n'), 'ok', 3_000)).toBe(true);
    expect(slots.leave('n', slots.enter('n'), 'ok', 3_100)).toBe(false);
    slots.leave('n', slots.enter('n'), 'timeout', 4_000);
    expect(slots.leave('n', slots.enter('n'), 'ok', 4_000 + TIMING_OUT_MEMORY_MS + 1)).toBe(false);
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

  it('lets a waiting job return after as long again as its age, 1–60 s, spread ±25%, and not after its deadline', () => {
    const at = (random: number) => (ageMs: number) => saturatedDelay(ageMs, () => random);
    // Young jobs wait at least 1 s, old ones at most 60 s (before the spread); one near its deadline returns at it.
    expect([0, 500, 4_000, 20_000, 60_000, 200_000, 280_000].map(at(0.5))).toEqual([1_000, 1_000, 4_000, 20_000, 60_000, 60_000, 20_000]);
    expect([0, 2_000, 20_000, 200_000].map(at(0))).toEqual([1_000, 1_500, 15_000, 45_000]);
    expect([0, 20_000, 200_000, 299_500].map(at(0.999_999))).toEqual([1_250, 25_000, 75_000, 1_000]);
  });

  it('puts a job of a node that stays silent back about 11 times in its 5 minutes (a quarter of its age: about 30)', () => {
    const waits = (delay: (age: number) => number): number => {
      let count = 0;
      for (let age = 0; age < SATURATED_DEADLINE_MS; age += delay(age)) count++;
      return count;
    };
    expect(waits((age) => saturatedDelay(age, () => 0.5))).toBe(11);
    expect(waits((age) => Math.min(15_000, Math.max(1_000, age / 4)))).toBe(33);
  });
});

describe('DeferredJobs', () => {
  it("releases up to the count of a node's jobs still waiting, the earliest deferred first; a job deferred again moves to the back", () => {
    const deferred = new DeferredJobs<string>();
    deferred.add('n', '1', 'job 1', 5_000);
    deferred.add('n', '2', 'job 2', 5_000);
    deferred.add('other', '3', 'job 3', 5_000);
    deferred.add('n', '4', 'job 4', 5_000);
    deferred.add('n', '1', 'job 1 again', 9_000);
    expect(deferred.size).toBe(4);
    expect(deferred.release('n', 2, 1_000)).toEqual(['job 2', 'job 4']);
    expect(deferred.release('n', 5, 1_000)).toEqual(['job 1 again']);
    expect(deferred.release('n', 5, 1_000)).toEqual([]);
    expect(deferred.release('other', 1, 1_000)).toEqual(['job 3']);
    expect(deferred.size).toBe(0);
  });

  it('skips and forgets jobs whose delay has run out: they are back in the queue already', () => {
    const deferred = new DeferredJobs<string>();
    deferred.add('n', '1', 'due', 1_000);
    deferred.add('n', '2', 'waiting', 3_000);
    expect(deferred.release('n', 1, 2_000)).toEqual(['waiting']);
    expect(deferred.size).toBe(0);
  });

  it(`remembers at most ${REMEMBERED_DEFERRALS} jobs, forgetting the earliest of the node that has the most`, () => {
    const deferred = new DeferredJobs<number>();
    deferred.add('few', 'f', -1, 10);
    for (let i = 0; i < REMEMBERED_DEFERRALS + 10; i++) deferred.add('many', String(i), i, 10);
    expect(deferred.size).toBe(REMEMBERED_DEFERRALS);
    expect(deferred.release('few', 1, 0)).toEqual([-1]);
    expect(deferred.release('many', 2, 0)).toEqual([11, 12]);
  });
});
