/**
 * Redis Cluster with Redis's default `cluster-node-timeout` (15 s), as most installations run it,
 * and svcnode's default lock duration: the master owning {svcnode}'s slot is SIGKILLed mid-run and
 * its replica takes over only after ~15 s. Meanwhile every queue command fails; jobs in flight
 * cannot write their Results. Every job must still end completed with an ok Result, the worker
 * processes must survive, and a call made twice must say so in its Result (`stalled`).
 */
import { Cluster } from 'ioredis';
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { spawnWorker } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { killQueueMaster, queueQuarterDone, startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { longestFinishGap, slowNodeRun } from '../helpers/slow-node-run.js';

const N = 1_500;
const DELAY_MS = 100;

describe('a Redis Cluster failover with the default 15 s node timeout', () => {
  const run = slowNodeRun<TestCluster>();
  let producer: Cluster | undefined;
  let queue: Queue | undefined;

  afterAll(() => run.close(() => queue?.close(), () => producer?.disconnect()));

  it('completes every job with an ok Result; the same worker processes resume once the replica is promoted', async () => {
    const { store: cluster, f, backend } = await run.start(startCluster(3, 1, { nodeTimeoutMs: 15_000 }), DELAY_MS);
    // svcnode's defaults but the concurrency: a 30 s lock outlives the ~15 s outage.
    run.workers.push(...(await Promise.all([spawnWorker(f, cluster.url, { concurrency: 16 }), spawnWorker(f, cluster.url, { concurrency: 16 })])));
    const pids = run.workers.map((w) => w.proc.child.pid);
    const started = await queueQuarterDone(cluster, N);
    ({ producer, queue } = started);
    const { jobs, completed } = started;
    const promotedAfterMs = await killQueueMaster(cluster, 60_000);
    expect(promotedAfterMs).toBeGreaterThan(10_000);

    try {
      await waitFor(async () => (await completed()) === N, 120_000, 200, `all ${N} jobs completed`);
    } catch (error) {
      const tail = run.workers.map((w) => w.logs().filter((l) => (l.level as number) >= 40).slice(-15).map((l) => JSON.stringify(l)).join('\n'));
      throw new Error(`${(error as Error).message}\ncounts ${JSON.stringify(await queue.getJobCounts())}\n${tail.join('\n---\n')}`, { cause: error });
    }
    expect(await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed')).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    const gap = await longestFinishGap(queue, jobs);
    const results = await Promise.all(jobs.map(async (j) => (await queue?.getJob(j.id as string))?.returnvalue as Result));
    const rerun = results.reduce((n, r) => n + (r.stalled ?? 0), 0);
    console.log(`cluster failover, 15 s node timeout: ${N} jobs ok, replica promoted ${promotedAfterMs} ms after SIGKILL, longest processing gap ${gap} ms, ${backend.requests} calls, ${rerun} returned by the stall check`);
    // Processing resumes within 15 s of the promotion (measured: at once, the gap is the outage).
    expect(gap).toBeLessThan(promotedAfterMs + 15_000);
    expect(backend.requests).toBeGreaterThanOrEqual(N);
    expect(backend.requests).toBeLessThanOrEqual(N + rerun);
    expect(run.workers.map((w) => w.proc.child.pid)).toEqual(pids);
    for (const w of run.workers) expect(w.proc.child.exitCode).toBeNull();
  }, 240_000);
});
