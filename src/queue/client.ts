import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import type { Invocation } from '../definitions/types.js';
import { validateDocument } from '../definitions/validator.js';
import { UnavailableError } from '../errors.js';
import { FailureStore, type FailureSummary, type NodeFailures } from '../failures/store.js';
import type { Result } from '../invoke/result.js';
import { DEFAULT_REDIS_URL, checkDatabase, connectTarget, isCluster, parseRedisUrl, redactRedisUrl, resolvePrefix, type RedisConnection } from './connection.js';
import { JOB_NAME, QUEUE_NAME, WORKER_DEFAULTS } from './constants.js';
import { diagnose } from './redis-diagnose.js';
import { knownRedisError, translateRedisError } from './redis-errors.js';

export interface ServiceNodeClientOptions {
  /** Any Redis URL form (single node, Sentinel, Cluster). @defaultValue $REDIS_URL or redis://127.0.0.1:6379 */
  redisUrl?: string;
  /**
   * A ready ioredis `Redis` or `Cluster` instead of a URL. It stays yours: `close()` leaves it open.
   * Results are awaited on a duplicate of it.
   */
  connection?: RedisConnection;
  /** How long a call waits for Redis before failing with UnavailableError. @defaultValue 10000 */
  connectTimeoutMs?: number;
  /** BullMQ key prefix, the same as the workers'. @defaultValue 'bull'; '{svcnode}' on a cluster */
  prefix?: string;
  /** Where `?sentinelPasswordEnv=VAR` in the URL is read. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
}

export interface EnqueueOptions {
  requestId?: string;
  /** Idempotency key: a second enqueue with the same id returns the existing job. */
  jobId?: string;
}

/** Error thrown by `invoke` when no Result arrives in time. */
export class InvokeTimeoutError extends Error {
  readonly code = 'SVCNODE_TIMEOUT';
  constructor(
    readonly jobId: string,
    timeoutMs: number,
  ) {
    super(`no Result for job ${jobId} within ${timeoutMs} ms; the job stays queued and will still run`);
  }
}

/** Producer API for bot flows: enqueue invocations and optionally wait for their Result. */
export class ServiceNodeClient {
  private readonly where: string;
  private readonly prefix: string | undefined;
  private readonly connection: RedisConnection;
  /** False when the caller passed the connection: it is theirs to close. */
  private readonly ownsConnection: boolean;
  private readonly queue: Queue;
  private events: QueueEvents | undefined;
  private eventsOpening: Promise<void> | undefined;
  private readonly connectTimeoutMs: number;
  private lastRedisError: unknown;
  private databaseChecked = false;
  private eventsConnection: RedisConnection | undefined;

