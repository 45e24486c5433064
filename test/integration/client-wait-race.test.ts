/**
 * A Result that arrives while the client is still starting to listen for it. BullMQ's QueueEvents
 * starts reading the events stream at '$' only after its connection has answered CLIENT SETNAME,
 * while the client's "already finished?" check runs on the other connection: a job finishing in
 * between was never reported, and `enqueue --wait` sat out its whole timeout. Here the events
 * connection goes through a proxy that delays every byte by 300 ms, so that window is 900 ms wide
 * and the job is completed inside it, on a real Redis.
 */
import net from 'node:net';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { LOOPBACK, listen, trackSockets, waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const DELAY_MS = 300;

/** A TCP proxy to `port` that holds every chunk, both ways, for `delayMs`. */
async function delayingProxy(port: number, delayMs: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((client) => {
    const upstream = net.connect(port, LOOPBACK);
    const relay = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (chunk) => setTimeout(() => to.write(chunk), delayMs));
      from.on('end', () => setTimeout(() => to.end(), delayMs));
      from.on('error', () => to.destroy());
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  const tracked = trackSockets(server);
  return { port: await listen(server, 0), close: () => tracked.close() };
}

describe('waiting for a Result', () => {
  let redis: TestRedis;
  let proxy: Awaited<ReturnType<typeof delayingProxy>>;

  beforeAll(async () => {
    redis = await startRedis();
    proxy = await delayingProxy(redis.port, DELAY_MS);
  }, 30_000);

  afterAll(async () => {
    await proxy?.close();
    await redis?.close();
  });

  it('gets a Result that arrives after the finished-check but before the first read of the events stream', async () => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // The client listens on a duplicate of the given connection: send that one through the proxy.
    connection.duplicate = (override?: object) => new Redis({ host: LOOPBACK, port: proxy.port, ...override });
    const client = new ServiceNodeClient({ connection });
    const admin = new Redis(redis.url);
    const queue = new Queue(QUEUE_NAME, { connection: new Redis(redis.url, { maxRetriesPerRequest: null }) });
    let worker: Worker | undefined;
    try {
      // An earlier event, so the stream is not empty when the client starts listening.
      await queue.add(JOB_NAME, { nodeId: 'earlier', context: {} });
      const jobId = await client.enqueue('ping', {});
      const waiting = client.result(jobId, 5_000).then(
        (result) => ({ result }),
        (error: Error) => ({ error: error.message }),
      );
      // CLIENT SETNAME reaching Redis: the client has checked the job (it was not finished), and
      // the first XREAD is still 600 ms away.
      await waitFor(async () => String(await admin.client('LIST')).includes(':qe'), 10_000, 10);
      worker = new Worker(QUEUE_NAME, (job) => Promise.resolve({ ok: true, nodeId: (job.data as { nodeId: string }).nodeId }), { connection: new Redis(redis.url, { maxRetriesPerRequest: null }) });
      await waitFor(async () => (await queue.getJobState(jobId)) === 'completed', 5_000, 10);
      expect(await waiting).toEqual({ result: { ok: true, nodeId: 'ping' } });
    } finally {
      await worker?.close();
      await queue.close();
      await client.close();
      connection.disconnect();
      admin.disconnect();
    }
  }, 30_000);

  it('concurrent first waits share one events listener', async () => {
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    const admin = new Redis(redis.url);
    const worker = new Worker(QUEUE_NAME, (job) => Promise.resolve({ ok: true, nodeId: (job.data as { nodeId: string }).nodeId }), { connection: new Redis(redis.url, { maxRetriesPerRequest: null }) });
    try {
      const ids = await Promise.all(['a', 'b', 'c'].map((nodeId) => client.enqueue(nodeId, {})));
      const results = await Promise.all(ids.map((id) => client.result(id, 5_000)));
      expect(results.map((r) => r.nodeId)).toEqual(['a', 'b', 'c']);
      const listeners = String(await admin.client('LIST')).split('\n').filter((line) => line.includes(':qe'));
      expect(listeners).toHaveLength(1);
    } finally {
      await worker.close();
      await client.close();
      admin.disconnect();
    }
  }, 30_000);
});
