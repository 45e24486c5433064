import { isUtf8 } from 'node:buffer';
import { Job, Worker, type JobJson, type Processor, type WorkerOptions } from 'bullmq';
import { errorMessage } from '../errors.js';
import type { RedisConnection } from './connection.js';
import { commandRefusal } from './redis-errors.js';
import { sleepOrAbort } from './sleep.js';

/** Data a job gets when what Redis holds for it is not JSON (or not the JSON BullMQ takes); the processor answers it with `invalid_input`. */
export interface UnparsableJobData {
  /** What is wrong with the field: `is not valid JSON (the parser's message)`, `is not a JSON object (null)`. */
  unparsable: string;
  /** The job field that did not parse. */
  field: 'data' | 'opts' | 'progress' | 'parent';
}

/** True for the stand-in data of a job whose stored data could not be parsed. */
export function isUnparsable(data: unknown): data is UnparsableJobData {
  return typeof data === 'object' && data !== null && typeof (data as UnparsableJobData).unparsable === 'string';
}

/** Job hash fields BullMQ parses as JSON when it fetches a job, and what stands in for a broken one. */
const PARSED_FIELDS = { opts: '{}', progress: '0', parent: undefined } as const;

/** What BullMQ throws when a job's fields do not parse (SyntaxError) or parse to what it cannot read (TypeError: opts `null`). */
function isJobParseError(error: unknown): error is SyntaxError | TypeError {
  return error instanceof SyntaxError || error instanceof TypeError;
}

/**
 * Job options whose retention BullMQ would take over the worker's: a producer's removeOnComplete
 * trims every producer's Results (`{count: 1}` keeps one), `true` drops the Result it was added
 * for, and `null` fails BullMQ's completion script after the call (which then ran again).
 */
const RETENTION_OPTIONS = ['removeOnComplete', 'removeOnFail'] as const;

/**
 * A BullMQ Worker that survives what a foreign producer can leave in Redis and a Redis that
 * refuses its commands. BullMQ parses a job's fields after moving it to active and throws outside any
 * job: the job then sits in active, stalls and is fetched again forever. Here it becomes a job
 * with stand-in data, which the processor ends with an `invalid_input` Result.
 */
export class SafeWorker extends Worker {
  /** Ends a pause after a refused command at once when the worker closes. */
  private readonly pauses = new AbortController();
  /** The worker's own (non-blocking) connection, for the repair of an unparsable job. */
  private readonly redis: RedisConnection;
  /**
   * Jobs whose attempts counter in Redis (`atm`) is not an integer: BullMQ's completion script
   * increments it after taking the job out of active, so it would fail there and leave the job in
   * no list at all. Reset to 0 before the call.
   */
  private readonly badCounters = new WeakSet<Job>();
  /** Jobs whose data holds U+FFFD, which may stand for bytes that are not UTF-8: their call would send the replacement characters. */
  private readonly maybeNotUtf8 = new WeakSet<Job>();

  /**
   * `refusedPauseMs`: how long to wait before fetching again after Redis refused the fetch
   * (OOM, MISCONF, READONLY, NOREPLICAS, BUSY, NOPERM, TRYAGAIN once ioredis gave up retrying it). BullMQ fetches again at once, so a worker would spin at full
   * CPU, hammering Redis, for as long as Redis refuses. `released`: called when BullMQ lets go of
   * a job, its outcome written or not (a lost lock, an unreachable Redis); no event says the latter.
   */
  constructor(
    name: string,
    processor: Processor,
    opts: WorkerOptions & { connection: RedisConnection },
    private readonly refusedPauseMs: number,
    private readonly released: (job: Job) => void = () => undefined,
  ) {
    super(name, processor, opts);
    this.redis = opts.connection;
    // BullMQ's fetch is private; wrapping it is the only place that sees each failed fetch. A BullMQ
    // without it still runs (redis-refuses-commands and worker-resilience tests tell the difference).
    const self = this as unknown as { _getNextJob?: (token: string, ...rest: unknown[]) => Promise<Job | undefined> };
    if (typeof self._getNextJob !== 'function') return;
    const fetch = self._getNextJob.bind(this);
    self._getNextJob = async (token: string, ...rest: unknown[]): Promise<Job | undefined> => {
      try {
        return await fetch(token, ...rest);
      } catch (error) {
        if (commandRefusal(error)) await sleepOrAbort(this.refusedPauseMs, this.pauses.signal);
        else if (isJobParseError(error)) {
          const job = await this.unparsableJob(token, error);
          if (job) return job;
        }
        throw error;
      }
    };
  }

