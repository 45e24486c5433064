/** How long a node's last timed-out call keeps it limited while no call of it has succeeded since. */
export const TIMING_OUT_MEMORY_MS = 30_000;

/** A call counted in flight; ended once. */
export interface Call {
  ended: boolean;
}

interface NodeState {
  /** Calls in flight: a count, not a Set of them (see SlotList: a Set with an add and a delete per call gets calls promoted). */
  inFlight: number;
  /** performance.now() when a call of the node last ended in a timeout, and when one last succeeded. */
  timedOutAt?: number;
  okAt?: number;
}

/** Nodes remembered before those with nothing in flight and nothing recent are forgotten. */
const SWEEP_AT_NODES = 1024;

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

  /** Count a call of `node` as started (`now`: when, as performance.now()); the returned handle ends it. */
  enter(node: string, now: number = performance.now()): Call {
    let state = this.nodes.get(node);
    if (!state) {
      if (this.nodes.size >= SWEEP_AT_NODES) this.sweep(now);
      state = { inFlight: 0 };
      this.nodes.set(node, state);
    }
    state.inFlight++;
    return { ended: false };
  }

  leave(node: string, call: Call, outcome: CallOutcome, now: number = performance.now()): void {
    const state = this.nodes.get(node);
    if (!state || call.ended) return;
    call.ended = true;
    state.inFlight--;
    if (outcome === 'timeout') state.timedOutAt = now;
    else if (outcome === 'ok') state.okAt = now;
  }

  /**
   * Forget the nodes with nothing in flight and nothing recent to remember: now and then, not as
   * each one's last call ends (a Map entry deleted and added again per call drops tables too).
   */
  private sweep(now: number): void {
    for (const [node, state] of this.nodes) if (state.inFlight === 0 && !this.timingOut(state, now)) this.nodes.delete(node);
  }

  private timingOut(state: NodeState, now: number): boolean {
    const at = state.timedOutAt;
    return at !== undefined && now - at <= TIMING_OUT_MEMORY_MS && (state.okAt === undefined || state.okAt < at);
  }

  /** How many nodes are remembered (in flight, or timing out recently, or not swept yet). */
  get remembered(): number {
    return this.nodes.size;
  }

  /** Calls of `node` in flight. */
  inFlight(node: string): number {
    return this.nodes.get(node)?.inFlight ?? 0;
  }

  /** Whether a new call of `node` must wait: it is timing out and has `limit` calls in flight. */
  saturated(node: string, now: number = performance.now()): boolean {
    const state = this.nodes.get(node);
    return state !== undefined && state.inFlight >= this.limit && this.timingOut(state, now);
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
