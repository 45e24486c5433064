/** The queue contract: a bot flow in any language codes against these. */
export const QUEUE_NAME = 'service-node-invocations';
export const JOB_NAME = 'invoke';

/** Worker defaults, in one place. */
export const WORKER_DEFAULTS = {
  /** Parallel invocations per worker process. @defaultValue 16 */
  concurrency: 16,
  /** @defaultValue 30000 */
  lockDurationMs: 30_000,
  /** How often stalled jobs (from a dead worker) are moved back to wait. @defaultValue 15000 */
  stalledIntervalMs: 15_000,
  /** A job that stalls more often than this fails (infrastructure failure). @defaultValue 3 */
  maxStalledCount: 3,
  /** In-flight work allowed to finish on SIGTERM before the worker exits. @defaultValue 30000 */
  shutdownGraceMs: 30_000,
  /** How often the watchdog checks that the BullMQ worker still takes jobs. @defaultValue 2000 */
  watchdogIntervalMs: 2_000,
  /** Jobs waiting while the worker sits idle with free slots this long: it is recreated. @defaultValue 10000 */
  watchdogIdleMs: 10_000,
  /** Past the grace period, this long at most for sockets to close before the process exits anyway. @defaultValue 1500 */
  shutdownMarginMs: 1_500,
  /** After Redis refused the fetch of a job (OOM, MISCONF, READONLY, NOREPLICAS, BUSY, NOPERM, TRYAGAIN), the wait before fetching again. @defaultValue 1000 */
  refusedPauseMs: 1_000,
  /** Completed jobs kept: 24 h, at most 10,000. */
  removeOnComplete: { age: 86_400, count: 10_000 },
  /** Failed (stalled) jobs kept: 7 days, at most 10,000. */
  removeOnFail: { age: 604_800, count: 10_000 },
} as const;
