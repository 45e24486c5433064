/** SlotList: the values in flight in reused slots of one array. */
import { describe, expect, it } from 'vitest';
import { SlotList } from '../../src/slot-list.js';

describe('SlotList', () => {
  it('adds, removes by slot or by value, counts, and lists what is in flight', () => {
    const list = new SlotList<{ id: number }>();
    const [a, b, c] = [{ id: 1 }, { id: 2 }, { id: 3 }];
    const slotA = list.add(a);
    list.add(b);
    list.add(c);
    expect(list.size).toBe(3);
    expect(list.remove(slotA, a)).toBe(true);
    // Removed once only.
    expect(list.remove(slotA, a)).toBe(false);
    expect(list.delete(b)).toBe(true);
    expect(list.delete(b)).toBe(false);
    expect(list.size).toBe(1);
    expect([...list.values()]).toEqual([c]);
  });

  it('reuses freed slots, and a stale slot does not remove the value now in it', () => {
    const list = new SlotList<string>();
    const first = list.add('first');
    list.add('second');
    list.remove(first, 'first');
    const third = list.add('third');
    expect(third).toBe(first);
    expect(list.remove(first, 'first')).toBe(false);
    expect([...list.values()].sort()).toEqual(['second', 'third']);
    // The array does not grow while slots are reused.
    for (let i = 0; i < 1000; i++) list.remove(list.add(`v${i}`), `v${i}`);
    expect(list.add('last')).toBe(2);
  });
});
