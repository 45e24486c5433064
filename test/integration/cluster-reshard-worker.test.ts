/**
 * The queue's slot resharded to another master while `svcnode worker` processes consume and a
 * producer enqueues (real Redis Cluster; the steps of `redis-cli --cluster reshard`, keys moved in
 * small batches over several seconds, then the slot handed over). BullMQ's multi-key scripts get
 * TRYAGAIN or ASK meanwhile, lock renewals included. Every job must end as a completed job with an
 * ok Result; a call made twice (a lock lost meanwhile) must say so in its Result (`stalled`).
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { spawnWorker } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { fillSlot, keySlot, startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { slowNodeRun } from '../helpers/slow-node-run.js';

const SLOT = keySlot('{svcnode}');
const N = 400;

describe('a reshard of the queue slot under load', () => {
  const run = slowNodeRun<TestCluster>();
  let client: ServiceNodeClient | undefined;

  afterAll(() => run.close(() => client?.close()));

  it('every job enqueued before, during and after it completes with an ok Result, none lost, none failed', async () => {
    const { store: cluster, f, backend } = await run.start(startCluster(3, 0), 20);
    const fast = { concurrency: 8, lockDurationMs: 5_000, stalledIntervalMs: 2_000 };
    run.workers.push(...(await Promise.all([spawnWorker(f, cluster.url, fast), spawnWorker(f, cluster.url, fast)])));
    client = new ServiceNodeClient({ redisUrl: cluster.url, connectTimeoutMs: 5_000 });

    const ids: Promise<string>[] = [];
    let i = 0;
    const producing = setInterval(() => {
      if (i < N) ids.push((client as ServiceNodeClient).enqueue('slow', { i: String(i++) }));
    }, 40);
    try {
      await waitFor(() => i >= 60 || undefined, 20_000, 20, '60 jobs enqueued before the reshard');
      // Filler keys in the slot make the move last ~10 s, as a slot holding a busy queue's history does.
      const { target } = await fillSlot(cluster, SLOT, 1_000);
      const migration = await cluster.migrateSlot(SLOT, target);
      const started = performance.now();
      try {
        // Until the source holds no key of the slot: keys the scripts create meanwhile move too.
        while ((await migration.move(Infinity, { batch: 10, pauseMs: 100 })) > 0);
        await migration.finish();
      } catch (error) {
        migration.abandon();
        throw error;
      }
      const movedMs = performance.now() - started;
      console.log(`reshard under load: slot ${SLOT} moved in ${Math.round(movedMs)} ms, ${i} jobs enqueued by then`);
      expect(movedMs).toBeGreaterThan(5_000);
      expect(i).toBeLessThan(N);
      await waitFor(() => i >= N || undefined, 60_000, 50, `all ${N} jobs enqueued`);
    } finally {
      clearInterval(producing);
    }

    const enqueued = await Promise.all(ids);
    expect(new Set(enqueued).size).toBe(N);
    const results = await Promise.all(enqueued.map((id) => (client as ServiceNodeClient).result(id, 90_000)));
    expect(results.filter((r) => !r.ok).map((r) => r.failure)).toEqual([]);

    const seen = new Set(results.map((r: Result) => r.request.url.replace(/^.*\/work\//, '')));
    expect(seen.size).toBe(N);
    // A call made again (its lock lost during the move) is said in its Result; none goes unsaid.
    const rerun = results.reduce((n, r) => n + (r.stalled ?? 0), 0);
    console.log(`reshard under load: ${N} jobs ok, ${backend.requests} calls, ${rerun} returned by the stall check`);
    expect(backend.requests).toBeGreaterThanOrEqual(N);
    expect(backend.requests).toBeLessThanOrEqual(N + rerun);
    for (const w of run.workers) expect(w.proc.child.exitCode).toBeNull();
  }, 180_000);
});
