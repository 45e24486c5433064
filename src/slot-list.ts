/**
 * The values in flight (calls, jobs), each in a slot of one array; a freed slot is reused.
 *
 * It replaces a long-lived Set or Map with an add and a delete per call. V8 rebuilds such a table
 * every few dozen deletions, and each table it drops keeps a link to the next one along with its
 * entries (for iterators that were under way). Once one table is old (a full GC moves the live one
 * there), every later table is promoted by the dead one before it, with every call it lists and
 * all that the call references. In the call path alone (bench/call-path.ts, 64 calls in flight)
 * this promoted 2.2–2.7 MB per scavenge from the first full GC on, against 130–250 KB without the
 * Sets, and scavenges took three times as long. An array that is only written in place drops
 * nothing.
 */
export class SlotList<T> {
  private readonly slots: (T | undefined)[] = [];
  private readonly free: number[] = [];
  private count = 0;

  /** Add `value`; returns its slot, for `remove`. */
  add(value: T): number {
    const slot = this.free.pop() ?? this.slots.length;
    this.slots[slot] = value;
    this.count++;
    return slot;
  }

  /** Remove `value` from `slot`; false when it is not there (already removed). */
  remove(slot: number, value: T): boolean {
    if (value === undefined || this.slots[slot] !== value) return false;
    this.slots[slot] = undefined;
    this.free.push(slot);
    this.count--;
    return true;
  }

  /** Remove `value` wherever it is (a scan of the slots); false when it is not there. */
  delete(value: T): boolean {
    const slot = this.slots.indexOf(value);
    return slot !== -1 && this.remove(slot, value);
  }

  get size(): number {
    return this.count;
  }

  /** The values in flight, in slot order. */
  *values(): IterableIterator<T> {
    for (const value of this.slots) if (value !== undefined) yield value;
  }
}
