/**
 * A job whose key vanishes from Redis while its call runs (what a failover that drops writes not
 * yet replicated does): the worker says so, coded, with the job and node ids, instead of promising
 * that the stall check returns a job that no longer exists.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { useGatedWorker } from '../helpers/gated-worker.js';
import { waitFor } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';

const run = useGatedWorker(() => startRedis(), '/call');

describe('a job whose key is gone from Redis when its outcome is written', () => {
  it('is logged at error level as SVCNODE_JOB_KEY_LOST with job and node ids, not as returned by the stall check', async () => {
    const { store: redis, backend, client, logs } = run;
    const id = await client.enqueue('gated', {});
    await waitFor(() => backend.arrived.length === 1, 10_000, 20, 'the call in flight');
    const admin = new Redis(redis.url);
    try {
      expect(await admin.del(`bull:service-node-invocations:${id}`)).toBe(1);
    } finally {
      admin.disconnect();
    }
    backend.open();

    const lost = await waitFor(() => logs.find((l) => l.code === 'SVCNODE_JOB_KEY_LOST'), 10_000, 20, 'the lost job logged');
    expect(lost).toMatchObject({ level: 50, jobId: id, nodeId: 'gated' });
    expect(lost.hint).toMatch(/Failover loses the last writes/);
    // Said once, and nothing claims the stall check will bring it back.
    expect(logs.filter((l) => l.jobId === id)).toHaveLength(1);
    expect(logs.filter((l) => String(l.err).startsWith('Missing key'))).toEqual([]);
    expect(backend.arrived).toHaveLength(1);
  }, 30_000);
});
