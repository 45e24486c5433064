/**
 * Redis Cluster (3 masters + 3 replicas, real redis-server processes): two `svcnode worker`
 * processes on a redis+cluster:// URL, a producer on an ioredis Cluster, and the master owning
 * {svcnode}'s slot SIGKILLed mid-run. Every job completes ok, no worker process restarts.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ServiceNodeClient } from '../../src/index.js';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { spawnWorker, type QueueFixtures } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { keySlot, killQueueMaster, queueQuarterDone, startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { longestFinishGap, slowNodeRun } from '../helpers/slow-node-run.js';

function writeContext(dir: string, context: Record<string, string>): string {
  const file = join(dir, `context-${Object.values(context).join('-')}.json`);
  writeFileSync(file, JSON.stringify(context));
  return file;
}

/** Jobs per run and backend delay: 2,000 jobs of 100 ms keep the test well under a minute on 2 cores. */
const N = 2_000;
const DELAY_MS = 100;

describe('svcnode workers on a Redis Cluster', () => {
  const run = slowNodeRun<TestCluster>();
  const workers = run.workers;
  let cluster: TestCluster | undefined;
  let f: QueueFixtures | undefined;
  let producer: Cluster | undefined;
  let queue: Queue | undefined;

  beforeAll(async () => {
    ({ store: cluster, f } = await run.start(startCluster(3, 1), DELAY_MS));
  }, 60_000);

  afterAll(() => run.close(() => queue?.close(), () => producer?.disconnect()));

  it('/healthz says 503 "MOVED: wrong node" on a node that does not own the queue, 200 once it does', async () => {
    if (!cluster || !f) throw new Error('set-up failed');
    // A single-node URL to the replica of the queue's master: every queue command gets MOVED.
    const owner = await cluster.masterOf(keySlot('{svcnode}'));
    const [replica] = await cluster.replicasOf(owner);
    if (!replica) throw new Error('the owner has no replica');
    const w = await spawnWorker(f, `redis://127.0.0.1:${replica.port}`, { extraArgs: ['--prefix', '{svcnode}'] });
    try {
      const healthz = async (): Promise<{ status: number; reason?: string }> => {
        const r = await fetch(`http://127.0.0.1:${w.metricsPort}/healthz`);
        return { ...((await r.json()) as { reason?: string }), status: r.status };
      };
      expect(await healthz()).toMatchObject({ status: 503, reason: 'MOVED: wrong node' });
      expect(w.logs().some((l) => l.code === 'SVCNODE_REDIS_WRONG_NODE' && String(l.hint).includes('redis+cluster://'))).toBe(true);
      // The replica takes over the slot (a manual failover): the same worker becomes healthy.
      const admin = new Redis({ host: '127.0.0.1', port: replica.port });
      try {
        await admin.call('CLUSTER', 'FAILOVER');
      } finally {
        admin.disconnect();
      }
      await waitFor(async () => (await healthz()).status === 200, 20_000, 100, '/healthz 200 once the node owns the slot');
      await cluster.waitHealthy();
    } finally {
      await w.proc.stop('SIGKILL');
    }
  }, 60_000);

  it('completes every job when the master owning {svcnode} is SIGKILLed mid-run', async () => {
    if (!cluster || !f) throw new Error('set-up failed');
    const fast = { concurrency: 16, lockDurationMs: 5_000, stalledIntervalMs: 2_000 };
    workers.push(...(await Promise.all([spawnWorker(f, cluster.url, fast), spawnWorker(f, cluster.url, fast)])));
    const pids = workers.map((w) => w.proc.child.pid);

    const run = await queueQuarterDone(cluster, N);
    ({ producer, queue } = run);
    const { jobs, completed } = run;
    const promotedAfterMs = await killQueueMaster(cluster, 30_000);

    try {
      await waitFor(async () => (await completed()) === N, 120_000, 200, `all ${N} jobs completed`);
    } catch (error) {
      const tail = workers.map((w) => w.logs().filter((l) => (l.level as number) >= 40).slice(-15).map((l) => JSON.stringify(l)).join('\n'));
      throw new Error(`${(error as Error).message}\ncounts ${JSON.stringify(await queue.getJobCounts())}\n${tail.join('\n---\n')}`, { cause: error });
    }
    expect(await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed')).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    const gap = await longestFinishGap(queue, jobs);
    const recreated = workers.flatMap((w) => w.logs()).filter((l) => l.msg === 'BullMQ worker stopped taking jobs: recreating it').length;
    console.log(`cluster failover: ${N} jobs ok, replica promoted ${promotedAfterMs} ms after SIGKILL, longest processing gap ${gap} ms, BullMQ workers recreated by the watchdog: ${recreated}`);
    // The bound: processing resumes within 30 s of the new master.
    expect(gap).toBeLessThan(30_000);
    // The same worker processes did it all: none exited, none was restarted.
    expect(workers.map((w) => w.proc.child.pid)).toEqual(pids);
    for (const w of workers) expect(w.proc.child.exitCode).toBeNull();
    for (const w of workers) expect(await w.proc.stop('SIGTERM', 15_000)).toEqual({ code: 0, signal: null });
  }, 180_000);

  it('enqueue, failures and the library work on the cluster; a single-node URL to a non-owner exits 5 naming the fix', async () => {
    if (!cluster || !f) throw new Error('set-up failed');
    const w = await spawnWorker(f, cluster.url);
    workers.push(w);
    const cli = await runCli(['enqueue', 'slow', '--redis', cluster.url, '--context', writeContext(f.dir, { i: 'cli' }), '--wait', '--json'], { timeoutMs: 30_000 });
    expect(cli.code).toBe(0);
    expect((JSON.parse(cli.stdout) as Result).ok).toBe(true);
    const failures = await runCli(['failures', '--redis', cluster.url, '--json'], { timeoutMs: 30_000 });
    expect(failures.code).toBe(0);
    expect((JSON.parse(failures.stdout) as { nodes: { nodeId: string }[] }).nodes.map((n) => n.nodeId)).toContain('slow');

    // The library with a ready ioredis Cluster of the caller's (left open by close()).
    const mine = new Cluster(cluster.seeds);
    try {
      const client = new ServiceNodeClient({ connection: mine });
      expect((await client.invoke('slow', { i: 'lib' }, { timeoutMs: 20_000 })).ok).toBe(true);
      await client.close();
      expect(await mine.ping()).toBe('PONG');
    } finally {
      mine.disconnect();
    }

    const owner = await cluster.masterOf(keySlot('{svcnode}'));
    const other = cluster.nodes.find((n) => n.port !== owner.port) as TestCluster['nodes'][number];
    const moved = await runCli(['enqueue', 'slow', '--redis', `redis://127.0.0.1:${other.port}`, '--prefix', '{svcnode}'], { timeoutMs: 30_000 });
    expect(moved.code).toBe(5);
    expect(moved.stderr).toContain('SVCNODE_REDIS_WRONG_NODE');
    expect(moved.stderr).toContain('redis+cluster://');
  }, 60_000);
});
