import type { Redis } from 'ioredis';

/** Average bytes a completed job leaves in Redis for its return value. */
export interface StoredBytes {
  /** `returnvalue` field of the job hash. */
  returnValue: number;
  /** The job's `completed` entry in the events stream (field names and values). */
  eventEntry: number;
}

/**
 * Measure what the last completed jobs store: the return value in each job hash and the
 * `completed` event BullMQ appends (it carries the return value again). Sampled over up to
 * `sample` recent events.
 */
export async function storedBytesPerJob(redis: Redis, queue: string, sample = 200): Promise<StoredBytes> {
  const events = await redis.xrevrange(`bull:${queue}:events`, '+', '-', 'COUNT', sample * 2);
  let jobs = 0;
  let returnValue = 0;
  let eventEntry = 0;
  for (const [, fields] of events) {
    if (fields[1] !== 'completed' || jobs >= sample) continue;
    const jobId = fields[fields.indexOf('jobId') + 1];
    if (jobId === undefined) continue;
    jobs++;
    eventEntry += fields.reduce((n, f) => n + Buffer.byteLength(f), 0);
    returnValue += await redis.hstrlen(`bull:${queue}:${jobId}`, 'returnvalue');
  }
  return jobs === 0 ? { returnValue: Number.NaN, eventEntry: Number.NaN } : { returnValue: Math.round(returnValue / jobs), eventEntry: Math.round(eventEntry / jobs) };
}
