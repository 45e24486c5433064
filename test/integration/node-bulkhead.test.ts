/**
 * One node whose backend accepts connections and never answers must not take every slot of the
 * worker. Before, each of its calls held a slot for its whole timeout, and a steady trickle of its
 * jobs held them all: calls to every healthy node waited seconds in the queue. Now a node whose
 * calls are timing out may have a quarter of the slots in flight: its further jobs wait (delayed,
 * no slot, no attempt counted), and end with SVCNODE_NODE_SATURATED when they have waited 5
 * minutes. A node whose calls are answered is never limited. A real worker, a real Redis, a real
 * silent TCP server and mTLS backend.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { startSilentServer, type SilentServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

describe('a node whose backend never answers (concurrency 8: a node timing out may have 2 calls in flight)', () => {
  let rig: WorkerRig;
  let silent: SilentServer;
  let queue: Queue;
  beforeAll(async () => {
    silent = await startSilentServer();
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-bulkhead-',
      worker: { concurrency: 8 },
      nodes: () => ({ 'silent.json': JSON.stringify({ id: 'silent', request: { method: 'GET', url: `https://localhost:${silent.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 }, timeouts: { handshakeMs: 2_000 } }) }),
    });
    queue = new Queue(QUEUE_NAME, { connection: { url: rig.redis.url } });
  }, 30_000);
  afterAll(async () => {
    await queue?.close();
    await rig?.close();
    await silent?.close();
  });

  it('once its calls time out, it gets 2 slots: calls to a healthy node meanwhile finish before its next calls time out; its waiting jobs still get their own Results', async () => {
    // The first calls time out (2 s handshakes): from then on the node is timing out.
    const first = await Promise.all([0, 1].map((i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i}` })));
    for (const id of first) expect((await rig.client.result(id, 20_000)).failure).toMatchObject({ code: 'SVCNODE_TIMEOUT' });
    // Before: these ten took all eight slots, and every ping waited for a silent call to time out.
    const more = await Promise.all(Array.from({ length: 10 }, (_, i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i + 2}` })));
    const pings = await Promise.all(Array.from({ length: 20 }, (_, i) => rig.client.enqueue('ping', {}, { requestId: `ping-${i}` })));
    const pingResults = await Promise.all(pings.map((id) => rig.client.result(id, 20_000)));
    for (const r of pingResults) expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    const silentResults = await Promise.all(more.map((id) => rig.client.result(id, 60_000)));
    for (const r of silentResults) expect(r.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_TIMEOUT', phase: 'tls' });
    const finishedOn = async (id: string): Promise<number> => (await queue.getJob(id))?.finishedOn ?? Number.NaN;
    const lastPing = Math.max(...(await Promise.all(pings.map(finishedOn))));
    const firstSilent = Math.min(...(await Promise.all(more.map(finishedOn))));
    expect(lastPing).toBeLessThan(firstSilent);
    const metrics = await (await fetch(`http://127.0.0.1:${rig.worker.metricsPort}/metrics`)).text();
    const deferred = Number(/svcnode_jobs_deferred_total\{node="silent"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(deferred).toBeGreaterThanOrEqual(8);
  }, 90_000);

  it('a job that has waited 5 minutes while its node stays saturated ends, not sent, with SVCNODE_NODE_SATURATED', async () => {
    // Still timing out from the test before (no answer since): two calls in flight fill its share.
    await Promise.all([0, 1].map((i) => rig.client.enqueue('silent', {}, { requestId: `hold-${i}` })));
    await sleep(300);
    const connections = silent.connections;
    // Added 6 minutes ago (BullMQ's `timestamp`), as a job that has been waiting that long.
    const job = await queue.add(JOB_NAME, { nodeId: 'silent', context: {}, requestId: 'old' }, { timestamp: Date.now() - 6 * 60_000 });
    const r = await rig.client.result(job.id as string, 10_000);
    expect(r.failure).toMatchObject({ phase: 'connect', category: 'timeout', code: 'SVCNODE_NODE_SATURATED' });
    expect(r.failure?.message).toMatch(/^localhost:\d+: not sent: calls to node "silent" were timing out, and 2 of them in flight held its share/);
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

  it('may use every slot: a node whose calls are answered is never limited, so none of its jobs wait', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => rig.client.invoke('ping', {}, { timeoutMs: 20_000 })));
    for (const r of results) expect(r.failure).toBeNull();
    const metrics = await (await fetch(`http://127.0.0.1:${rig.worker.metricsPort}/metrics`)).text();
    expect(metrics).not.toMatch(/svcnode_jobs_deferred_total\{node="ping"\}/);
  }, 40_000);
});

describe('a node whose backend stops answering, then answers again (concurrency 8: 2 slots while it times out)', () => {
  let rig: WorkerRig;
  let queue: Queue;
  /** While true, /stuck requests are held unanswered; `answer()` ends that and answers the held ones. */
  let stuck = true;
  const held: Array<() => void> = [];
  const answer = (): void => {
    stuck = false;
    for (const reply of held.splice(0)) reply();
  };
  beforeAll(async () => {
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-bulkhead-recovery-',
      worker: { concurrency: 8 },
      backendHandler: (req, res) => {
        const reply = (): void => {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, path: req.url }));
        };
        if (stuck && req.url === '/stuck') held.push(reply);
        else reply();
      },
      nodes: (port) => ({ 'stuck.json': JSON.stringify({ id: 'stuck', request: { method: 'GET', url: `https://localhost:${port}/stuck` }, tls: { profile: 'bank' }, retry: { limit: 0 }, timeouts: { responseMs: 3_000 } }) }),
    });
    queue = new Queue(QUEUE_NAME, { connection: { url: rig.redis.url } });
  }, 30_000);
  afterAll(async () => {
    answer();
    await queue?.close();
    await rig?.close();
  });

  it('its answers release its waiting jobs at once instead of leaving them to their delays, which grow as they wait', async () => {
    // Its first calls time out: from then on the node is timing out, and may have 2 calls in flight.
    const first = await Promise.all([0, 1].map((i) => rig.client.enqueue('stuck', {}, { requestId: `first-${i}` })));
    for (const id of first) expect((await rig.client.result(id, 20_000)).failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_RESPONSE_TIMEOUT' });
    held.splice(0);
    // 30 more: 2 at a time are sent (and time out after 3 s), the others wait, each time about as long again as they have waited.
    const backlog = await Promise.all(Array.from({ length: 30 }, (_, i) => rig.client.enqueue('stuck', {}, { requestId: `backlog-${i}` })));
    await sleep(14_000);
    // When each waiting job is due back (BullMQ's delayed score: the due time × 0x1000 + a counter).
    const redis = new Redis(rig.redis.url);
    const scores = await redis.zrange(queue.keys.delayed as string, '0', '-1', 'WITHSCORES');
    redis.disconnect();
    const waiting: number[] = [];
    for (let i = 0; i < scores.length; i += 2) if (backlog.includes(scores[i] as string)) waiting.push(Math.floor(Number(scores[i + 1]) / 0x1000));
    const answeredAt = Date.now();
    answer();
    const results = await Promise.all(backlog.map((id) => rig.client.result(id, 60_000)));
    const finishedOn = await Promise.all(backlog.map(async (id) => (await queue.getJob(id))?.finishedOn ?? Number.NaN));
    const answered = backlog.filter((_, i) => results[i]?.ok);
    const timedOut = results.filter((r) => r.failure?.code === 'SVCNODE_RESPONSE_TIMEOUT');
    expect(answered.length + timedOut.length).toBe(backlog.length);
    // The jobs that were waiting when it answered again: many, some of them due back more than 5 s later.
    expect(waiting.length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...waiting) - answeredAt).toBeGreaterThan(5_000);
    // They all ended well within that: released by its answers, 2 at once and then one per answer.
    const lastAnswered = Math.max(...backlog.map((_, i) => (results[i]?.ok ? (finishedOn[i] as number) : 0)));
    expect(lastAnswered - answeredAt).toBeLessThan(3_000);
  }, 90_000);
});
