import { DelayedError, WaitingError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Result } from '../invoke/result.js';
import type { Metrics } from '../observability/metrics.js';
import { onClusterRetry } from './cluster-retries.js';
import { coalesceWrites } from './coalesce-writes.js';
import { withTimeout, type ConnectionFactory, type RedisConnection } from './connection.js';
import { QUEUE_NAME, WORKER_DEFAULTS } from './constants.js';
import { RepeatGate } from '../observability/repeat-gate.js';
import { knownRedisError, commandRefusal } from './redis-errors.js';
import { SafeWorker } from './safe-worker.js';
import { SlotList } from '../slot-list.js';

export type Processor = (job: Job, token?: string) => Promise<Result>;

export interface SupervisorOptions {
  /** Opens the BullMQ worker's connection (a new one each time the worker is recreated). */
  open: ConnectionFactory;
  /** BullMQ prefix (undefined: BullMQ's `bull`). */
  prefix: string | undefined;
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  processor: Processor;
  /** Fail-fast connection for probes (health, watchdog): never one that waits forever. */
  probe: RedisConnection;
  logger: Logger;
  metrics: Metrics;
  /** Wait after Redis refused a fetch before fetching again. @defaultValue WORKER_DEFAULTS.refusedPauseMs */
  refusedPauseMs?: number;
  /** How often the watchdog looks. @defaultValue WORKER_DEFAULTS.watchdogIntervalMs */
  watchdogIntervalMs?: number;
  /** Jobs waiting, free slots, nothing taken for this long: the BullMQ worker is recreated. @defaultValue WORKER_DEFAULTS.watchdogIdleMs */
  watchdogIdleMs?: number;
}

/** Outcome of one round trip on the queue's own keys. */
export type Probe =
  | { ok: true; waiting: number; paused: boolean }
  | { ok: false; reason: 'redis unreachable' | 'MOVED: wrong node' | 'redis auth refused' | 'redis refuses commands'; detail: string; code?: string };

/** How long close() lets BullMQ close cleanly once no job is held. */
const IDLE_CLOSE_MS = 1_000;

/**
 * How long close() waits, once the grace period is over, for the calls it cut short to hand their
 * jobs back to the wait list (a round trip each while Redis answers).
 */
const HAND_BACK_MS = 500;

/**
 * ioredis's words when no sentinel named a master it could reach, which is also what a failover
 * looks like until the sentinels promote a replica: the sentinels themselves may well answer.
 */
const SENTINEL_NO_MASTER = /^All sentinels are unreachable/;
const SENTINEL_NO_MASTER_HINT =
  'no sentinel named a master this worker could reach (the sentinels may well be up): during a failover this lasts until they promote a replica; if it persists, check the sentinel addresses, the master name and that the master is reachable from here';

/**
 * ioredis's words for an outage under way, with what they mean. Not in redis-errors' table: its
 * errors are configuration mistakes or refusals, on which producers fail at once instead of waiting.
 */
const OUTAGE_TRACES: { pattern: RegExp; code?: string; hint: string }[] = [
  { pattern: SENTINEL_NO_MASTER, hint: SENTINEL_NO_MASTER_HINT },
  {
    pattern: /^Failed to refresh slots cache/,
    code: 'SVCNODE_REDIS_UNAVAILABLE',
    hint: 'no node of the Redis Cluster answered for its slot map: the cluster is down or unreachable from here (a failover in progress ends within cluster-node-timeout); the worker reconnects by itself, takes jobs again once the cluster answers and logs "Redis connection restored"',
  },
];

/** BullMQ's words when the job's key is gone as it writes the outcome (a failover dropped writes not yet replicated). */
const MISSING_JOB_KEY = /^Missing key for job (.+)\. \w+$/;
const JOB_KEY_LOST_HINT =
  "no worker will run it again and a flow waiting for it reads SVCNODE_JOB_NOT_FOUND; find out whether the backend acted on it before enqueuing it again (with the same requestId): see the README, Operations, 'Failover loses the last writes'";

const CLUSTER_DOWN_HINT =
  "a master of the cluster failed and its replica is not promoted yet (this lasts about cluster-node-timeout), or a slot has no master at all: if it lasts, redis-cli --cluster check HOST:PORT shows the uncovered slots and redis-cli --cluster fix assigns them; see the README on failover for what a failover can lose";