  /**
   * A completion hands this worker the next job in the same script; when that job's options,
   * progress or parent do not parse, BullMQ throws after the completion was written and the next
   * job sits in active, locked by this worker, until its lock expires. It is taken up here instead.
   */
  protected override async handleCompleted(result: unknown, job: Job, token: string, fetchNextCallback?: () => boolean, span?: unknown): Promise<Job> {
    try {
      return await super.handleCompleted(result, job, token, fetchNextCallback, span as never);
    } catch (error) {
      if (!isJobParseError(error)) throw error;
      this.emit('completed', job, result, 'active');
      const next = await this.unparsableJob(token, error);
      if (next) return next;
      throw error;
    }
  }

  override async processJob(job: Job, token: string, fetchNextCallback?: () => boolean): Promise<void | Job> {
    // The worker owns retention (README: Operations): what a producer set is not applied.
    for (const option of RETENTION_OPTIONS) if (option in job.opts) delete job.opts[option];
    try {
      // Inside the try: a Redis that refuses these still lets the job go (released), for the stall check to return it.
      if (this.badCounters.has(job) && job.id !== undefined) await this.redis.hset(this.toKey(job.id), 'atm', '0');
      if (this.maybeNotUtf8.has(job) && job.id !== undefined) {
        const bytes = await this.redis.hgetBuffer(this.toKey(job.id), 'data');
        if (bytes && !isUtf8(bytes)) job.data = { unparsable: `is not UTF-8 (${notUtf8At(bytes)}): job data must be JSON text in UTF-8`, field: 'data' } satisfies UnparsableJobData;
      }
      return await super.processJob(job, token, fetchNextCallback);
    } finally {
      this.released(job);
    }
  }

  override close(force?: boolean): Promise<void> {
    this.pauses.abort();
    return super.close(force);
  }

  protected override createJob(data: JobJson, jobId: string): Job {
    let job: Job;
    try {
      job = super.createJob(data, jobId);
    } catch (error) {
      job = super.createJob({ ...data, data: JSON.stringify({ unparsable: `is not valid JSON (${errorMessage(error)})`, field: 'data' } satisfies UnparsableJobData) }, jobId);
    }
    if (!Number.isInteger(data.attemptsMade ?? 0)) this.badCounters.add(job);
    // ioredis decodes bytes that are not UTF-8 as U+FFFD: only then are the stored bytes read again.
    if (typeof data.data === 'string' && data.data.includes('\uFFFD')) this.maybeNotUtf8.add(job);
    return job;
  }

  /**
   * The job this worker just moved to active (locked with `token`) whose options, progress or
   * parent did not parse: those fields are replaced in Redis by what BullMQ accepts, and the job
   * is handed to the processor with stand-in data. Undefined when no such job is found.
   */
  private async unparsableJob(token: string, error: SyntaxError | TypeError): Promise<Job | undefined> {
    const client = this.redis;
    const active = await client.lrange(this.toKey('active'), 0, -1);
    const locks = active.length === 0 ? [] : await client.mget(active.map((id) => `${this.toKey(id)}:lock`));
    const id = active.find((_, i) => locks[i] === token);
    if (id === undefined) return undefined;
    const key = this.toKey(id);
    const names = Object.keys(PARSED_FIELDS) as (keyof typeof PARSED_FIELDS)[];
    const values = await client.hmget(key, ...names);
    let broken: Pick<UnparsableJobData, 'field' | 'unparsable'> | undefined;
    for (const [i, name] of names.entries()) {
      const value = values[i];
      if (value === null || value === undefined) continue;
      const wrong = unusable(name, value, error);
      if (wrong === undefined) continue;
      broken ??= { field: name, unparsable: wrong };
      const standIn = PARSED_FIELDS[name];
      await (standIn === undefined ? client.hdel(key, name) : client.hset(key, name, standIn));
    }
    if (broken === undefined) return undefined;
    const job = await Job.fromId(this, id);
    if (!job) return undefined;
    job.data = broken satisfies UnparsableJobData;
    job.token = token;
    return job;
  }
}

/** Where the first byte sequence that is not UTF-8 starts ("byte 41"): where decoding and encoding again first changes the bytes. */
function notUtf8At(bytes: Buffer): string {
  const again = Buffer.from(bytes.toString('utf8'), 'utf8');
  let i = 0;
  while (i < bytes.length && bytes[i] === again[i]) i++;
  return `byte ${i}`;
}

/** Why BullMQ cannot read a job field (undefined when it can): not JSON at all, or options that are not an object. */
function unusable(name: keyof typeof PARSED_FIELDS, text: string, error: Error): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `is not valid JSON (${errorMessage(error)})`;
  }
  return name === 'opts' && (typeof value !== 'object' || value === null) ? `is not a JSON object (${text.slice(0, 40)})` : undefined;
}
