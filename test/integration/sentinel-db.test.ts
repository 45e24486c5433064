/**
 * `redis+sentinel://…/master?db=N`: a Redis database other than 0 behind Sentinel, as redis-py and
 * Sentinel deployments that share one master between applications write it. Real sentinels, master
 * and replica; a `svcnode worker` process and the library's client on the same URL.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { spawnWorker } from '../helpers/fixtures.js';
import { LOOPBACK } from '../helpers/net.js';
import { startSentinels, type TestSentinels } from '../helpers/redis-cluster.js';
import { slowNodeRun } from '../helpers/slow-node-run.js';

describe('a Sentinel URL with ?db=N', () => {
  const run = slowNodeRun<TestSentinels>();
  let client: ServiceNodeClient | undefined;
  let master: Redis | undefined;

  afterAll(() =>
    run.close(async () => {
      await client?.close();
      master?.disconnect();
    }),
  );

  it('keeps the queue, its Results and svcnode\'s own keys in that database of the master', async () => {
    const { store: group, f } = await run.start(startSentinels('svcnode-db'), 0);
    const url = `${group.url}?db=5`;
    const worker = await spawnWorker(f, url);
    run.workers.push(worker);
    expect(worker.logs().find((l) => l.msg === 'worker started')).toMatchObject({ db: 5 });

    client = new ServiceNodeClient({ redisUrl: url, connectTimeoutMs: 5_000 });
    const id = await client.enqueue('slow', { i: '1' });
    const result = await client.result(id, 30_000);
    expect(result.failure, JSON.stringify(result.failure)).toBeNull();

    master = new Redis({ host: LOOPBACK, port: group.master.port, maxRetriesPerRequest: 1 });
    const keysIn = async (db: number): Promise<string[]> => {
      await master?.select(db);
      return (await master?.keys('*')) ?? [];
    };
    const inDb5 = await keysIn(5);
    expect(inDb5).toContain(`bull:service-node-invocations:${id}`);
    expect(inDb5.some((k) => k.startsWith('svcnode:'))).toBe(true);
    // Before the URL's ?db= was read, all of it went to database 0, beside whatever else lives there.
    expect(await keysIn(0)).toEqual([]);
  }, 90_000);
});