const STALLED_HINT =
  "its worker was killed or blocked past its lock (timeouts above lockDurationMs, a stopped process), or a failover dropped its completion; an invocation that reached the backend runs twice: see the README, Operations, 'Failover loses the last writes'";

/**
 * A condition Redis Cluster reports over and over while it lasts (TRYAGAIN, CLUSTERDOWN): said
 * once when it starts and once when none has come for `windowMs`.
 */
class Episode {
  private span: { since: number; last: number } | undefined;

  /** Note one report; true when it starts a new episode. */
  seen(now: number): boolean {
    if (this.span) {
      this.span.last = now;
      return false;
    }
    this.span = { since: now, last: now };
    return true;
  }

  /** Whether one was reported within `windowMs`. */
  active(now: number, windowMs: number): boolean {
    return this.span !== undefined && now - this.span.last < windowMs;
  }

  /** The episode's length once none has come for `windowMs` (and it is then closed); else undefined. */
  ended(now: number, windowMs: number): number | undefined {
    if (!this.span || now - this.span.last < windowMs) return undefined;
    const length = this.span.last - this.span.since;
    this.span = undefined;
    return length;
  }
}

/** The node a job names, for log lines (its data is the producer's: anything). */
function nodeIdOf(job: Job): unknown {
  return (job.data as { nodeId?: unknown } | undefined)?.nodeId;
}

/** How long a probe waits: with maxRetriesPerRequest null a command on a dead node never returns. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * Runs the BullMQ worker and keeps it taking jobs: a watchdog recreates it when it stops (its
 * run loop ended, or jobs wait while it sits idle with free slots and Redis answers), which
 * BullMQ workers are known to do after a failover. Also tracks the jobs it holds for shutdown.
 */
export class WorkerSupervisor {
  private worker: SafeWorker;
  private connection: RedisConnection;
  /** Jobs taken and not yet let go: finished in Redis (completed, failed or moved to delayed) or given up. A SlotList, not a Set: see SlotList. */
  private readonly held = new SlotList<Job>();
  /** Jobs let go while closing whose outcome Redis did not confirm: they return to the queue through the stall check. */
  private unconfirmedWhileClosing = 0;
  private lastTakenAt = Date.now();
  private lastCheckAt = Date.now();
  private stuckSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly errors = new RepeatGate(10_000);
  /** The last time Redis refused one of the worker's commands, and why. */
  private refusedCommand: { code: string; at: number } | undefined;
  /** The CLUSTERDOWN episode under way. */
  private readonly down = new Episode();
  /** The slot migration under way, as TRYAGAIN replies tell it. */
  private readonly migration = new Episode();
  /** Ids of held jobs whose key BullMQ found gone when it wrote their outcome. */
  private readonly keyLost = new Set<string>();

  constructor(private readonly o: SupervisorOptions) {
    ({ worker: this.worker, connection: this.connection } = this.create());
    // The health probe's connection meets a cluster outage first when the worker idles.
    onClusterRetry(o.probe, (kind, error) => kind === 'CLUSTERDOWN' && this.clusterDown(error));
  }

