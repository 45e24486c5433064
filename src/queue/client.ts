import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { Queue, QueueEvents } from 'bullmq';
import type { Invocation } from '../definitions/types.js';
import { MAX_JSON_FILE_BYTES, checkContext, validateDocument } from '../definitions/validator.js';
import { InvalidInputError, SvcnodeError, UnavailableError, errorMessage } from '../errors.js';
import { FailureStore, type FailureSummary, type NodeFailures } from '../failures/store.js';
import type { Result } from '../invoke/result.js';
import { BULLMQ_PREFIX, DEFAULT_REDIS_URL, checkDatabase, connectTarget, isCluster, parseRedisUrl, redactRedisUrl, resolvePrefix, svcnodeKeyPrefix, withTimeout, type RedisConnection } from './connection.js';
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
  override readonly name = 'InvokeTimeoutError';
  readonly code = 'SVCNODE_TIMEOUT';
  /** What to do: start a worker when none serves the queue, else wait longer. */
  readonly hint: string;
  constructor(
    readonly jobId: string,
    timeoutMs: number,
    /** No worker was connected to the queue (prefix) when the wait ended; undefined when Redis would not say. */
    noWorker?: { prefix: string },
  ) {
    super(`no Result for job ${jobId} within ${timeoutMs} ms; ${noWorker ? `no worker is connected to this queue (prefix "${noWorker.prefix}") on this Redis: the job stays queued and runs once one is` : 'the job stays queued and will still run'}`);
    this.hint = noWorker ? `start a worker with the same Redis URL and prefix (svcnode worker --redis … --prefix ${noWorker.prefix}), or check the producer's --prefix` : 'wait longer (--timeout-ms), or add workers if the queue is backed up';
  }
}

