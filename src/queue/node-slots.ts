/** How long a node's last timed-out call keeps it limited while no call of it has succeeded since. */
export const TIMING_OUT_MEMORY_MS = 30_000;

/** How long a node with `limit` calls in flight may go without a call ending before it counts as not answering, at least. */
export const NOT_ANSWERING_FLOOR_MS = 500;
/** …or this many times its recent answer time, when longer: a backend known to be slow gets time in proportion. */
export const NOT_ANSWERING_FACTOR = 4;
/** Weight of the latest answer in a node's recent answer time (an exponentially weighted mean). */
const ANSWER_WEIGHT = 0.2;

/** A call counted in flight (`at`: when it started, as performance.now()); ended once. */
export interface Call {
  ended: boolean;
  readonly at: number;
}

interface NodeState {
  /** Calls in flight: a count, not a Set of them (see SlotList: a Set with an add and a delete per call gets calls promoted). */
  inFlight: number;
  /** performance.now() when a call of the node last ended in a timeout, and when one last succeeded. */
  timedOutAt?: number;
  okAt?: number;
  /** performance.now() when its calls in flight went from none to one, and when one of its calls last ended other than by a timeout. */
  busySince: number;
  endedAt?: number;
  /** Its recent answer time (ms): a weighted mean of its answered calls' durations. */
  answerMs?: number;
}

/** Nodes remembered before those with nothing in flight and nothing recent are forgotten. */
const SWEEP_AT_NODES = 1024;

/** How a call ended, as far as the limit cares. */
export type CallOutcome = 'ok' | 'timeout' | 'other';

/**
 * Why a node is limited: its calls are timing out, or it has `limit` calls in flight and none of
 * its calls has ended for longer than it takes to answer (no call of it has timed out yet).
 */
export type Saturation = 'timing out' | 'not answering';

/**
 * The calls each node has in flight, so that one node whose backend does not answer (it accepts
 * the connection and never answers, or answers after the node's timeouts) cannot hold every slot of
 * the worker: each of its calls held a slot for its whole timeout, three times over with retries,
 * and one such node among twenty (5% of the traffic) held all 64 slots, so calls to every healthy
 * node waited seconds in the queue. A node may have at most `limit` calls in flight while
 * - it is *timing out*: its last call that ended in a timeout is more recent than its last success
 *   and at most TIMING_OUT_MEMORY_MS old; or
 * - it is *not answering*: no call of it has ended (other than by a timeout) for
 *   max(NOT_ANSWERING_FLOOR_MS, NOT_ANSWERING_FACTOR × its recent answer time) while it had calls in
 *   flight. This covers the time before its first timeout: a backend that stops answering held
 *   every slot for a whole response timeout (5 s) before, on a fresh worker or 30 s after an outage.
 * A node whose calls end, however slowly, is limited at most until its first answer: a slow backend
 * that answers needs its slots (limiting it only made its jobs wait).
 */
export class NodeSlots {
  private readonly nodes = new Map<string, NodeState>();

  constructor(readonly limit: number) {}

  /** Count a call of `node` as started (`now`: when, as performance.now()); the returned handle ends it. */
  enter(node: string, now: number = performance.now()): Call {
    let state = this.nodes.get(node);
    if (!state) {
      if (this.nodes.size >= SWEEP_AT_NODES) this.sweep(now);
      state = { inFlight: 0, busySince: now };
      this.nodes.set(node, state);
    }
    if (state.inFlight++ === 0) state.busySince = now;
    return { ended: false, at: now };
  }

  leave(node: string, call: Call, outcome: CallOutcome, now: number = performance.now()): void {
    const state = this.nodes.get(node);
    if (!state || call.ended) return;
    call.ended = true;
    state.inFlight--;
    if (outcome === 'timeout') {
      state.timedOutAt = now;
      return;
    }
    state.endedAt = now;
    if (outcome !== 'ok') return;
    state.okAt = now;
    const took = now - call.at;
    state.answerMs = state.answerMs === undefined ? took : state.answerMs + ANSWER_WEIGHT * (took - state.answerMs);
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

  private notAnswering(state: NodeState, now: number): boolean {
    return now - Math.max(state.endedAt ?? state.busySince, state.busySince) > Math.max(NOT_ANSWERING_FLOOR_MS, NOT_ANSWERING_FACTOR * (state.answerMs ?? 0));
  }

  /** How many nodes are remembered (in flight, or timing out recently, or not swept yet). */
  get remembered(): number {
    return this.nodes.size;
  }

  /** Calls of `node` in flight. */
  inFlight(node: string): number {
    return this.nodes.get(node)?.inFlight ?? 0;
  }

  /** Whether a new call of `node` must wait, and why: it has `limit` calls in flight and is timing out or not answering. */
  saturated(node: string, now: number = performance.now()): Saturation | undefined {
    const state = this.nodes.get(node);
    if (state === undefined || state.inFlight < this.limit) return undefined;
    if (this.timingOut(state, now)) return 'timing out';
    return this.notAnswering(state, now) ? 'not answering' : undefined;
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
