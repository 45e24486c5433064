import { Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { Metrics } from '../observability/metrics.js';
import { QUEUE_NAME } from './constants.js';

/** Queue states published as `svcnode_queue_jobs{state}`. */
export const SAMPLED_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'] as const;

export interface QueueSamplerOptions {
  /** BullMQ key prefix, as the worker uses. */
  prefix?: string;
  /** Whether this worker takes jobs right now. */
  isUp: () => boolean;
  /** @defaultValue 5000 */
  intervalMs?: number;
  now?: () => number;
}

export interface QueueSampler {
  /** One sample now (also run on every tick). */
  sample(): Promise<void>;
  /** Stop sampling and report the worker as down. */
  stop(): void;
}

/**
 * Publish queue depth, the age of the oldest waiting job and whether this worker is up, every
 * `intervalMs`, for the backlog and no-worker alerts. Uses the worker's existing Redis connection;
 * a tick that finds the previous one still waiting for Redis reports the worker down.
 */
export function startQueueSampler(metrics: Metrics, connection: Redis | Cluster, o: QueueSamplerOptions): QueueSampler {
  const queue = new Queue(QUEUE_NAME, { connection, ...(o.prefix ? { prefix: o.prefix } : {}) });
  queue.on('error', () => undefined);
  const now = o.now ?? Date.now;
  let inFlight: Promise<void> | undefined;
  let stopped = false;

  const read = async (): Promise<void> => {
    const counts = await queue.getJobCounts(...SAMPLED_STATES);
    for (const state of SAMPLED_STATES) metrics.queueJobs.set({ state }, counts[state] ?? 0);
    const [next] = await queue.getWaiting(0, 0);
    metrics.queueOldestWaitingAge.set(next ? Math.max(0, (now() - next.timestamp) / 1000) : 0);
  };
  const sample = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    // Up means taking jobs and reaching Redis: a sample still unanswered from the last tick, or one
    // that failed, is a Redis this worker cannot reach (its commands wait for a reconnect).
    if (inFlight) {
      metrics.workerUp.set(0);
      return inFlight;
    }
    inFlight = read()
      .then(
        () => metrics.workerUp.set(!stopped && o.isUp() ? 1 : 0),
        () => metrics.workerUp.set(0),
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
  const timer = setInterval(() => void sample(), o.intervalMs ?? 5_000);
  timer.unref();
  void sample();
  return {
    sample,
    stop() {
      stopped = true;
      clearInterval(timer);
      metrics.workerUp.set(0);
    },
  };
}
