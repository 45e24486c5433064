import { Job, Worker, type JobJson } from 'bullmq';

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
  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (error) {
      return super.createJob({ ...data, data: JSON.stringify({ unparsable: (error as Error).message } satisfies UnparsableJobData) }, jobId);
    }
  }
}
