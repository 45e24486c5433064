/** NodeSlots: a node is saturated while `limit` of its calls have run longer than SLOW_CALL_MS. */
import { describe, expect, it } from 'vitest';
import { NodeSlots, SLOW_CALL_MS, slowSlotsPerNode } from '../../src/queue/node-slots.js';

describe('NodeSlots', () => {
  it('counts only calls running for over SLOW_CALL_MS, per node, and forgets ended ones', () => {
    const slots = new NodeSlots(2);
    const a = slots.enter('n', 0);
    const b = slots.enter('n', 100);
    slots.enter('other', 0);
    expect(slots.saturated('n', SLOW_CALL_MS)).toBe(false);
    expect(slots.slow('n', SLOW_CALL_MS + 50)).toBe(1);
    expect(slots.saturated('n', SLOW_CALL_MS + 101)).toBe(true);
    // Many quick calls of a busy node never count.
    for (let i = 0; i < 60; i++) slots.leave('busy', slots.enter('busy', 5_000 + i));
    expect(slots.saturated('busy', 5_100)).toBe(false);
    slots.leave('n', a);
    expect(slots.saturated('n', 10_000)).toBe(false);
    slots.leave('n', b);
    expect(slots.slow('n', 10_000)).toBe(0);
  });

  it('gives a node a quarter of the worker\'s slots, at least one', () => {
    expect([1, 4, 8, 64, 65].map(slowSlotsPerNode)).toEqual([1, 1, 2, 16, 16]);
  });
});
