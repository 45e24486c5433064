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
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { waitFor } from '../helpers/net.js';
import { startMtlsServer, startSilentServer, type SilentServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

interface SilentNodeRig {
  rig: WorkerRig;
  silent: SilentServer;
  queue: Queue;
}

/** A worker with 8 slots (2 for a node timing out or not answering) and node `silent`, whose backend accepts connections and never answers; started before the describe's tests, closed after. */
function silentNodeRig(dirPrefix: string, handshakeMs: number): SilentNodeRig {
  const ctx = {} as SilentNodeRig;
  beforeAll(async () => {
    ctx.silent = await startSilentServer();
    ctx.rig = await startWorkerRig({
      dirPrefix,
      worker: { concurrency: 8 },
      nodes: () => ({ 'silent.json': JSON.stringify({ id: 'silent', request: { method: 'GET', url: `https://localhost:${ctx.silent.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 }, timeouts: { handshakeMs } }) }),
    });
    ctx.queue = new Queue(QUEUE_NAME, { connection: { url: ctx.rig.redis.url } });
  }, 30_000);
  afterAll(async () => {
    await ctx.queue?.close();
    await ctx.rig?.close();
    await ctx.silent?.close();
  });
  return ctx;
}

const deferredOf = async (rig: WorkerRig, node: string): Promise<number> => {
  const metrics = await (await fetch(`http://127.0.0.1:${rig.worker.metricsPort}/metrics`)).text();
  return Number(new RegExp(`svcnode_jobs_deferred_total\\{node="${node}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
};

describe('a node whose backend never answers (concurrency 8: a node timing out may have 2 calls in flight)', () => {
  const ctx = silentNodeRig('svcnode-bulkhead-', 2_000);

  it('once its calls time out, it gets 2 slots: calls to a healthy node meanwhile finish before its next calls time out; its waiting jobs still get their own Results', async () => {
    const { rig, queue } = ctx;
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
    expect(await deferredOf(rig, 'silent')).toBeGreaterThanOrEqual(8);
  }, 90_000);

  it('a job that has waited 5 minutes while its node stays saturated ends, not sent, with SVCNODE_NODE_SATURATED', async () => {
    const { rig, silent, queue } = ctx;
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

describe('a node whose backend stops answering on a fresh worker (concurrency 8: 2 slots once it is not answering)', () => {
  const ctx = silentNodeRig('svcnode-bulkhead-fresh-', 3_000);

  it('before any of its calls has timed out: 2 calls in flight unanswered for 0.5 s limit it, and calls to a healthy node meanwhile finish before its first timeout', async () => {
    const { rig, silent, queue } = ctx;
    const first = await Promise.all([0, 1].map((i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i}` })));
    await waitFor(() => silent.connections === 2, 5_000, 20, 'two silent calls in flight');
    await sleep(700);
    // Before: these ten took the six free slots, and every ping waited for a silent call to time out.
    const more = await Promise.all(Array.from({ length: 10 }, (_, i) => rig.client.enqueue('silent', {}, { requestId: `silent-${i + 2}` })));
    const pings = await Promise.all(Array.from({ length: 20 }, (_, i) => rig.client.enqueue('ping', {}, { requestId: `ping-${i}` })));
    for (const r of await Promise.all(pings.map((id) => rig.client.result(id, 20_000)))) expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(silent.connections).toBe(2);
    for (const id of first) expect((await rig.client.result(id, 20_000)).failure).toMatchObject({ code: 'SVCNODE_TIMEOUT' });
    const finishedOn = async (id: string): Promise<number> => (await queue.getJob(id))?.finishedOn ?? Number.NaN;
    expect(Math.max(...(await Promise.all(pings.map(finishedOn))))).toBeLessThan(Math.min(...(await Promise.all(first.map(finishedOn)))));
    expect(await deferredOf(rig, 'silent')).toBeGreaterThanOrEqual(more.length);
  }, 60_000);

  it('a slow backend that answers is limited at most until its first answer: jobs that came before it wait about a second, none after', async () => {
    const { rig, queue } = ctx;
    const slow = await startMtlsServer({
      key: rig.pki.server.keyPem,
      cert: rig.pki.server.certPem + rig.pki.intermediate.certPem,
      ca: rig.pki.root.certPem,
      handler: (req, res) => {
        req.resume();
        setTimeout(() => res.end('{"ok":true}'), 1_200);
      },
    });
    try {
      writeFileSync(join(rig.dir, 'nodes', 'slow.json'), JSON.stringify({ id: 'slow', request: { method: 'GET', url: `https://localhost:${slow.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 } }));
      await rig.worker.nodeWatcher.check();
      const wave = (n: number, tag: string) => Promise.all(Array.from({ length: n }, (_, i) => rig.client.enqueue('slow', {}, { requestId: `${tag}-${i}` })));
      // Four calls, then eight more 0.7 s later, before any answer: the eight wait once, about a second.
      const spell = async (tag: string): Promise<number[]> => {
        const jobs = [...(await wave(4, `${tag}-a`)), ...(await sleep(700).then(() => wave(8, `${tag}-b`)))];
        for (const r of await Promise.all(jobs.map((id) => rig.client.result(id, 20_000)))) expect(r.failure, JSON.stringify(r.failure)).toBeNull();
        return Promise.all(jobs.map(async (id) => ((j) => (j?.finishedOn ?? Number.NaN) - (j?.timestamp ?? 0))(await queue.getJob(id))));
      };
      const cold = await spell('cold');
      const deferred = await deferredOf(rig, 'slow');
      expect(deferred).toBeGreaterThanOrEqual(1);
      expect(Math.max(...cold)).toBeLessThan(4_000);
      // Its answer time (1.2 s) now known, the same spell waits for nothing: 4 × 1.2 s without an answer would be needed.
      await spell('warm');
      expect(await deferredOf(rig, 'slow')).toBe(deferred);
    } finally {
      await slow.close();
    }
  }, 60_000);
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
