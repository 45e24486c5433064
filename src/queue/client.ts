import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Invocation } from '../definitions/types.js';
import { validateDocument } from '../definitions/validator.js';
import { UnavailableError } from '../errors.js';
import { FailureStore, type FailureSummary, type NodeFailures } from '../failures/store.js';
import type { Result } from '../invoke/result.js';
import { DEFAULT_REDIS_URL, producerConnection, workerConnection } from './connection.js';
import { JOB_NAME, QUEUE_NAME, WORKER_DEFAULTS } from './constants.js';

export interface ServiceNodeClientOptions {
  /** @defaultValue $REDIS_URL or redis://127.0.0.1:6379 */
  redisUrl?: string;
  /** How long a call waits for Redis before failing with UnavailableError. @defaultValue 10000 */
  connectTimeoutMs?: number;
  /** BullMQ key prefix, the same as the workers'. */
  prefix?: string;
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
  private readonly redisUrl: string;
  private readonly prefix: string | undefined;
  private readonly connection: Redis;
  private readonly queue: Queue;
  private events: QueueEvents | undefined;
  private readonly connectTimeoutMs: number;
  private lastRedisError: string | undefined;
  private eventsConnection: Redis | undefined;

  constructor(options: ServiceNodeClientOptions = {}) {
    this.redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
    this.prefix = options.prefix;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.connection = producerConnection(this.redisUrl);
    this.connection.on('error', (error: Error) => {
      this.lastRedisError = error.message;
    });
    this.queue = new Queue(QUEUE_NAME, {
      connection: this.connection,
      ...(this.prefix ? { prefix: this.prefix } : {}),
      defaultJobOptions: { removeOnComplete: WORKER_DEFAULTS.removeOnComplete, removeOnFail: WORKER_DEFAULTS.removeOnFail },
    });
    this.queue.on('error', (error: Error) => {
      this.lastRedisError = error.message;
    });
  }

  /** Wait until Redis answers, or fail with UnavailableError after connectTimeoutMs. */
  private async ready(): Promise<void> {
    if (this.connection.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.connection.off('ready', onReady);
        const where = this.redisUrl.replace(/\/\/[^@/]*@/, '//***@');
        reject(new UnavailableError('SVCNODE_REDIS_UNAVAILABLE', `cannot reach Redis at ${where} within ${this.connectTimeoutMs} ms${this.lastRedisError ? ` (${this.lastRedisError})` : ''}`, {
          hint: 'check --redis / REDIS_URL and that Redis is running and reachable',
        }));
      }, this.connectTimeoutMs);
      this.connection.once('ready', onReady);
    });
  }

  /** Validate and enqueue one invocation; returns the job id. */
  async enqueue(nodeId: string, context: Record<string, unknown> = {}, options: EnqueueOptions = {}): Promise<string> {
    const data = validateDocument<Invocation>('invocation', { nodeId, context, ...(options.requestId ? { requestId: options.requestId } : {}) }, 'invocation');
    await this.ready();
    const job = await this.queue.add(JOB_NAME, data, { jobId: options.jobId ?? randomUUID() });
    return job.id as string;
  }

  /** Wait for a job's Result. */
  async result(jobId: string, timeoutMs: number): Promise<Result> {
    if (!this.events) {
      this.eventsConnection = workerConnection(this.redisUrl);
      this.eventsConnection.on('error', () => undefined);
      this.events = new QueueEvents(QUEUE_NAME, { connection: this.eventsConnection, ...(this.prefix ? { prefix: this.prefix } : {}) });
      this.events.on('error', () => undefined);
      await this.events.waitUntilReady();
    }
    const job = await this.queue.getJob(jobId);
    if (!job) throw new Error(`job ${jobId} not found (removed after completion, or never enqueued)`);
    try {
      return (await job.waitUntilFinished(this.events, timeoutMs)) as Result;
    } catch (error) {
      if (/timed out/i.test((error as Error).message)) throw new InvokeTimeoutError(jobId, timeoutMs);
      throw error;
    }
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
    return nodeId === undefined ? store.summary() : store.node(nodeId);
  }

  async close(): Promise<void> {
    if (this.connection.status !== 'ready') {
      // Nothing to flush: do not wait for a reconnect that may never come.
      this.eventsConnection?.disconnect();
      this.connection.disconnect();
      await Promise.allSettled([this.events?.close(), this.queue.close()]);
      return;
    }
    await this.events?.close();
    await this.eventsConnection?.quit().catch(() => undefined);
    await this.queue.close();
    await this.connection.quit().catch(() => undefined);
  }
}
