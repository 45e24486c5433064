import { Job, Worker, type JobJson, type Processor, type WorkerOptions } from 'bullmq';
import { errorMessage } from '../errors.js';
import type { RedisConnection } from './connection.js';
import { commandRefusal } from './redis-errors.js';
import { sleepOrAbort } from './sleep.js';

/** Data a job gets when what Redis holds for it is not JSON; the processor answers it with `invalid_input`. */
export interface UnparsableJobData {
  /** The parser's message. */
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
        else if (error instanceof SyntaxError) {
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
      if (!(error instanceof SyntaxError)) throw error;
      this.emit('completed', job, result, 'active');
      const next = await this.unparsableJob(token, error);
      if (next) return next;
      throw error;
    }
  }

  override async processJob(job: Job, token: string, fetchNextCallback?: () => boolean): Promise<void | Job> {
    try {
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
    try {
      return super.createJob(data, jobId);
    } catch (error) {
      return super.createJob({ ...data, data: JSON.stringify({ unparsable: errorMessage(error), field: 'data' } satisfies UnparsableJobData) }, jobId);
    }
  }

  /**
   * The job this worker just moved to active (locked with `token`) whose options, progress or
   * parent did not parse: those fields are replaced in Redis by what BullMQ accepts, and the job
   * is handed to the processor with stand-in data. Undefined when no such job is found.
   */
  private async unparsableJob(token: string, error: SyntaxError): Promise<Job | undefined> {
    const client = this.redis;
    const active = await client.lrange(this.toKey('active'), 0, -1);
    const locks = active.length === 0 ? [] : await client.mget(active.map((id) => `${this.toKey(id)}:lock`));
    const id = active.find((_, i) => locks[i] === token);
    if (id === undefined) return undefined;
    const key = this.toKey(id);
    const names = Object.keys(PARSED_FIELDS) as (keyof typeof PARSED_FIELDS)[];
    const values = await client.hmget(key, ...names);
    let field: UnparsableJobData['field'] | undefined;
    for (const [i, name] of names.entries()) {
      const value = values[i];
      if (value === null || value === undefined || parses(value)) continue;
      field ??= name;
      const standIn = PARSED_FIELDS[name];
      await (standIn === undefined ? client.hdel(key, name) : client.hset(key, name, standIn));
    }
    if (field === undefined) return undefined;
    const job = await Job.fromId(this, id);
    if (!job) return undefined;
    job.data = { unparsable: errorMessage(error), field } satisfies UnparsableJobData;
    job.token = token;
    return job;
  }
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
