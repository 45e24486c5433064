/**
 * `npm run demo` with REDIS_URL pointing at a Redis that a fleet already uses: a foreign BullMQ
 * worker on the default prefix serving real invocations, a producer feeding it, and the fleet's
 * failure records. The demo (the built dist/examples/demo.js, a real subprocess) must share no job
 * with that fleet, leave its keys alone and remove its own, also when interrupted (SIGINT).
 */
import { join } from 'node:path';
import net from 'node:net';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { QUEUE_NAME, JOB_NAME } from '../../src/queue/constants.js';
import { REPO_ROOT, runCli, spawnCli } from '../helpers/cli.js';
import { LOOPBACK, listen, trackSockets, waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const DEMO = join(REPO_ROOT, 'dist', 'examples', 'demo.js');

/** The fleet's queue keys (BullMQ's default prefix): the foreign worker and producer change them, the demo must not. */
const FLEET_QUEUE = `bull:${QUEUE_NAME}:`;

let redis: TestRedis;
let admin: Redis;

/** Every key outside the fleet's queue, with its value (DUMP) and whether it expires. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of (await admin.keys('*')).sort()) {
    if (key.startsWith(FLEET_QUEUE)) continue;
    const [dump, ttl] = await Promise.all([admin.dumpBuffer(key), admin.pttl(key)]);
    out[key] = `${dump?.toString('base64') ?? 'gone'} ttl:${ttl > 0 ? 'set' : ttl}`;
  }
  return out;
}

/** A fleet on the default prefix: a worker that records every job it takes, and a producer that keeps enqueueing. */
interface Fleet {
  seen: { nodeId?: string; context?: { fleet?: string } }[];
  produced: number;
  stopProducing(): void;
  close(): Promise<void>;
}

function startFleet(): Fleet {
  const connection = { host: LOOPBACK, port: redis.port, maxRetriesPerRequest: null };
  const fleet: Fleet = { seen: [], produced: 0, stopProducing: () => undefined, close: () => Promise.resolve() };
  const worker = new Worker(QUEUE_NAME, (job) => {
    fleet.seen.push(job.data as Fleet['seen'][number]);
    return Promise.resolve({ ok: true, servedBy: 'fleet' });
  }, { connection, concurrency: 4 });
  worker.on('error', () => undefined);
  const queue = new Queue(QUEUE_NAME, { connection });
  const timer = setInterval(() => {
    fleet.produced++;
    void queue.add(JOB_NAME, { nodeId: 'get-account', context: { accountId: '7', fleet: 'real' } }, { removeOnComplete: 1000 }).catch(() => undefined);
  }, 100);
  fleet.stopProducing = () => clearInterval(timer);
  fleet.close = async () => {
    clearInterval(timer);
    await Promise.all([worker.close(), queue.close()]);
  };
  return fleet;
}

/** A TCP relay in front of Redis that can start holding every answer back: the demo is then caught mid-call, not after. */
async function startRelay(delayMs: number): Promise<{ url: string; slowDown(): void; close(): Promise<void> }> {
  let slow = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(redis.port, LOOPBACK);
    // Once slow, every chunk waits the same delay: timers of one delay fire in order, so nothing is reordered.
    const later = (fn: () => void): void => void (slow ? setTimeout(fn, delayMs) : fn());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => later(() => client.write(chunk)));
    upstream.on('close', () => later(() => client.destroy()));
    client.on('close', () => upstream.destroy());
  });
  const tracked = trackSockets(server);
  const port = await listen(server, 0);
  return { url: `redis://${LOOPBACK}:${port}`, slowDown: () => void (slow = true), close: () => tracked.close() };
}

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis({ host: LOOPBACK, port: redis.port, lazyConnect: false });
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.close();
});

let fleet: Fleet;
let before: Record<string, string>;

