/**
 * Enqueues while the queue's slot migrates to another master (real Redis Cluster, the steps of
 * `redis-cli --cluster reshard` paced to last ~10 s): BullMQ's multi-key scripts get TRYAGAIN until
 * the slot is handed over. The library's enqueues wait it out; when a cluster keeps redirecting
 * beyond a connection's budget, the error carries a code and a hint.
 */
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNodeClient } from '../../src/index.js';
import { fillSlot, keySlot, startCluster, type SlotMigration, type TestCluster } from '../helpers/redis-cluster.js';

const SLOT = keySlot('{svcnode}');

describe('enqueue during a migration of the queue slot', () => {
  let cluster: TestCluster;
  let migration: SlotMigration | undefined;

  beforeAll(async () => {
    cluster = await startCluster(3, 0);
  });
  afterEach(() => migration?.abandon());
  afterAll(async () => {
    await cluster?.close();
  });

  /** A master other than the slot's, and the slot filled with `count` keys so a migration has something to move. */
  const prepare = (count: number): Promise<{ target: TestCluster['nodes'][number] }> => fillSlot(cluster, SLOT, count);

  it('every enqueue issued during a 10 s migration is confirmed and stored', async () => {
    const { target } = await prepare(2_000);
    const client = new ServiceNodeClient({ redisUrl: cluster.url });
    try {
      await client.enqueue('get-account', {}, { jobId: 'warm-up' });
      migration = await cluster.migrateSlot(SLOT, target);
      const outcomes: Promise<string | { code: unknown; message: string }>[] = [];
      let i = 0;
      const producing = setInterval(() => {
        outcomes.push(client.enqueue('get-account', { n: i }, { jobId: `m-${i++}` }).catch((error: Error & { code?: unknown }) => ({ code: error.code, message: error.message })));
      }, 50);
      const started = performance.now();
      try {
        await migration.move(Infinity, { batch: 20, pauseMs: 100 });
        await migration.finish();
      } finally {
        clearInterval(producing);
      }
      const migrationMs = performance.now() - started;
      expect(migrationMs).toBeGreaterThan(8_000);
      const results = await Promise.all(outcomes);
      expect(results.filter((r) => typeof r !== 'string')).toEqual([]);
      expect(results.length).toBeGreaterThan(100);
      const stored = new Redis({ host: target.host, port: target.port });
      try {
        const ids = results.filter((r): r is string => typeof r === 'string');
        expect(await stored.exists(...ids.map((id) => `{svcnode}:service-node-invocations:${id}`))).toBe(results.length);
      } finally {
        stored.disconnect();
      }
    } finally {
      await client.close();
    }
  }, 60_000);

  it('a cluster that keeps redirecting past the connection budget fails the enqueue with SVCNODE_REDIS_REDIRECTS and a hint', async () => {
    const { target } = await prepare(200);
    // A flow's own Cluster with ioredis's default budget (16 redirections), and a slot left half-migrated.
    const connection = new Cluster(cluster.seeds, { maxRedirections: 16 });
    const client = new ServiceNodeClient({ connection });
    try {
      await client.enqueue('get-account', {}, { jobId: 'before' });
      migration = await cluster.migrateSlot(SLOT, target);
      expect(await migration.move(100)).toBe(100);
      const error = await client.enqueue('get-account', {}, { jobId: 'during' }).then(
        () => undefined,
        (e: unknown) => e as { code?: unknown; message: string; hint?: unknown },
      );
      expect(error?.code).toBe('SVCNODE_REDIS_REDIRECTS');
      expect(error?.message).toMatch(/Last error: .*\b(TRYAGAIN|ASK|MOVED) /);
      expect(String(error?.hint)).toContain('same jobId');
    } finally {
      await client.close();
      connection.disconnect();
    }
  });
});
