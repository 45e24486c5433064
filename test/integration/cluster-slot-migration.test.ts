/**
 * Redis Cluster with the queue's slot half-way through a migration (CLUSTER SETSLOT MIGRATING /
 * IMPORTING, held): single-key reads still answer, BullMQ's multi-key scripts get TRYAGAIN and no
 * job moves. /healthz and svcnode_worker_up say so, one line is logged, and all recovers once the
 * migration is undone. Then the whole cluster goes down and comes back: the log names the outage.
 */
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useGatedWorker } from '../helpers/gated-worker.js';
import { waitFor } from '../helpers/net.js';
import { keySlot, startCluster } from '../helpers/redis-cluster.js';

const run = useGatedWorker(() => startCluster(3, 0), '/call/{{context.i}}', { metricsPort: 0, metricsHost: '127.0.0.1', concurrency: 4 }, 90_000);

async function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function workerUp(port: number): Promise<number> {
  return Number(/^svcnode_worker_up (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1]);
}

async function admin<T>(port: number, run: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  try {
    return await run(r);
  } finally {
    r.disconnect();
  }
}

describe("the queue's slot migrating between cluster nodes", () => {
  it('/healthz is 503 "redis refuses commands" (SVCNODE_REDIS_TRYAGAIN) and svcnode_worker_up 0 while it lasts, one line is logged, and the jobs complete once it ends', async () => {
    const { store: cluster, worker, client, backend, logs } = run;
    const port = worker.metricsPort as number;
    await waitFor(async () => (await healthz(port)).status === 200, 10_000, 100, '/healthz 200 at start');

    const ids = [await client.enqueue('gated', { i: '1' }), await client.enqueue('gated', { i: '2' })];
    await waitFor(() => backend.arrived.length === 2, 10_000, 20, 'both calls in flight');

    const slot = keySlot('{svcnode}');
    const owner = await cluster.masterOf(slot);
    const masters = await Promise.all(cluster.nodes.map(async (n) => ({ n, id: await admin(n.port, (r) => r.call('CLUSTER', 'MYID') as Promise<string>) })));
    const from = masters.find((m) => m.n.port === owner.port);
    const to = masters.find((m) => m.n.port !== owner.port);
    if (!from || !to) throw new Error('no second master');
    await admin(to.n.port, (r) => r.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', from.id));
    await admin(from.n.port, (r) => r.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', to.id));
    try {
      // The calls end; writing their Results is a multi-key script, refused while the slot migrates.
      backend.open();
      await waitFor(async () => (await healthz(port)).body.code === 'SVCNODE_REDIS_TRYAGAIN', 10_000, 100, '/healthz names the migration');
      expect(await healthz(port)).toMatchObject({ status: 503, body: { status: 'down', reason: 'redis refuses commands', code: 'SVCNODE_REDIS_TRYAGAIN', redis: 'connected' } });
      await waitFor(async () => (await workerUp(port)) === 0, 12_000, 100, 'svcnode_worker_up 0');
      // Held longer than the worker's 10 s window for repeating an error: still one line.
      await sleep(11_000);
      expect((await healthz(port)).status).toBe(503);
      // Nothing finished meanwhile (the job hashes are still on the old owner).
      for (const id of ids) expect(await admin(from.n.port, (r) => r.hget(`{svcnode}:service-node-invocations:${id}`, 'finishedOn'))).toBeNull();
    } finally {
      await admin(to.n.port, (r) => r.call('CLUSTER', 'SETSLOT', String(slot), 'STABLE'));
      await admin(from.n.port, (r) => r.call('CLUSTER', 'SETSLOT', String(slot), 'STABLE'));
    }

    for (const id of ids) expect((await client.result(id, 20_000)).ok).toBe(true);
    await waitFor(async () => (await healthz(port)).status === 200, 15_000, 100, '/healthz back to 200');
    expect((await healthz(port)).body.status).toBe('ok');
    await waitFor(async () => (await workerUp(port)) === 1, 15_000, 100, 'svcnode_worker_up back to 1');

    const said = (level: number): Record<string, unknown>[] => logs.filter((l) => l.code === 'SVCNODE_REDIS_TRYAGAIN' && l.level === level);
    expect(said(40)).toHaveLength(1);
    expect(said(40)[0]?.hint).toMatch(/slot is migrating between cluster nodes; jobs wait until it completes/);
    // Its end is said too, once.
    await waitFor(() => said(30).length > 0, 10_000, 100, 'the end of the migration logged');
    expect(said(30)).toHaveLength(1);
  }, 120_000);

  it('a cluster without a master for a slot (CLUSTERDOWN) is logged once, /healthz says so, and its end is logged (before: nothing, "redis unreachable")', async () => {
    const { store: cluster, worker, logs } = run;
    const port = worker.metricsPort as number;
    await waitFor(async () => (await healthz(port)).status === 200, 15_000, 100, '/healthz 200 before');
    const before = logs.length;
    // Slot 16383 (no key of the queue) served by no one: the whole cluster answers CLUSTERDOWN.
    const owner = await cluster.masterOf(16383);
    await Promise.all(cluster.nodes.map((n) => admin(n.port, (r) => r.call('CLUSTER', 'DELSLOTS', '16383')).catch(() => undefined)));
    try {
      await waitFor(async () => (await healthz(port)).body.reason === 'redis cluster down', 15_000, 100, '/healthz names the cluster down');
      expect(await healthz(port)).toMatchObject({ status: 503, body: { status: 'down', code: 'SVCNODE_REDIS_CLUSTER_DOWN' } });
      await sleep(1_000);
      const down = logs.slice(before).filter((l) => l.code === 'SVCNODE_REDIS_CLUSTER_DOWN' && l.level === 40);
      expect(down).toHaveLength(1);
      expect(down[0]?.hint).toMatch(/replica is not promoted yet/);
    } finally {
      await admin(owner.port, (r) => r.call('CLUSTER', 'ADDSLOTS', '16383'));
    }
    await cluster.waitHealthy();
    await waitFor(async () => (await healthz(port)).status === 200, 30_000, 100, '/healthz 200 after');
    await waitFor(() => logs.slice(before).some((l) => l.msg === 'Redis Cluster serves the queue again'), 15_000, 100, 'the end logged');
  }, 90_000);

  it('a whole-cluster outage is logged with SVCNODE_REDIS_UNAVAILABLE and a hint, and its end too', async () => {
    const { store: cluster, worker, logs } = run;
    const port = worker.metricsPort as number;
    await waitFor(async () => (await healthz(port)).status === 200, 15_000, 100, '/healthz 200 before the outage');
    const before = logs.length;
    await Promise.all(cluster.nodes.map((n) => n.stop()));
    const line = await waitFor(() => logs.slice(before).find((l) => /^Failed to refresh slots cache/.test(String(l.err))), 30_000, 100, 'the outage logged');
    expect(line).toMatchObject({ code: 'SVCNODE_REDIS_UNAVAILABLE', hint: expect.stringMatching(/no node of the Redis Cluster answered/) as unknown });
    await Promise.all(cluster.nodes.map((n) => n.restart()));
    await cluster.waitHealthy();
    await waitFor(async () => (await healthz(port)).status === 200, 30_000, 100, '/healthz 200 after the outage');
    await waitFor(() => logs.slice(before).some((l) => l.msg === 'Redis connection restored: the worker takes jobs again'), 10_000, 100, 'the end of the outage logged');
  }, 90_000);
});
