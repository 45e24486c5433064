/**
 * `svcnode worker` as real processes against a real redis-server: a SIGKILLed worker loses no
 * job, SIGTERM finishes held jobs and exits 0, two workers split one queue.
 */
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { createQueueFixtures, invocationsMetric, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

const DELAY_MS = 300;

describe('svcnode worker processes', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let queue: Queue;
  let admin: Redis;
  const workers: WorkerProcess[] = [];

  const start = async (o: Parameters<typeof spawnWorker>[2] = {}): Promise<WorkerProcess> => {
    const w = await spawnWorker(f, redis.url, o);
    workers.push(w);
    return w;
  };
  const enqueue = async (n: number): Promise<Job[]> =>
    queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'invoke', data: { nodeId: 'slow', context: { i: String(i) } } })));
  const results = async (jobs: Job[]): Promise<Result[]> =>
    Promise.all(jobs.map(async (j) => (await Job.fromId(queue, j.id as string))?.returnvalue as Result));
  const counts = async (): Promise<Record<'completed' | 'failed' | 'active' | 'wait' | 'delayed', number>> => {
    const c = await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed');
    return { completed: c.completed ?? 0, failed: c.failed ?? 0, active: c.active ?? 0, wait: c.wait ?? 0, delayed: c.delayed ?? 0 };
  };

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startBackend(pki, { delayMs: DELAY_MS });
    f = await createQueueFixtures(pki, [nodeDef('slow', `https://localhost:${backend.port}/work/{{context.i}}`)]);
    queue = new Queue('service-node-invocations', { connection: { host: redis.host, port: redis.port } });
    admin = new Redis(redis.url);
  });

  beforeEach(async () => {
    await admin.flushall();
    backend.requests = 0;
  });

  afterEach(async () => {
    // Every worker goes, even when the test failed half-way.
    await Promise.all(workers.splice(0).map((w) => w.proc.stop('SIGKILL')));
  });

  afterAll(async () => {
    await queue?.close();
    admin?.disconnect();
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('loses no job when a worker is SIGKILLed mid-batch: another worker completes them all', async () => {
    const N = 40;
    const fast = { lockDurationMs: 2_000, stalledIntervalMs: 1_000 };
    const a = await start({ concurrency: 4, ...fast });
    const jobs = await enqueue(N);
    await waitFor(async () => (await counts()).completed >= 8, 15_000, 20, 'first jobs completed');
    const held = (await queue.getActive()).map((j) => j.id as string);
    expect(held.length).toBeGreaterThan(0);
    const killed = await a.proc.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');

    const b = await start({ concurrency: 8, ...fast });
    await waitFor(async () => (await counts()).completed === N, 30_000, 50, `all ${N} jobs completed`);
    expect(await counts()).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    for (const r of await results(jobs)) {
      expect(r.ok).toBe(true);
      expect(r.response?.status).toBe(200);
    }
    // The jobs the dead worker held were handed to the new one (stalled-job recovery).
    for (const id of held) expect(await (await Job.fromId(queue, id))?.getState()).toBe('completed');
    // Each is named in the log, as returned by the stall check and as run again (before: nothing said
    // that the backend may have had these invocations twice).
    const returned = b.logs().filter((l) => String(l.msg).startsWith('job returned to the queue by the stall check')).map((l) => l.jobId);
    const rerun = b.logs().filter((l) => String(l.msg).startsWith('running a job the stall check returned')).map((l) => l.jobId);
    // (A job held at the look may have completed just before the kill: the stalled ones are among those held.)
    expect(returned.length).toBeGreaterThan(0);
    expect(held).toEqual(expect.arrayContaining(returned));
    expect(new Set(rerun)).toEqual(new Set(returned));
    // The Result of each job run again says so (before: it read like a first run, attempts 1).
    const all = await results(jobs);
    const stalled = jobs.filter((_, i) => all[i]?.stalled !== undefined).map((j) => j.id);
    expect(new Set(stalled)).toEqual(new Set(returned));
    for (const [i, j] of jobs.entries()) if (returned.includes(j.id)) expect(all[i]).toMatchObject({ ok: true, attempts: 1, stalled: 1 });
    expect(await invocationsMetric(b.metricsPort, { node: 'slow', outcome: 'ok' })).toBeGreaterThan(0);
    expect(b.proc.child.exitCode).toBeNull();
  }, 90_000);

  it('on SIGTERM finishes every held job and exits 0', async () => {
    const slowBackendJobs = 12;
    const w = await start({ concurrency: 4 });
    const jobs = await enqueue(slowBackendJobs);
    await waitFor(async () => (await queue.getActiveCount()) > 0 && backend.requests >= 1, 15_000, 10, 'jobs in flight');
    const held = (await queue.getActive()).map((j) => j.id as string);
    expect(held.length).toBeGreaterThan(0);

    const exit = await w.proc.stop('SIGTERM', 20_000);
    expect(exit).toEqual({ code: 0, signal: null });

    for (const id of held) {
      const job = await Job.fromId(queue, id);
      expect(await job?.getState()).toBe('completed');
      expect((job?.returnvalue as Result).ok).toBe(true);
    }
    const c = await counts();
    expect(c.active).toBe(0);
    expect(c.failed).toBe(0);
    expect(c.completed).toBeGreaterThanOrEqual(held.length);
    // The rest waits for the next worker, untouched.
    expect(c.completed + c.wait).toBe(jobs.length);
  }, 60_000);

  it('a second stop signal exits at once with 5, says so, and the held jobs still complete (through the stall check)', async () => {
    const w = await start({ concurrency: 4, lockDurationMs: 2_000, stalledIntervalMs: 1_000 });
    const jobs = await enqueue(4);
    await waitFor(async () => (await queue.getActiveCount()) > 0 && backend.requests >= 1, 15_000, 10, 'jobs in flight');
    w.proc.child.kill('SIGINT');
    await waitFor(() => w.logs().some((l) => String(l.msg).startsWith('shutting down')), 5_000, 10, 'the first signal taken');
    // Before: the default action of the second signal, exit by signal (130) with no word.
    const exit = await w.proc.stop('SIGINT', 5_000);
    expect(exit).toEqual({ code: 5, signal: null });
    expect(w.logs().find((l) => String(l.msg).startsWith('second stop signal'))).toMatchObject({ level: 40, signal: 'SIGINT', exitCode: 5 });
    await start({ concurrency: 4, lockDurationMs: 2_000, stalledIntervalMs: 1_000 });
    await waitFor(async () => (await counts()).completed === jobs.length, 30_000, 100, 'every job completed by the next worker');
    expect((await results(jobs)).every((r) => r.ok)).toBe(true);
  }, 60_000);

  it('splits one queue between two worker processes', async () => {
    const N = 24;
    const [a, b] = await Promise.all([start({ concurrency: 2 }), start({ concurrency: 2 })]);
    const jobs = await enqueue(N);
    await waitFor(async () => (await counts()).completed === N, 30_000, 50, `all ${N} jobs completed`);
    expect(await counts()).toEqual({ completed: N, failed: 0, active: 0, wait: 0, delayed: 0 });
    for (const r of await results(jobs)) expect(r.ok).toBe(true);

    const [byA, byB] = await Promise.all([a, b].map((w) => invocationsMetric(w.metricsPort, { node: 'slow', outcome: 'ok' })));
    expect(byA).toBeGreaterThan(0);
    expect(byB).toBeGreaterThan(0);
    expect((byA ?? 0) + (byB ?? 0)).toBe(N);
    expect(backend.requests).toBe(N);
  }, 60_000);
});