beforeEach(async () => {
  await admin.flushall();
  // The fleet's own failure records and an application's key: the demo must leave both as they are.
  await admin.sadd('svcnode:nodes', 'get-account');
  await admin.hset('svcnode:node:get-account:counts', 'handshakes_ok', '1000');
  await admin.set('app:session:4711', 'a live conversation');
  fleet = startFleet();
  await waitFor(() => fleet.seen.length >= 2, 10_000, 20, 'the fleet serving its own jobs');
  before = await snapshot();
});

afterEach(async () => {
  await fleet?.close();
});

/** Once the producer stops, the fleet has served every job it produced, and nothing else. */
async function expectFleetUndisturbed(): Promise<void> {
  fleet.stopProducing();
  await waitFor(async () => fleet.seen.length >= fleet.produced && (await admin.llen(`${FLEET_QUEUE}wait`)) === 0, 15_000, 50, 'the fleet serving every job it produced').catch(() => undefined);
  expect(fleet.seen.filter((data) => data.context?.fleet !== 'real'), 'jobs of the demo taken by the fleet').toEqual([]);
  expect(fleet.seen.length, 'fleet jobs taken by the demo').toBe(fleet.produced);
  expect(await snapshot()).toEqual(before);
  expect(await admin.keys('*svcnode-demo-*')).toEqual([]);
}

describe('npm run demo with REDIS_URL on a Redis a fleet uses', () => {
  it('runs under its own prefix: the fleet sees no demo job and serves all of its own, its keys are untouched, no demo key is left, exit 0', async () => {
    const r = await runCli([], { entry: DEMO, env: { REDIS_URL: redis.url }, timeoutMs: 90_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('demo finished: 2 ok, 3 failed as expected (server_cert_expired, client_cert_rejected, connect_failed)');
    expect(r.stdout).not.toContain('UNEXPECTED');
    const prefix = /key prefix (svcnode-demo-[0-9a-f]+)\)/.exec(r.stdout)?.[1];
    expect(prefix, r.stdout).toBeDefined();
    // It did write under its prefix (so "nothing left" is not vacuous), and said what it removed.
    expect(Number(new RegExp(`removed the demo's (\\d+) keys \\(${prefix}:\\*\\)`).exec(r.stdout)?.[1])).toBeGreaterThan(0);
    // Section 5 shows the demo's records only, not the fleet's.
    expect(r.stdout).not.toContain('handshakes_ok=1000');
    await expectFleetUndisturbed();
  }, 120_000);

  it('SIGINT in the middle of the calls: exit 130, and the keys it had written are removed', async () => {
    const relay = await startRelay(200);
    try {
      const demo = spawnCli([], { entry: DEMO, env: { REDIS_URL: relay.url }, timeoutMs: 90_000 });
      const closed = new Promise<number | null>((resolve) => demo.child.once('close', (code) => resolve(code)));
      const line = await demo.waitForLine(/key prefix svcnode-demo-/, { timeoutMs: 60_000 });
      const prefix = /key prefix (svcnode-demo-[0-9a-f]+)\)/.exec(line)?.[1] ?? 'none';
      await demo.waitForLine(/^4\. enqueueing invocations/, { timeoutMs: 60_000 });
      // Every further Redis answer now takes 200 ms: once its jobs are in Redis, the calls cannot finish before the signal lands.
      relay.slowDown();
      await waitFor(async () => (await admin.exists(`${prefix}:${QUEUE_NAME}:id`)) === 1, 30_000, 10, "the demo's jobs in Redis");
      demo.child.kill('SIGINT');
      const code = await closed;
      expect(code, demo.stdout() + demo.stderr()).toBe(130);
      expect(demo.stdout()).not.toContain('demo finished');
      expect(Number(new RegExp(`removed the demo's (\\d+) keys \\(${prefix}:\\*\\)`).exec(demo.stdout())?.[1]), demo.stdout() + demo.stderr()).toBeGreaterThan(1);
      await expectFleetUndisturbed();
    } finally {
      await relay.close();
    }
  }, 120_000);
});
