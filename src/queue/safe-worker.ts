import { Job, Worker, type JobJson, type Processor, type WorkerOptions } from 'bullmq';
import { writeRefusal } from './redis-errors.js';
import { sleepOrAbort } from './sleep.js';

/** Data a job gets when what Redis holds is not JSON; the processor answers it with `invalid_input`. */
export interface UnparsableJobData {
  unparsable: string;
}

/** True for the stand-in data of a job whose stored data could not be parsed. */
export function isUnparsable(data: unknown): data is UnparsableJobData {
  return typeof data === 'object' && data !== null && typeof (data as UnparsableJobData).unparsable === 'string';
}

/**
 * A BullMQ Worker that survives a job whose data in Redis is not valid JSON. BullMQ
 * parses it after moving the job to active and throws outside any job: the job then stalls and
 * is fetched again forever. Here it becomes a job with stand-in data, which the processor ends.
 */
export class SafeWorker extends Worker {
  /** Ends a pause after a refused write at once when the worker closes. */
  private readonly pauses = new AbortController();

  /**
   * `writeRefusedPauseMs`: how long to wait before fetching again after Redis refused a write
   * (OOM, MISCONF, READONLY). BullMQ fetches again at once, so a worker would spin at full CPU,
   * hammering Redis, for as long as Redis is full.
   */
  constructor(name: string, processor: Processor, opts: WorkerOptions, private readonly writeRefusedPauseMs: number) {
    super(name, processor, opts);
    // BullMQ's fetch is private; wrapping it is the only place that sees each failed fetch.
    const self = this as unknown as { _getNextJob: (...args: unknown[]) => Promise<unknown> };
    const fetch = self._getNextJob.bind(this);
    self._getNextJob = async (...args: unknown[]): Promise<unknown> => {
      try {
        return await fetch(...args);
      } catch (error) {
        if (writeRefusal(error)) await sleepOrAbort(this.writeRefusedPauseMs, this.pauses.signal);
        throw error;
      }
    };
  }

  override close(force?: boolean): Promise<void> {
    this.pauses.abort();
    return super.close(force);
  }

  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (error) {
      return super.createJob({ ...data, data: JSON.stringify({ unparsable: (error as Error).message } satisfies UnparsableJobData) }, jobId);
    }
  }
}