  private create(): { worker: SafeWorker; connection: RedisConnection } {
    const connection = this.o.open('worker');
    let lost = false;
    // BullMQ re-emits its connection's errors as the worker's: each is logged once, here.
    const fromConnection = new WeakSet<Error>();
    connection.on('error', (error: Error) => {
      lost = true;
      fromConnection.add(error);
      this.logError('Redis connection error', error);
    });
    // The end of an outage is said too, so a log reader sees when the errors stopped mattering.
    connection.on('ready', () => {
      if (!lost) return;
      lost = false;
      this.o.logger.info('Redis connection restored: the worker takes jobs again');
    });
    coalesceWrites(connection);
    onClusterRetry(connection, (kind, error) => (kind === 'TRYAGAIN' ? this.slotMigrating(error) : this.clusterDown(error)));
    // Two parameters on purpose: BullMQ creates an AbortController per job for a processor that
    // takes a third (its signal); calls are aborted by the worker's one shutdown signal instead.
    const worker = new SafeWorker(QUEUE_NAME, (job, token) => this.run(job, token), {
      connection,
      ...(this.o.prefix ? { prefix: this.o.prefix } : {}),
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockDurationMs,
      stalledInterval: this.o.stalledIntervalMs,
      maxStalledCount: WORKER_DEFAULTS.maxStalledCount,
      removeOnComplete: WORKER_DEFAULTS.removeOnComplete,
      removeOnFail: WORKER_DEFAULTS.removeOnFail,
      autorun: false,
    }, this.o.refusedPauseMs ?? WORKER_DEFAULTS.refusedPauseMs, (job) => this.release(job));
    worker.on('error', (error) => {
      if (fromConnection.has(error)) return;
      const lostId = MISSING_JOB_KEY.exec(error.message)?.[1];
      if (lostId !== undefined && [...this.held.values()].some((job) => job.id === lostId)) {
        this.keyLost.add(lostId);
        return;
      }
      const refused = commandRefusal(error);
      if (refused?.code === 'SVCNODE_REDIS_TRYAGAIN') return this.slotMigrating(error);
      if (refused) this.refusedCommand = { code: refused.code, at: Date.now() };
      this.logError('worker error', error);
    });
    // Keyed by the Job object, not its id: a job that stalled can be taken again while the first
    // attempt is still running, and another worker may finish a job this one had to give up.
    worker.on('failed', (job, error) => {
      if (job) this.held.delete(job);
      this.o.logger.error({ jobId: job?.id, err: error.message }, 'job failed (infrastructure)');
    });
    worker.on('completed', (job) => {
      this.held.delete(job);
    });
    // A job whose worker died, lost its lock, or whose completion a failover dropped: it runs again.
    worker.on('stalled', (jobId) => {
      this.o.logger.warn({ jobId, hint: STALLED_HINT }, 'job returned to the queue by the stall check: it will run again, and the backend may already have had it');
    });
    return { worker, connection };
  }

  /**
   * BullMQ let go of a job. Still held here means its outcome was not written: its lock was lost
   * (e.g. in a failover) or Redis could not be reached. The stall check returns it to the queue.
   */
  private release(job: Job): void {
    if (!this.held.delete(job)) return;
    if (this.closing) this.unconfirmedWhileClosing++;
    const nodeId = nodeIdOf(job);
    if (job.id !== undefined && this.keyLost.delete(job.id)) {
      this.o.logger.error({ jobId: job.id, nodeId, code: 'SVCNODE_JOB_KEY_LOST', hint: JOB_KEY_LOST_HINT }, 'job gone from Redis (lost in a failover that dropped writes not yet replicated): the invocation ran, but its Result could not be stored');
      return;
    }
    this.o.logger.warn({ jobId: job.id, nodeId }, 'job outcome not confirmed by Redis: the stall check returns it to the queue');
  }

  /** Redis Cluster refused a script of the worker (TRYAGAIN): the queue's slot migrates. Said once per migration. */
  private slotMigrating(error: Error): void {
    const refused = commandRefusal(error);
    if (!refused) return;
    const now = Date.now();
    this.refusedCommand = { code: refused.code, at: now };
    if (!this.migration.seen(now)) return;
    this.o.logger.warn({ err: error.message, code: refused.code, hint: refused.hint }, "Redis Cluster refuses the queue's scripts: the queue's slot is migrating between cluster nodes, and jobs wait until it completes");
  }

  /** The end of a slot migration: no TRYAGAIN for a while. */
  private migrationOver(now: number): void {
    const refusedForMs = this.migration.ended(now, this.refusalWindowMs);
    if (refusedForMs !== undefined) this.o.logger.info({ code: 'SVCNODE_REDIS_TRYAGAIN', refusedForMs }, "Redis Cluster takes the queue's scripts again: the slot migration is over");
  }

  /** Redis Cluster answered CLUSTERDOWN (a slot without a master: a failover under way, or worse). Said once per outage. */
  private clusterDown(error: Error): void {
    if (!this.down.seen(Date.now())) return;
    this.o.logger.warn({ err: error.message, code: 'SVCNODE_REDIS_CLUSTER_DOWN', hint: CLUSTER_DOWN_HINT }, 'Redis Cluster is down for the queue: a slot has no working master; jobs wait until a replica takes over');
  }

  /** The end of a CLUSTERDOWN episode: none for a while. */
  private clusterUpAgain(now: number): void {
    const downForMs = this.down.ended(now, this.refusalWindowMs);
    if (downForMs !== undefined) this.o.logger.info({ code: 'SVCNODE_REDIS_CLUSTER_DOWN', downForMs }, 'Redis Cluster serves the queue again');
  }

