/** How long a node's last timed-out call keeps it limited while no call of it has succeeded since. */
export const TIMING_OUT_MEMORY_MS = 30_000;

interface Call {
  at: number;
}

interface NodeState {
  calls: Set<Call>;
  /** performance.now() when a call of the node last ended in a timeout, and when one last succeeded. */
  timedOutAt?: number;
  okAt?: number;
}

/** How a call ended, as far as the limit cares. */
export type CallOutcome = 'ok' | 'timeout' | 'other';

/**
 * The calls each node has in flight, so that one node whose backend does not answer (it accepts
 * the connection and never answers, or answers after the node's timeouts) cannot hold every slot of
 * the worker: each of its calls held a slot for its whole timeout, three times over with retries,
 * and one such node among twenty (5% of the traffic) held all 64 slots, so calls to every healthy
 * node waited seconds in the queue. A node is timing out while its last call that ended in a
 * timeout is more recent than its last success and at most TIMING_OUT_MEMORY_MS old; while it is,
 * it may have at most `limit` calls in flight. A node whose calls succeed, however slowly, is never
 * limited (a slow backend that answers needs its slots: limiting it only made its jobs wait).
 */
export class NodeSlots {
  private readonly nodes = new Map<string, NodeState>();

  constructor(readonly limit: number) {}

  /** Count a call of `node` as started now; the returned handle ends it. */
  enter(node: string, now: number = performance.now()): Call {
    let state = this.nodes.get(node);
    if (!state) {
      state = { calls: new Set() };
      this.nodes.set(node, state);
    }
    const call = { at: now };
    state.calls.add(call);
    return call;
  }

  leave(node: string, call: Call, outcome: CallOutcome, now: number = performance.now()): void {
    const state = this.nodes.get(node);
    if (!state) return;
    state.calls.delete(call);
    if (outcome === 'timeout') state.timedOutAt = now;
    else if (outcome === 'ok') state.okAt = now;
    // Forget a node with nothing in flight and nothing recent to remember.
    if (state.calls.size === 0 && !this.timingOut(state, now)) this.nodes.delete(node);
  }

  private timingOut(state: NodeState, now: number): boolean {
    const at = state.timedOutAt;
    return at !== undefined && now - at <= TIMING_OUT_MEMORY_MS && (state.okAt === undefined || state.okAt < at);
  }

  /** Calls of `node` in flight. */
  inFlight(node: string): number {
    return this.nodes.get(node)?.calls.size ?? 0;
  }

  /** Whether a new call of `node` must wait: it is timing out and has `limit` calls in flight. */
  saturated(node: string, now: number = performance.now()): boolean {
    const state = this.nodes.get(node);
    return state !== undefined && state.calls.size >= this.limit && this.timingOut(state, now);
  }
}

/** Slots a node that is timing out may hold: a quarter of the worker's, at least one. */
export function slowSlotsPerNode(concurrency: number): number {
  return Math.max(1, Math.floor(concurrency / 4));
}

/**
 * How long a job of a saturated node waits before it is taken again, given how long ago it was
 * added: a quarter of that, 1–15 s, ±25% (`random` in [0, 1)) so that waiting jobs do not return together.
 */
export function saturatedDelay(ageMs: number, random: () => number = Math.random): number {
  return Math.round(Math.min(15_000, Math.max(1_000, ageMs / 4)) * (0.75 + random() * 0.5));
}
