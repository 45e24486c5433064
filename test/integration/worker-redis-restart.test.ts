/**
 * A Redis crash and restart (appendonly yes) in the middle of a batch: every job still ends
 * completed with its Result, and the worker process rides it out.
 */
import { Job, Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { spawnWorker } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { slowNodeRun } from '../helpers/slow-node-run.js';

describe('svcnode worker across a Redis restart', () => {
  const run = slowNodeRun<TestRedis>();
  let queue: Queue | undefined;

  afterAll(() => run.close(() => queue?.close()));

  it('loses no job when Redis is killed and restarted mid-run (appendonly yes)', async () => {
    const N = 30;
    const { store: redis, f } = await run.start(startRedis({ appendonly: true }), 200);
    const worker = await spawnWorker(f, redis.url, { concurrency: 4 });
    run.workers.push(worker);
    // The producer's commands fail fast while Redis is down; waitFor just polls again.
    queue = new Queue('service-node-invocations', { connection: { host: redis.host, port: redis.port, maxRetriesPerRequest: 1 } });
    queue.on('error', () => undefined);
    const jobs = await queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'invoke', data: { nodeId: 'slow', context: { i: String(i) } } })));
    const completed = async (): Promise<number> => (await queue?.getCompletedCount()) ?? 0;
    await waitFor(async () => (await completed()) >= 4 && ((await queue?.getActiveCount()) ?? 0) > 0, 15_000, 20, 'some completed, some in flight');

    redis.kill(); // crash: no clean shutdown, the AOF (appendfsync always) is all that is left
    const healthz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).status;
    // /healthz turns 503 while Redis is gone (jobs in flight keep running meanwhile).
    await waitFor(async () => (await healthz()) === 503, 10_000, 20, 'worker noticed the outage');
    expect(((await (await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).json()) as { reason?: string }).reason).toBe('redis unreachable');
    await redis.restart();

    await waitFor(async () => (await completed()) === N, 60_000, 100, `all ${N} jobs completed after the restart`);
    expect(await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed')).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    for (const j of jobs) {
      const r = (await Job.fromId(queue, j.id as string))?.returnvalue as Result;
      expect(r.ok).toBe(true);
    }
    // The worker did not crash; it still shuts down cleanly.
    expect(worker.proc.child.exitCode).toBeNull();
    await waitFor(async () => (await healthz()) === 200, 10_000, 50, 'healthz back to 200');
    // Before: the outage's errors were logged, its end was not.
    expect(worker.logs().filter((l) => l.msg === 'Redis connection restored: the worker takes jobs again')).toHaveLength(1);
    // Said once per text whichever of the worker's connections met it first (commands or blocking fetch).
    const firstError = worker.logs().findIndex((l) => l.msg === 'Redis connection error' || l.msg === 'worker error');
    expect(firstError).toBeGreaterThanOrEqual(0);
    expect(worker.logs().findIndex((l) => l.msg === 'Redis connection restored: the worker takes jobs again')).toBeGreaterThan(firstError);
    // Before: every error twice, as 'Redis connection error' and again as 'worker error' (BullMQ re-emits it).
    const errorLines = worker.logs().filter((l) => l.msg === 'Redis connection error' || l.msg === 'worker error');
    expect(errorLines.length).toBeGreaterThan(0);
    // The same text is said again only after the 10 s rate limit, with its count.
    for (const [i, a] of errorLines.entries()) for (const b of errorLines.slice(i + 1)) if (a.err === b.err) expect(Number(b.time) - Number(a.time)).toBeGreaterThanOrEqual(10_000);
    expect(await worker.proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
  }, 120_000);
});