  /** True while Redis Cluster answers CLUSTERDOWN (seen within the refusal window). */
  clusterIsDown(): boolean {
    return this.down.active(Date.now(), this.refusalWindowMs);
  }

  /** How long a refusal counts after Redis last refused: a fetch is retried every refusedPauseMs, the watchdog looks every watchdogIntervalMs. */
  private get refusalWindowMs(): number {
    return 2 * Math.max(this.o.watchdogIntervalMs ?? WORKER_DEFAULTS.watchdogIntervalMs, this.o.refusedPauseMs ?? WORKER_DEFAULTS.refusedPauseMs);
  }

  private async run(job: Job, token?: string): Promise<Result> {
    this.held.add(job);
    this.lastTakenAt = Date.now();
    if (job.stalledCounter > 0) {
      this.o.logger.warn({ jobId: job.id, nodeId: nodeIdOf(job), stalled: job.stalledCounter }, 'running a job the stall check returned to the queue: the backend may have had this invocation before');
    }
    // A job was moved to active: Redis takes the queue's commands again.
    this.refusedCommand = undefined;
    try {
      return await this.o.processor(job, token);
    } catch (error) {
      // A retry already moved the job to delayed in Redis, or the shutdown handed it back to the
      // wait list (or left it to the stall check): it is no longer held.
      if (error instanceof DelayedError) this.held.delete(job);
      else if (error instanceof WaitingError) this.held.delete(job);
      throw error;
    }
  }

  /** The same error once per 10 s with a count: a wrong node answers MOVED thousands of times a second. */
  private logError(message: string, error: Error): void {
    // Keyed by the text alone, its numbers aside: the worker's two connections (commands, blocking
    // fetch) meet the same outage, and ioredis counts its growing retry delay into the message.
    const repeated = this.errors.pass(error.message.replace(/\d+/g, '#'));
    if (repeated === undefined) return;
    const known = knownRedisError(error);
    const trace = known ? undefined : OUTAGE_TRACES.find((t) => t.pattern.test(error.message));
    const code = known?.code ?? trace?.code;
    const hint = known?.hint ?? trace?.hint;
    this.o.logger.warn({ err: error.message, ...(repeated ? { repeated } : {}), ...(code ? { code } : {}), ...(hint ? { hint } : {}) }, message);
  }

  /** The BullMQ worker now in use (it changes when the watchdog recreates it). */
  get current(): SafeWorker {
    return this.worker;
  }

  /** Start consuming and watching. */
  start(): void {
    this.runWorker(this.worker);
    const every = this.o.watchdogIntervalMs ?? WORKER_DEFAULTS.watchdogIntervalMs;
    this.timer = setInterval(() => void this.check().catch((error: unknown) => this.logError('watchdog error', error as Error)), every);
    this.timer.unref();
  }

  private runWorker(worker: SafeWorker): void {
    worker.run().catch((error: unknown) => this.o.logger.error({ err: (error as Error).message }, 'worker run loop ended'));
  }