/** Refuse an id no node can have, by the invocation schema's own pattern. */
function checkNodeId(nodeId: string): void {
  try {
    validateDocument<Invocation>('invocation', { nodeId }, 'node id');
  } catch {
    const shown = JSON.stringify(nodeId.length > 64 ? `${nodeId.slice(0, 64)}…` : nodeId);
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${shown} is not a node id: an id is 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit`, { field: '/nodeId', hint: 'check the id against the node definition; without an id, failures lists every node that has records' });
  }
}

/** How long close() waits for Redis to confirm before it cuts the client's connections. */
const CLOSE_WAIT_MS = 2_000;
/** How long one read of the events stream blocks in Redis. */
const EVENTS_BLOCK_MS = 2_000;
/** Node's timer limit: the longest wait a timeoutMs can ask for. */
const MAX_TIMEOUT_MS = 2_147_483_647;

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
  private connecting: Promise<void> | undefined;
  private readonly connectTimeoutMs: number;
  private lastRedisError: unknown;
  /** Errors seen on any of this client's Redis connections: a wait that saw some and timed out says Redis was lost. */
  private redisErrors = 0;
  private databaseChecked = false;
  private eventsConnection: RedisConnection | undefined;
  /** Aborted by close(): calls in progress end with SVCNODE_CLIENT_CLOSED instead of waiting on. */
  private readonly closing = new AbortController();
  private closed: Promise<void> | undefined;

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
    this.connection.on('error', (error: Error) => this.noteRedisError(error));
    this.queue = new Queue(QUEUE_NAME, {
      connection: this.connection,
      ...(this.prefix ? { prefix: this.prefix } : {}),
      defaultJobOptions: { removeOnComplete: WORKER_DEFAULTS.removeOnComplete, removeOnFail: WORKER_DEFAULTS.removeOnFail },
    });
    this.queue.on('error', (error: Error) => this.noteRedisError(error));
    // Each pending call listens on both (removed when it ends): a flow awaiting many Results at once
    // is normal use, not a leak, and Node would warn from the eleventh.
    this.queue.setMaxListeners(0);
    setMaxListeners(0, this.closing.signal);
  }

  private noteRedisError(error: Error): void {
    this.lastRedisError = error;
    this.redisErrors++;
  }

  /** Wait until Redis answers, or fail with UnavailableError after connectTimeoutMs. */
  private async ready(): Promise<void> {
    // Concurrent first calls share one wait (each would add its listeners to the connection).
    if (this.connection.status !== 'ready') await (this.connecting ??= this.connected().finally(() => (this.connecting = undefined)));
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
        const unavailable = new UnavailableError('SVCNODE_REDIS_UNAVAILABLE', `cannot reach Redis at ${this.where} within ${this.connectTimeoutMs} ms${last}`, { hint: 'check the Redis URL (--redis, REDIS_URL, or the client option redisUrl) and that Redis is running and reachable' });
        void diagnose(this.connection).then((diagnosis) => done(diagnosis ?? unavailable));
      }, this.connectTimeoutMs);
      this.connection.once('ready', onReady);
      this.connection.on('error', onError);
    });
  }

  /** Validate and enqueue one invocation; returns the job id. */
  async enqueue(nodeId: string, context: Record<string, unknown> = {}, options: EnqueueOptions = {}): Promise<string> {
    this.assertOpen();
    // The worker gets the context's JSON form: that is what is validated, so a Date or a Map fails here, not there.
    // Checked before serialising: a hostile depth would overflow the stack, and JSON sends Infinity and NaN as null.
    checkContext(context, 'invocation');
    const data = validateDocument<Invocation>('invocation', { nodeId, context: jsonForm(context), ...(options.requestId ? { requestId: options.requestId } : {}) }, 'invocation');
    await this.whileOpen(this.ready(), 'before Redis answered; nothing was enqueued');
    const job = await this.whileOpen(this.queue.add(JOB_NAME, data, { jobId: options.jobId ?? randomUUID() }).catch(translateRedisError), 'before Redis confirmed the enqueue: the job may or may not be queued');
    return job.id as string;
  }

  /** Wait for a job's Result. */
  async result(jobId: string, timeoutMs: number): Promise<Result> {
    this.assertOpen();
    checkTimeoutMs(timeoutMs);
    const waiting = `while waiting for the Result of job ${jobId}; the job stays queued and will still run (read its Result later with result())`;
    if (!this.events) {
      // Concurrent first calls share one listener.
      this.eventsOpening ??= this.openEvents().finally(() => (this.eventsOpening = undefined));
      await this.whileOpen(this.eventsOpening, waiting);
    }
    const events = this.events as QueueEvents;
    const errorsBefore = this.redisErrors;
    const job = await this.whileOpen(this.queue.getJob(jobId).catch(translateRedisError), waiting);
    if (!job) throw new SvcnodeError('SVCNODE_JOB_NOT_FOUND', `job ${jobId} not found (removed after completion, or never enqueued)`, { hint: 'completed jobs are kept 24 h or up to 10,000; wait with invoke() or result() soon after enqueue()' });
    try {
      return (await this.whileOpen(job.waitUntilFinished(events, timeoutMs), waiting)) as Result;
    } catch (error) {
      if (error instanceof SvcnodeError) throw error;
      const message = errorMessage(error);
      // BullMQ's own wording for its ttl; anything else is the job's failedReason.
      if (/^Job wait .* timed out before finishing/.test(message)) {
        // A Result that could not arrive because Redis was gone is not a worker that took too long.
        if (this.redisErrors !== errorsBefore) {
          const last = errorMessage(this.lastRedisError);
          throw new UnavailableError('SVCNODE_REDIS_UNAVAILABLE', `no Result for job ${jobId} within ${timeoutMs} ms: Redis at ${this.where} was unreachable during the wait (last error: ${last}); unless Redis lost its data, the job stays queued and will still run`, { hint: 'check that Redis is running and reachable; once a worker has run the job, its Result is in Redis (library: result(jobId, timeoutMs))' });
        }
        throw new InvokeTimeoutError(jobId, timeoutMs, (await this.workersConnected()) === 0 ? { prefix: this.prefix ?? BULLMQ_PREFIX } : undefined);
      }
      const known = knownRedisError(error);
      if (known) throw known;
      // BullMQ rejects with the job's failedReason, or with the error of a Redis command: ask the job.
      if ((await this.jobState(jobId)) === 'failed') {
        throw new SvcnodeError('SVCNODE_JOB_FAILED', `job ${jobId} failed in the queue without a Result: ${message}`, { hint: 'a job fails only when infrastructure fails (it stalled too often: workers crashed or were blocked mid-call); see the worker logs' });
      }
      throw new UnavailableError('SVCNODE_REDIS_UNAVAILABLE', `lost Redis at ${this.where} ${waiting}: ${message}`, { cause: error, hint: 'check that Redis is running and reachable; then read the Result with result(jobId, timeoutMs)' });
    }
  }

  /**
   * Workers connected to this queue (BullMQ names their connections; CLIENT LIST), or undefined
   * when Redis does not say within CLOSE_WAIT_MS (CLIENT refused by an ACL, a cluster node down).
   */
  private workersConnected(): Promise<number | undefined> {
    return withTimeout(this.queue.getWorkersCount(), CLOSE_WAIT_MS, () => new Error('no worker count in time')).catch(() => undefined);
  }

  /** The job's state, or undefined when Redis does not say within CLOSE_WAIT_MS. */
  private jobState(jobId: string): Promise<string | undefined> {
    return withTimeout(this.queue.getJobState(jobId), CLOSE_WAIT_MS, () => new Error('no job state in time')).catch(() => undefined);
  }

  private assertOpen(): void {
    if (this.closed) throw new SvcnodeError('SVCNODE_CLIENT_CLOSED', 'this ServiceNodeClient is closed', { hint: 'create a new ServiceNodeClient; close() is for when the process is done with it' });
  }

  /** `work`, unless close() comes first: then SVCNODE_CLIENT_CLOSED saying what that means for the job. */
  private whileOpen<T>(work: Promise<T>, meaning: string): Promise<T> {
    const signal = this.closing.signal;
    if (signal.aborted) return Promise.reject(new SvcnodeError('SVCNODE_CLIENT_CLOSED', `the client was closed ${meaning}`));
    return new Promise<T>((resolve, reject) => {
      const onClose = (): void => reject(new SvcnodeError('SVCNODE_CLIENT_CLOSED', `the client was closed ${meaning}`));
      signal.addEventListener('abort', onClose, { once: true });
      work.then(
        (value) => {
          signal.removeEventListener('abort', onClose);
          resolve(value);
        },
        (error: Error) => {
          signal.removeEventListener('abort', onClose);
          reject(error);
        },
      );
    });
  }

  /** Start listening to the queue's events. */
  private async openEvents(): Promise<void> {
    // QueueEvents starts reading at '$' only once its connection has answered CLIENT SETNAME,
    // while waitUntilFinished checks "finished?" on the queue's connection: a job finishing in
    // between was never reported and the caller waited out its timeout. Reading from the
    // stream's last entry as of now leaves no such gap.
    await this.ready();
    const lastEventId = await lastStreamId(this.connection, this.queue.toKey('events')).catch(translateRedisError);
    // close() came meanwhile: it has released what existed, so open nothing more.
    this.assertOpen();
    // QueueEvents blocks on XREAD, so its connection must never give up on a command.
    const c = this.connection;
    const events = isCluster(c) ? c.duplicate(undefined, { redisOptions: { ...c.options.redisOptions, maxRetriesPerRequest: null } }) : c.duplicate({ maxRetriesPerRequest: null });
    events.on('error', (error: Error) => this.noteRedisError(error));
    this.eventsConnection = events;
    // Blocking reads of 2 s (BullMQ's default is 10): its watchdog for a read stuck on a dead Redis
    // lasts the block time plus 1 s and holds the process that long after close().
    this.events = new QueueEvents(QUEUE_NAME, { connection: events, lastEventId, blockingTimeout: EVENTS_BLOCK_MS, ...(this.prefix ? { prefix: this.prefix } : {}) });
    this.events.on('error', () => undefined);
    await this.events.waitUntilReady().catch(translateRedisError);
  }

  /** Enqueue and wait for the Result. */
  async invoke(nodeId: string, context: Record<string, unknown> = {}, options: EnqueueOptions & { timeoutMs?: number } = {}): Promise<Result> {
    // A bad timeout is refused before anything is enqueued.
    if (options.timeoutMs !== undefined) checkTimeoutMs(options.timeoutMs);
    const jobId = await this.enqueue(nodeId, context, options);
    return this.result(jobId, options.timeoutMs ?? 120_000);
  }

  /** Per-node failure records. */
  failures(): Promise<FailureSummary>;
  failures(nodeId: string): Promise<NodeFailures>;
  async failures(nodeId?: string): Promise<FailureSummary | NodeFailures> {
    this.assertOpen();
    // An id no node can have ("../x", "*", 300 characters) is a typo to say, not an empty answer.
    if (nodeId !== undefined) checkNodeId(nodeId);
    await this.whileOpen(this.ready(), 'before Redis answered');
    const store = new FailureStore(this.connection, { prefix: svcnodeKeyPrefix(this.prefix) });
    return this.whileOpen<FailureSummary | NodeFailures>((nodeId === undefined ? store.summary() : store.node(nodeId)).catch(translateRedisError), 'before Redis answered');
  }

  /**
   * Release the client's connections (a connection passed in stays open). Calls still waiting end
   * at once with SVCNODE_CLIENT_CLOSED; later calls are refused the same way. Resolves within about
   * 2 s even when Redis is gone; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.closed ??= this.release();
    return this.closed;
  }

  private async release(): Promise<void> {
    this.closing.abort();
    // BullMQ's waitUntilFinished ends its ttl timer on the queue's 'closing' event, which only its
    // Worker emits: without it each pending wait held the process for the rest of its timeout.
    (this.queue as unknown as { emit(event: string, reason: string): boolean }).emit('closing', 'client closed');
    const owned = this.ownsConnection ? [this.connection] : [];
    const connections = [...(this.eventsConnection ? [this.eventsConnection] : []), ...owned];
    if (this.connection.status !== 'ready') {
      // Nothing to flush: do not wait for a reconnect that may never come.
      for (const c of connections) c.disconnect();
      await withTimeout(Promise.allSettled([this.events?.close(), this.queue.close()]), CLOSE_WAIT_MS, () => new Error('close timed out')).catch(() => undefined);
      return;
    }
    const polite = async (): Promise<void> => {
      await this.events?.close();
      await this.eventsConnection?.quit().catch(() => undefined);
      await this.queue.close();
      if (this.ownsConnection) await this.connection.quit().catch(() => undefined);
    };
    // A Redis that stops answering mid-close must not hold close(), or the process, for good.
    const late = new Error('close timed out');
    const cut = await withTimeout(polite(), CLOSE_WAIT_MS, () => late).then(
      () => false,
      (error: unknown) => error === late,
    );
    if (cut) for (const c of connections) c.disconnect();
  }
}

/** Refuse a timeoutMs Node's timers cannot wait (0 and NaN waited forever, the rest not at all). */
function checkTimeoutMs(timeoutMs: number): void {
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new InvalidInputError('SVCNODE_INVALID_OPTION', `timeoutMs must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}, not ${String(timeoutMs)}`, { field: 'timeoutMs', hint: 'pass how long to wait for the Result, e.g. 20000' });
  }
}

/**
 * The context as the worker will see it: its JSON form. Refused, naming the key, when JSON would
 * change or drop it silently (a Map or Set, a function) or cannot carry it (a BigInt), or
 * when it is larger than a context file may be.
 */
function jsonForm(context: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(context, (key: string, value: unknown) => {
      const kind = value instanceof Map ? 'a Map' : value instanceof Set ? 'a Set' : typeof value === 'function' ? 'a function' : typeof value === 'symbol' ? 'a symbol' : undefined;
      if (kind) throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `invocation: the context ${key === '' ? 'itself' : `key "${key.slice(0, 100)}"`} is ${kind}, which JSON would ${kind === 'a Map' || kind === 'a Set' ? 'send as {}' : 'drop'}`, { field: '/context', hint: 'pass plain objects, arrays, strings, numbers, booleans and null' });
      return value;
    });
  } catch (error) {
    if (error instanceof SvcnodeError) throw error;
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `invocation: the context cannot be sent as JSON: ${errorMessage(error)}`, { field: '/context', hint: 'pass plain objects, arrays, strings, numbers, booleans and null (a BigInt as a string; no cycles)' });
  }
  if (text === undefined) return undefined;
  if (text.length > MAX_JSON_FILE_BYTES / 3 && Buffer.byteLength(text) > MAX_JSON_FILE_BYTES) {
    throw new InvalidInputError('SVCNODE_INVALID_DEFINITION', `invocation: the context is ${(Buffer.byteLength(text) / 2 ** 20).toFixed(1)} MiB as JSON, more than the ${MAX_JSON_FILE_BYTES / 2 ** 20} MiB a context may be`, { field: '/context', hint: 'pass only what the node templates read; bulk data belongs in the backend, not in a queue job' });
  }
  return JSON.parse(text) as unknown;
}

/** The id of a stream's last entry, or 0-0 when it has none (reading from there misses nothing newer). */
async function lastStreamId(connection: RedisConnection, key: string): Promise<string> {
  const [last] = await connection.xrevrange(key, '+', '-', 'COUNT', 1);
  return last?.[0] ?? '0-0';
}
