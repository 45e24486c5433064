/** A call in flight longer than this is holding its slot for a slow or silent backend. */
export const SLOW_CALL_MS = 1_000;

interface Call {
  at: number;
}

/**
 * The calls each node has in flight, by start time, so that one node whose backend is slow or
 * silent (it accepts the connection and never answers) cannot hold every slot of the worker: each
 * of its calls held a slot for its whole timeout, three times over with retries, and one such
 * node among twenty (5% of the traffic) held all 64 slots, so calls to every healthy node waited
 * seconds in the queue. A node is saturated while `limit` of its calls have run longer than
 * SLOW_CALL_MS; calls that answer quickly never count, so a busy healthy node may use every slot.
 */
export class NodeSlots {
  private readonly calls = new Map<string, Set<Call>>();

  constructor(readonly limit: number) {}

  /** Count a call of `node` as started now; the returned handle ends it. */
  enter(node: string, now: number = performance.now()): Call {
    let calls = this.calls.get(node);
    if (!calls) {
      calls = new Set();
      this.calls.set(node, calls);
    }
    const call = { at: now };
    calls.add(call);
    return call;
  }

  leave(node: string, call: Call): void {
    const calls = this.calls.get(node);
    if (!calls) return;
    calls.delete(call);
    if (calls.size === 0) this.calls.delete(node);
  }

  /** Calls of `node` that have run longer than SLOW_CALL_MS (counted up to `limit`). */
  slow(node: string, now: number = performance.now()): number {
    const calls = this.calls.get(node);
    if (!calls || calls.size < this.limit) return 0;
    let slow = 0;
    // Oldest first (a Set keeps insertion order): the count stops at the first call that is not slow.
    for (const call of calls) {
      if (now - call.at <= SLOW_CALL_MS) break;
      if (++slow >= this.limit) break;
    }
    return slow;
  }

  /** Whether a new call of `node` must wait: `limit` of its calls have run longer than SLOW_CALL_MS. */
  saturated(node: string, now: number = performance.now()): boolean {
    return this.slow(node, now) >= this.limit;
  }
}

/** Slots a node may hold with slow calls: a quarter of the worker's, at least one. */
export function slowSlotsPerNode(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 4));
}
