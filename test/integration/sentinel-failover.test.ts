/**
 * Redis Sentinel (1 master, 1 replica, 3 password-protected sentinels, real processes): two
 * `svcnode worker` processes on a redis+sentinel:// URL whose sentinel password comes from an
 * environment variable; the master is SIGKILLed mid-run and every job still completes ok.
 */
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnWorker } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { startSentinels, type TestSentinels } from '../helpers/redis-cluster.js';
import { longestFinishGap, slowNodeRun } from '../helpers/slow-node-run.js';

const N = 600;
const SENTINEL_PASSWORD = 'sentinel-pw-71c';

describe('svcnode workers behind Redis Sentinel', () => {
  const run = slowNodeRun<TestSentinels>();
  const workers = run.workers;
  let queue: Queue | undefined;

  afterAll(() => run.close(() => queue?.close()));

  it('completes every job when the master is SIGKILLed mid-run', async () => {
    const { store: group, f } = await run.start(startSentinels('svcnode-q', { sentinelPassword: SENTINEL_PASSWORD }), 100);
    f.env.SVCNODE_TEST_SENTINEL_PASS = SENTINEL_PASSWORD;
    const url = `${group.url}?sentinelPasswordEnv=SVCNODE_TEST_SENTINEL_PASS`;
    const fast = { concurrency: 16, lockDurationMs: 5_000, stalledIntervalMs: 2_000 };
    workers.push(...(await Promise.all([spawnWorker(f, url, fast), spawnWorker(f, url, fast)])));
    const pids = workers.map((w) => w.proc.child.pid);
    for (const w of workers) expect(JSON.stringify(w.logs())).not.toContain(SENTINEL_PASSWORD);

    queue = new Queue('service-node-invocations', {
      connection: { sentinels: group.sentinels.map((s) => ({ host: s.host, port: s.port })), name: group.name, sentinelPassword: SENTINEL_PASSWORD, maxRetriesPerRequest: null },
    });
    queue.on('error', () => undefined);
    const jobs = await queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'invoke', data: { nodeId: 'slow', context: { i: String(i) } } })));
    const completed = async (): Promise<number> => (await queue?.getCompletedCount()) ?? 0;
    await waitFor(async () => (await completed()) >= N / 4, 60_000, 50, 'a quarter of the jobs completed');

    const killedAt = Date.now();
    group.master.kill();
    await waitFor(async () => (await group?.masterPort()) === group?.replica.port, 30_000, 100, 'the replica promoted');
    const promotedAfterMs = Date.now() - killedAt;

    await waitFor(async () => (await completed()) === N, 90_000, 200, `all ${N} jobs completed`);
    expect(await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed')).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    const gap = await longestFinishGap(queue, jobs);
    console.log(`sentinel failover: ${N} jobs ok, replica promoted ${promotedAfterMs} ms after SIGKILL, longest processing gap ${gap} ms`);
    expect(gap).toBeLessThan(30_000);
    expect(workers.map((w) => w.proc.child.pid)).toEqual(pids);
    for (const w of workers) expect(w.proc.child.exitCode).toBeNull();
  }, 150_000);
});