  constructor(options: ServiceNodeClientOptions = {}) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    if (options.connection) {
      this.connection = options.connection;
      this.ownsConnection = false;
      this.where = isCluster(options.connection) ? 'the given Redis Cluster' : 'the given Redis connection';
      // A prefix without a hash tag is refused on a cluster before any command is sent.
      this.prefix = resolvePrefix(isCluster(this.connection), options.prefix);
    } else {
      const url = options.redisUrl ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
      const target = parseRedisUrl(url, options.env ?? process.env);
      this.prefix = resolvePrefix(target.kind === 'cluster', options.prefix);
      this.connection = connectTarget(target, 'producer');
      this.ownsConnection = true;
      this.where = redactRedisUrl(url);
    }
    this.connection.on('error', (error: Error) => {
      this.lastRedisError = error;
    });
    this.queue = new Queue(QUEUE_NAME, {
      connection: this.connection,
      ...(this.prefix ? { prefix: this.prefix } : {}),
      defaultJobOptions: { removeOnComplete: WORKER_DEFAULTS.removeOnComplete, removeOnFail: WORKER_DEFAULTS.removeOnFail },
    });
    this.queue.on('error', (error: Error) => {
      this.lastRedisError = error;
    });
  }

  /** Wait until Redis answers, or fail with UnavailableError after connectTimeoutMs. */
  private async ready(): Promise<void> {
    if (this.connection.status !== 'ready') await this.connected();
    if (!this.databaseChecked) {
      await checkDatabase(this.connection);
      this.databaseChecked = true;
    }
  }

  private async connected(): Promise<void> {
    const early = knownRedisError(this.lastRedisError);
    if (early) throw early;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error): void => {
        clearTimeout(timer);
        this.connection.off('ready', onReady);
        this.connection.off('error', onError);
        if (error) reject(error);
        else resolve();
      };
      const onReady = (): void => done();
      // Refused credentials never turn into 'ready': say so now instead of after the timeout.
      const onError = (error: Error): void => {
        const known = knownRedisError(error);
        if (known) done(known);
      };
      const timer = setTimeout(() => {
        const last = this.lastRedisError === undefined ? '' : ` (${(this.lastRedisError as Error).message})`;
        const unavailable = new UnavailableError('SVCNODE_REDIS_UNAVAILABLE', `cannot reach Redis at ${this.where} within ${this.connectTimeoutMs} ms${last}`, { hint: 'check --redis / REDIS_URL and that Redis is running and reachable' });
        void diagnose(this.connection).then((diagnosis) => done(diagnosis ?? unavailable));
      }, this.connectTimeoutMs);
      this.connection.once('ready', onReady);
      this.connection.on('error', onError);
    });
  }

  /** Validate and enqueue one invocation; returns the job id. */
  async enqueue(nodeId: string, context: Record<string, unknown> = {}, options: EnqueueOptions = {}): Promise<string> {
    const data = validateDocument<Invocation>('invocation', { nodeId, context, ...(options.requestId ? { requestId: options.requestId } : {}) }, 'invocation');
    await this.ready();
    const job = await this.queue.add(JOB_NAME, data, { jobId: options.jobId ?? randomUUID() }).catch(translateRedisError);
    return job.id as string;
  }

  /** Wait for a job's Result. */
  async result(jobId: string, timeoutMs: number): Promise<Result> {
    if (!this.events) {
      // Concurrent first calls share one listener.
      this.eventsOpening ??= this.openEvents().finally(() => (this.eventsOpening = undefined));
      await this.eventsOpening;
    }
    const events = this.events as QueueEvents;
    const job = await this.queue.getJob(jobId).catch(translateRedisError);
    if (!job) throw new Error(`job ${jobId} not found (removed after completion, or never enqueued)`);
    try {
      return (await job.waitUntilFinished(events, timeoutMs)) as Result;
    } catch (error) {
      if (/timed out/i.test((error as Error).message)) throw new InvokeTimeoutError(jobId, timeoutMs);
      throw error;
    }
  }

  /** Start listening to the queue's events. */
  private async openEvents(): Promise<void> {
    // QueueEvents starts reading at '$' only once its connection has answered CLIENT SETNAME,
    // while waitUntilFinished checks "finished?" on the queue's connection: a job finishing in
    // between was never reported and the caller waited out its timeout. Reading from the
    // stream's last entry as of now leaves no such gap.
    await this.ready();
    const lastEventId = await lastStreamId(this.connection, this.queue.toKey('events')).catch(translateRedisError);
    // QueueEvents blocks on XREAD, so its connection must never give up on a command.
    const c = this.connection;
    const events = isCluster(c) ? c.duplicate(undefined, { redisOptions: { ...c.options.redisOptions, maxRetriesPerRequest: null } }) : c.duplicate({ maxRetriesPerRequest: null });
    events.on('error', () => undefined);
    this.eventsConnection = events;
    this.events = new QueueEvents(QUEUE_NAME, { connection: events, lastEventId, ...(this.prefix ? { prefix: this.prefix } : {}) });
    this.events.on('error', () => undefined);
    await this.events.waitUntilReady().catch(translateRedisError);
  }

  /** Enqueue and wait for the Result. */
  async invoke(nodeId: string, context: Record<string, unknown> = {}, options: EnqueueOptions & { timeoutMs?: number } = {}): Promise<Result> {
    const jobId = await this.enqueue(nodeId, context, options);
    return this.result(jobId, options.timeoutMs ?? 120_000);
  }

  /** Per-node failure records. */
  failures(): Promise<FailureSummary>;
  failures(nodeId: string): Promise<NodeFailures>;
  async failures(nodeId?: string): Promise<FailureSummary | NodeFailures> {
    await this.ready();
    const store = new FailureStore(this.connection, { prefix: this.prefix ? `${this.prefix}:svcnode` : 'svcnode' });
    return (nodeId === undefined ? store.summary() : store.node(nodeId)).catch(translateRedisError);
  }

  /** Release the client's connections (a connection passed in stays open). */
  async close(): Promise<void> {
    if (this.connection.status !== 'ready') {
      // Nothing to flush: do not wait for a reconnect that may never come.
      this.eventsConnection?.disconnect();
      if (this.ownsConnection) this.connection.disconnect();
      await Promise.allSettled([this.events?.close(), this.queue.close()]);
      return;
    }
    await this.events?.close();
    await this.eventsConnection?.quit().catch(() => undefined);
    await this.queue.close();
    if (this.ownsConnection) await this.connection.quit().catch(() => undefined);
  }
}

/** The id of a stream's last entry, or 0-0 when it has none (reading from there misses nothing newer). */
async function lastStreamId(connection: RedisConnection, key: string): Promise<string> {
  const [last] = await connection.xrevrange(key, '+', '-', 'COUNT', 1);
  return last?.[0] ?? '0-0';
}
