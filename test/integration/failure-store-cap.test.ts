/**
 * The failure store against a real Redis: the per-node stream of recent failures stays capped in
 * Redis itself (not only when read back), so a node that fails forever cannot grow Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureStore, type AttemptOutcome } from '../../src/failures/store.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.close();
});

function failed(nodeId: string, i: number): AttemptOutcome {
  return { nodeId, attempts: 1, tls: null, failure: { phase: 'connect', category: 'connect_failed', code: 'ECONNREFUSED', message: `attempt ${i}`, hint: 'h' } };
}

describe('FailureStore', () => {
  it('caps the stream of recent failures in Redis; counts keep every attempt', async () => {
    const store = new FailureStore(client, { prefix: 'cap-test', recentMax: 5 });
    const RUNS = 400;
    for (let i = 0; i < RUNS; i++) await store.record(failed('flaky', i));
    const length = await client.xlen('cap-test:failures:node:flaky:recent');
    // MAXLEN ~ trims whole stream nodes (100 entries by default): a little above the cap, far below RUNS.
    expect(length).toBeGreaterThanOrEqual(5);
    expect(length).toBeLessThanOrEqual(5 + 100);
    const node = await store.node('flaky');
    expect(node.counts.connect_failed).toBe(RUNS);
    expect(node.recent.map((r) => r.message)[0]).toBe(`attempt ${RUNS - 1}`);
  });
});
