/**
 * The failure store against a real Redis: the per-node stream of recent failures stays capped in
 * Redis itself (not only when read back), so a node that fails forever cannot grow Redis; a node
 * with nothing recorded is not listed, and a node's records expire once nothing writes to them,
 * so node ids that come and go (removed, renamed) do not pile up.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureStore, type AttemptOutcome } from '../../src/failures/store.js';
import { waitFor } from '../helpers/net.js';
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

  it('lists no node whose attempts had nothing to record (before: every id that ran, with empty counts)', async () => {
    const store = new FailureStore(client, { prefix: 'quiet-test' });
    // A success on a connection another node opened: no handshake of its own, no failure.
    expect(store.record({ nodeId: 'rides-along', attempts: 1, failure: null, tls: { protocol: 'TLSv1.3', sessionReused: false, connectionReused: true, serverChain: [] } })).toBeUndefined();
    await store.record({ nodeId: 'opened-it', attempts: 1, failure: null, tls: { protocol: 'TLSv1.3', sessionReused: false, connectionReused: false, serverChain: [] } });
    expect((await store.summary()).nodes.map((n) => [n.nodeId, n.counts])).toEqual([['opened-it', { handshakes_ok: 1 }]]);
    expect(await client.smembers('quiet-test:failures:nodes')).toEqual(['opened-it']);
  });

  it("a node's records expire once nothing writes to them, and the listing drops it from the index (before: kept for good)", async () => {
    const store = new FailureStore(client, { prefix: 'expiry-test', retentionSeconds: 1 });
    await store.record(failed('gone-soon', 1));
    await store.record(failed('stays', 1));
    for (const key of ['expiry-test:failures:node:gone-soon:counts', 'expiry-test:failures:node:gone-soon:recent']) expect(await client.ttl(key)).toBe(1);
    expect(await client.ttl('expiry-test:failures:nodes')).toBe(-1);
    await waitFor(async () => (await client.exists('expiry-test:failures:node:gone-soon:counts')) === 0 || undefined, 5_000, 100, 'the records expired');
    // Written again: its keys live on.
    await store.record(failed('stays', 2));
    expect((await store.summary()).nodes.map((n) => n.nodeId)).toEqual(['stays']);
    expect(await client.smembers('expiry-test:failures:nodes')).toEqual(['stays']);
  });

  it('keeps records 30 days after the last write by default', async () => {
    const store = new FailureStore(client, { prefix: 'default-ttl-test' });
    await store.record(failed('n', 1));
    const ttl = await client.ttl('default-ttl-test:failures:node:n:counts');
    expect(ttl).toBeGreaterThan(30 * 86_400 - 60);
    expect(ttl).toBeLessThanOrEqual(30 * 86_400);
  });
});
