/** How long a node's last timed-out call keeps it limited while no call of it has succeeded since. */
export const TIMING_OUT_MEMORY_MS = 30_000;

/** A job of a saturated node older than this (since it was added) ends with a Result instead of waiting again. */
export const SATURATED_DEADLINE_MS = 5 * 60_000;

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

  /** End a call; true when it is the answer that ends the node's timing out (it was timing out until now). */
  leave(node: string, call: Call, outcome: CallOutcome, now: number = performance.now()): boolean {
    const state = this.nodes.get(node);
    if (!state || call.ended) return false;
    call.ended = true;
    state.inFlight--;
    if (outcome === 'timeout') state.timedOutAt = now;
    else if (outcome === 'ok') {
      const recovered = this.timingOut(state, now);
      state.okAt = now;
      return recovered;
    }
    return false;
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

/** The longest a job of a saturated node waits at a time (before the ±25% spread). */
export const SATURATED_MAX_DELAY_MS = 60_000;

/**
 * How long a job of a saturated node waits before it is taken again, given how long ago it was
 * added: as long again, 1–60 s, ±25% (`random` in [0, 1)) so that waiting jobs do not return
 * together, and no later than its deadline (SATURATED_DEADLINE_MS). Each wait is a fetch and a
 * move in Redis: a quarter of its age (1–15 s) put a job of a node that stays silent back about
 * 30 times in its 5 minutes, doubling about 11 times. A node that answers again does not leave
 * its jobs waiting that long: its answers release them (DeferredJobs).
 */
export function saturatedDelay(ageMs: number, random: () => number = Math.random): number {
  const spread = Math.round(Math.min(SATURATED_MAX_DELAY_MS, Math.max(1_000, ageMs)) * (0.75 + random() * 0.5));
  return Math.max(1_000, Math.min(spread, SATURATED_DEADLINE_MS - ageMs));
}

/** Waiting jobs remembered per worker; beyond it, the oldest deferral is forgotten (that job returns at its own time). */
export const REMEMBERED_DEFERRALS = 4096;

/**
 * The jobs this worker put back to wait because their node was saturated, per node, so that the
 * node's answers can release them early instead of leaving them to their delay (which doubles):
 * `release` hands back up to `count` of a node's jobs still waiting, the earliest deferred first.
 * A job deferred again replaces its entry; one whose delay has run out is no longer waiting here.
 */
export class DeferredJobs<J> {
  private readonly byNode = new Map<string, Map<string, { job: J; dueAt: number }>>();
  private total = 0;

  add(node: string, id: string, job: J, dueAt: number): void {
    let jobs = this.byNode.get(node);
    if (!jobs) {
      jobs = new Map();
      this.byNode.set(node, jobs);
    }
    if (jobs.delete(id)) this.total--;
    jobs.set(id, { job, dueAt });
    this.total++;
    if (this.total > REMEMBERED_DEFERRALS) this.forgetOldest();
  }

  /** Up to `count` jobs of `node` still waiting at `now` (Date.now()), removed from here. */
  release(node: string, count: number, now: number = Date.now()): J[] {
    const jobs = this.byNode.get(node);
    if (!jobs) return [];
    const out: J[] = [];
    for (const [id, entry] of jobs) {
      if (out.length >= count) break;
      jobs.delete(id);
      this.total--;
      if (entry.dueAt > now) out.push(entry.job);
    }
    if (jobs.size === 0) this.byNode.delete(node);
    return out;
  }

  /** Jobs remembered, over all nodes. */
  get size(): number {
    return this.total;
  }

  /** Forget the earliest deferral of the node that has the most (a cap on memory, not a release). */
  private forgetOldest(): void {
    let largest: Map<string, { job: J; dueAt: number }> | undefined;
    let largestNode = '';
    for (const [node, jobs] of this.byNode) {
      if (!largest || jobs.size > largest.size) {
        largest = jobs;
        largestNode = node;
      }
    }
    if (!largest) return;
    const first = largest.keys().next();
    if (!first.done) {
      largest.delete(first.value);
      this.total--;
    }
    if (largest.size === 0) this.byNode.delete(largestNode);
  }
}
