/**
 * One node whose backend accepts connections and never answers must not take every slot of the
 * worker. Before, each of its calls held a slot for its whole timeout, and a steady trickle of its
 * jobs held them all: calls to every healthy node waited seconds in the queue. Now a node whose
 * calls running for over 1 s hold its share (a quarter of the slots) gets no more: its further
 * jobs wait (delayed, no slot, no attempt counted), and end with SVCNODE_NODE_SATURATED when they
 * have waited 5 minutes. A real worker, a real Redis, a real silent TCP server and mTLS backend.
 */
import { Queue } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { startSilentServer, type SilentServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

describe('a node whose backend never answers (concurrency 8: a node may hold 2 slots with slow calls)', () => {
  let rig: WorkerRig;
  let silent: SilentServer;
  let queue: Queue;
  beforeAll(async () => {
    silent = await startSilentServer();
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-bulkhead-',
      worker: { concurrency: 8 },
      nodes: () => ({ 'silent.json': JSON.stringify({ id: 'silent', request: { method: 'GET', url: `https://localhost:${silent.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 }, timeouts: { handshakeMs: 3_000 } }) }),
    });
    queue = new Queue(QUEUE_NAME, { connection: { url: rig.redis.url } });
  }, 30_000);
  afterAll(async () => {
    await queue?.close();
    await rig?.close();
    await silent?.close();
  });

  it('takes no more slots once 2 of its calls run for over 1 s: calls to a healthy node meanwhile finish before its first call times out; its waiting jobs still get their own Results', async () => {
    const first = await Promise.all([0, 1].map((i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i}` })));
    await sleep(1_300);
    // Before: these ten took the six free slots, and every ping waited for a silent call to time out.
    const more = await Promise.all(Array.from({ length: 10 }, (_, i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i + 2}` })));
    const pings = await Promise.all(Array.from({ length: 20 }, (_, i) => rig.client.enqueue('ping', {}, { requestId: `ping-${i}` })));
    const pingResults = await Promise.all(pings.map((id) => rig.client.result(id, 20_000)));
    for (const r of pingResults) expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    const silentIds = [...first, ...more];
    const silentResults = await Promise.all(silentIds.map((id) => rig.client.result(id, 30_000)));
    for (const r of silentResults) expect(r.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_TIMEOUT', phase: 'tls' });
    const finishedOn = async (id: string): Promise<number> => (await queue.getJob(id))?.finishedOn ?? Number.NaN;
    const lastPing = Math.max(...(await Promise.all(pings.map(finishedOn))));
    const firstSilent = Math.min(...(await Promise.all(silentIds.map(finishedOn))));
    expect(lastPing).toBeLessThan(firstSilent);
    const metrics = await (await fetch(`http://127.0.0.1:${rig.worker.metricsPort}/metrics`)).text();
    const deferred = Number(/svcnode_jobs_deferred_total\{node="silent"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(deferred).toBeGreaterThanOrEqual(10);
  }, 60_000);

  it('a job that has waited 5 minutes while its node stays saturated ends, not sent, with SVCNODE_NODE_SATURATED', async () => {
    await Promise.all([0, 1].map((i) => rig.client.enqueue('silent', {}, { requestId: `hold-${i}` })));
    await sleep(1_300);
    const connections = silent.connections;
    // Added 6 minutes ago (BullMQ's `timestamp`), as a job that has been waiting that long.
    const job = await queue.add(JOB_NAME, { nodeId: 'silent', context: {}, requestId: 'old' }, { timestamp: Date.now() - 6 * 60_000 });
    const r = await rig.client.result(job.id as string, 10_000);
    expect(r.failure).toMatchObject({ phase: 'connect', category: 'timeout', code: 'SVCNODE_NODE_SATURATED' });
    expect(r.failure?.message).toMatch(/^localhost:\d+: not sent: 2 calls to node "silent" had been running for over 1 s/);
    expect(r.attempts).toBe(0);
    expect(r.request).toEqual({ method: 'GET', url: `https://localhost:${silent.port}` });
    expect(silent.connections).toBe(connections);
  }, 30_000);
});

describe('a busy healthy node', () => {
  let rig: WorkerRig;
  beforeAll(async () => {
    rig = await startWorkerRig({ dirPrefix: 'svcnode-bulkhead-busy-', worker: { concurrency: 4 } });
  }, 30_000);
  afterAll(() => rig?.close());

  it('may use every slot: calls that answer quickly never count, so none of its jobs wait', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => rig.client.invoke('ping', {}, { timeoutMs: 20_000 })));
    for (const r of results) expect(r.failure).toBeNull();
    const metrics = await (await fetch(`http://127.0.0.1:${rig.worker.metricsPort}/metrics`)).text();
    expect(metrics).not.toMatch(/svcnode_jobs_deferred_total\{node="ping"\}/);
  }, 40_000);
});
