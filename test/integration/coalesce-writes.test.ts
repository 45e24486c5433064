/**
 * The worker's Redis connection sends the commands of one event-loop turn in one write: counted
 * by a real redis-server (INFO stats total_reads_processed), on a single node, after the
 * connection was killed and re-opened, on every node of a Redis Cluster, and in a worker
 * finishing a burst of jobs against a real mTLS backend.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/queue/coalesce-writes.js';
import { connectTarget, parseRedisUrl, type RedisConnection } from '../../src/queue/connection.js';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { keySlot, startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

const COMMANDS = 200;

/** Socket reads redis-server made so far (each INFO asked here is one more). */
async function readsOf(admin: Redis): Promise<number> {
  const info = await admin.info('stats');
  const match = /total_reads_processed:(\d+)/.exec(info);
  if (!match) throw new Error(`no total_reads_processed in INFO stats:\n${info}`);
  return Number(match[1]);
}

/** Reads Redis needed for COMMANDS commands given to `client` in one turn, and their replies. */
async function burst(client: RedisConnection, admin: Redis, key: (i: number) => string): Promise<{ reads: number; replies: (string | null)[] }> {
  const before = await readsOf(admin);
  const replies = await Promise.all(Array.from({ length: COMMANDS }, (_, i) => client.set(key(i), `v${i}`, 'GET')));
  const after = await readsOf(admin);
  // One of the counted reads is the second INFO.
  return { reads: after - before - 1, replies };
}

describe('coalesced Redis writes', () => {
  let redis: TestRedis;
  let admin: Redis;
  const open: RedisConnection[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
  }, 30_000);

  afterAll(async () => {
    for (const c of open) c.disconnect();
    admin?.disconnect();
    await redis?.close();
  });

  function connect(coalesced: boolean): RedisConnection {
    const client = connectTarget(parseRedisUrl(redis.url), 'worker');
    if (coalesced) coalesceWrites(client);
    open.push(client);
    return client;
  }

  it('sends the commands of one turn in one write; a plain connection writes each one', async () => {
    const plain = connect(false);
    const coalesced = connect(true);
    await Promise.all([plain.ping(), coalesced.ping()]);

    const a = await burst(plain, admin, (i) => `plain:${i}`);
    const b = await burst(coalesced, admin, (i) => `coalesced:${i}`);
    // The plain count depends on how far Redis lags behind (it reads what has arrived): one per
    // command on an idle machine, fewer under load; coalesced it is one whatever the load.
    expect(b.reads).toBeLessThanOrEqual(3);
    expect(a.reads).toBeGreaterThan(b.reads);
    // Every command answered, in order.
    expect(b.replies).toEqual(Array.from({ length: COMMANDS }, () => null));
    const again = await burst(coalesced, admin, (i) => `coalesced:${i}`);
    expect(again.replies).toEqual(Array.from({ length: COMMANDS }, (_, i) => `v${i}`));
  });

  it('coalesces again on the socket ioredis opens after the connection was killed', async () => {
    const client = connect(true);
    await client.client('SETNAME', 'coalesced-reconnect');
    expect(await admin.client('KILL', 'ID', String(await client.client('ID')))).toBe(1);
    expect(await waitFor(async () => (await client.ping().catch(() => '')) === 'PONG', 10_000)).toBe(true);
    const { reads, replies } = await burst(client, admin, (i) => `reconnected:${i}`);
    expect(reads).toBeLessThanOrEqual(3);
    expect(replies).toHaveLength(COMMANDS);
  });

  it('interleaves with commands written later in the same turn without reordering replies', async () => {
    const client = connect(true);
    await client.ping();
    const first = client.incr('counter');
    const pipeline = client.pipeline().incr('counter').incr('counter').exec();
    const last = client.incr('counter');
    expect(await first).toBe(1);
    expect((await pipeline)?.map(([, v]) => v)).toEqual([2, 3]);
    expect(await last).toBe(4);
  });
});

describe('coalesced Redis writes on a Redis Cluster', () => {
  let cluster: TestCluster;
  let client: Cluster | undefined;

  beforeAll(async () => {
    cluster = await startCluster(3, 0);
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    await cluster?.close();
  });

  it('coalesces on each node connection the cluster client opens', async () => {
    const c = connectTarget(parseRedisUrl(cluster.url), 'worker') as Cluster;
    client = c;
    coalesceWrites(c);
    const tag = '{coalesce}';
    await c.set(`${tag}warm`, '1');
    const master = await cluster.masterOf(keySlot(tag));
    const admin = new Redis(master.port, master.host);
    try {
      const { reads, replies } = await burst(c, admin, (i) => `${tag}:${i}`);
      expect(reads).toBeLessThanOrEqual(3);
      expect(replies).toHaveLength(COMMANDS);
    } finally {
      admin.disconnect();
    }
  });
});

describe('a worker finishing a burst of jobs', () => {
  let rig: WorkerRig | undefined;

  afterAll(async () => rig?.close());

  it('makes Redis read well under once per job (one write per job without coalescing: ~1 read each)', async () => {
    rig = await startWorkerRig({ dirPrefix: 'svcnode-coalesce-', worker: { concurrency: 64 } });
    const admin = new Redis(rig.redis.url);
    const queue = new Queue(QUEUE_NAME, { connection: new Redis(rig.redis.url, { maxRetriesPerRequest: null }) });
    try {
      const n = 400;
      const perJob: number[] = [];
      // The first burst opens the worker's TLS connections; the next two are measured.
      for (let round = 1; round <= 3; round++) {
        const before = await readsOf(admin);
        await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: JOB_NAME, data: { nodeId: 'ping', context: { i: String(i) } } })));
        await waitFor(async () => (await queue.getJobCountByTypes('completed')) >= n * round, 30_000, 100);
        perJob.push(((await readsOf(admin)) - before) / n);
      }
      const results = await queue.getJobs(['completed'], 0, 9);
      expect(results.map((j) => (j.returnvalue as { ok: boolean }).ok)).toEqual(Array.from({ length: 10 }, () => true));
      expect(Math.max(...perJob.slice(1))).toBeLessThan(0.6);
    } finally {
      await queue.close();
      admin.disconnect();
    }
  }, 90_000);
});