  /** One round trip on the queue's own keys (its wait list and meta hash), with a timeout. */
  async probe(): Promise<Probe> {
    const base = `${this.o.prefix ?? 'bull'}:${QUEUE_NAME}`;
    try {
      const [waiting, paused] = await withTimeout(Promise.all([this.o.probe.llen(`${base}:wait`), this.o.probe.hget(`${base}:meta`, 'paused')]), PROBE_TIMEOUT_MS, () => new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`));
      return { ok: true, waiting, paused: paused !== null };
    } catch (error) {
      const known = knownRedisError(error);
      const refused = commandRefusal(known);
      if (refused) return { ok: false, reason: 'redis refuses commands', detail: (error as Error).message, code: refused.code };
      const reason = known?.code === 'SVCNODE_REDIS_WRONG_NODE' ? 'MOVED: wrong node' : known?.code === 'SVCNODE_REDIS_AUTH' ? 'redis auth refused' : 'redis unreachable';
      return { ok: false, reason, detail: (error as Error).message };
    }
  }

  /** The code of Redis's refusal (see commandRefusal) when it refused one of the worker's commands in the last few seconds. */
  commandsRefused(): string | undefined {
    const r = this.refusedCommand;
    return r !== undefined && Date.now() - r.at < this.refusalWindowMs ? r.code : undefined;
  }

  /** False when the worker's loop ended, the watchdog sees it idle while jobs wait, or Redis refuses its commands. */
  takingJobs(): boolean {
    const every = this.o.watchdogIntervalMs ?? WORKER_DEFAULTS.watchdogIntervalMs;
    return this.worker.isRunning() && (this.stuckSince === undefined || Date.now() - this.stuckSince < every * 2) && this.commandsRefused() === undefined;
  }

  /** One watchdog round. */
  async check(): Promise<void> {
    if (this.closing) return;
    const now = Date.now();
    this.migrationOver(now);
    this.clusterUpAgain(now);
    const tookSinceLastCheck = this.lastTakenAt >= this.lastCheckAt;
    this.lastCheckAt = now;
    if (!this.worker.isRunning()) return this.recreate('run loop ended');
    const probe = await this.probe();
    // Idle because Redis refuses its commands is not a stuck worker: a new one would be refused too.
    if (!probe.ok || probe.paused || probe.waiting === 0 || this.held.size >= this.o.concurrency || tookSinceLastCheck || this.commandsRefused() !== undefined) {
      this.stuckSince = undefined;
      return;
    }
    this.stuckSince ??= now;
    if (now - this.stuckSince >= (this.o.watchdogIdleMs ?? WORKER_DEFAULTS.watchdogIdleMs)) await this.recreate(`idle while ${probe.waiting} jobs wait`);
  }

  /** Replace the BullMQ worker and its connection; the old one finishes what it holds in the background. */
  private async recreate(reason: string): Promise<void> {
    if (this.closing) return;
    this.o.logger.warn({ reason }, 'BullMQ worker stopped taking jobs: recreating it');
    this.o.metrics.workerRecreations.inc();
    const old = { worker: this.worker, connection: this.connection };
    ({ worker: this.worker, connection: this.connection } = this.create());
    this.stuckSince = undefined;
    this.lastTakenAt = Date.now();
    this.runWorker(this.worker);
    await withTimeout(old.worker.close(), this.o.lockDurationMs, () => new Error('old worker did not close')).catch(() => old.worker.close(true).catch(() => undefined));
    old.connection.disconnect();
  }

  /** Resolves true once no job is held, false when `limitMs` passed first. */
  private heldEmpty(limitMs: number): Promise<boolean> {
    const until = Date.now() + limitMs;
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.held.size === 0) resolve(true);
        else if (Date.now() >= until) resolve(false);
        else setTimeout(check, 20).unref();
      };
      check();
    });
  }

  /**
   * Stop taking jobs and wait up to `graceMs` for held ones to finish; then cut short the calls
   * still running (`abortCalls`), let their jobs go back to the queue, and release everything,
   * bounded in time whatever Redis does. `drained`: every held job finished in Redis.
   */
  async close(graceMs: number, abortCalls?: () => void): Promise<{ drained: boolean }> {
    this.closing = true;
    clearInterval(this.timer);
    const closed = this.worker.close().then(
      () => true,
      () => false,
    );
    // Nothing held is nothing to wait for: BullMQ's own close can wait on an unreachable Redis for
    // the whole grace period. It gets a moment to close cleanly, then the forced close below.
    const idle = this.heldEmpty(graceMs).then((empty) => empty && new Promise((resolve) => setTimeout(resolve, IDLE_CLOSE_MS).unref()));
    await withTimeout(Promise.race([closed, idle]), graceMs, () => new Error('grace period over')).catch(() => false);
    const drained = this.held.size === 0 && this.unconfirmedWhileClosing === 0;
    // Calls still running are cut short; while Redis answers, each job goes back to the wait list
    // for another worker at once (the processor's hand-back) instead of after its lock expires.
    if (this.held.size > 0 && abortCalls) {
      this.o.logger.warn({ jobs: this.held.size, graceMs }, 'grace period over: cutting short the calls still running');
      abortCalls();
      if (this.connection.status === 'ready') await this.heldEmpty(HAND_BACK_MS);
    }
    // A forced close can itself wait on a dead Redis: give it a moment, then cut the sockets.
    await withTimeout(this.worker.close(true), 500, () => new Error('forced close timed out')).catch(() => undefined);
    this.connection.disconnect();
    return { drained };
  }
}
