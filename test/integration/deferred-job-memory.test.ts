/**
 * A job of a saturated node that the processor puts back to wait is remembered, so that the node's
 * answers can release it early. What is remembered is the job's id, not the job: a BullMQ Job holds
 * its data, and a producer's context has no size limit, so up to 4,096 waiting jobs of a silent
 * node, each kept for up to a minute, would have held that many contexts in the worker's memory.
 * The processor runs here in this process (to see what the garbage collector can free) on a job
 * taken from a real Redis queue; the answer that releases it comes from a real mTLS backend.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Registry } from '../../src/definitions/registry.js';
import { FailureStore } from '../../src/failures/store.js';
import { createLogger } from '../../src/observability/logger.js';
import { JOB_NAME, QUEUE_NAME } from '../../src/queue/constants.js';
import { NodeSlots } from '../../src/queue/node-slots.js';
import { createProcessor } from '../../src/queue/processor.js';
import { AgentPool } from '../../src/tls/agents.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const bank = useBankFixture();

/** A full collection, twice, with the event loop let through in between (BullMQ's promises settle). */
async function collect(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 2; i++) {
    await turn();
    gc();
  }
}

describe('a job of a saturated node put back to wait', () => {
  let redis: TestRedis | undefined;
  const agents = new AgentPool();
  afterAll(async () => {
    agents.destroy();
    await redis?.close();
  });

  it('is remembered without its data (a 4 MiB context is freed while the job waits), and the node\'s answer still puts it back in the queue', async () => {
    redis = await startRedis();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_NAME, { connection: { url: redis.url } });
    const worker = new Worker(QUEUE_NAME, null, { connection: { url: redis.url }, autorun: false });
    try {
      const backend = await bank.serve();
      const nodes = join(bank.pki.dir, 'deferred-memory-nodes');
      bank.pki.profile('bank');
      mkdirSync(nodes);
      writeFileSync(join(nodes, 'flaky.json'), JSON.stringify({ id: 'flaky', request: { method: 'GET', url: `https://localhost:${backend.port}/` }, tls: { profile: 'bank' }, retry: { limit: 0 } }));
      const registry = await Registry.load(nodes, bank.pki.profilesDir);
      // The node is timing out (a call of it timed out, none answered since) with its one slot in flight.
      const slots = new NodeSlots(1);
      slots.leave('flaky', slots.enter('flaky'), 'timeout');
      const inFlight = slots.enter('flaky');
      const processor = createProcessor({ registry: () => registry, agents, store: new FailureStore(connection), logger: createLogger({ level: 'silent' }), slots });

      const token = 'deferred-memory-test';
      // Added 30 s ago: it waits 22–38 s, so only a release puts it back in the queue within this test.
      const added = await queue.add(JOB_NAME, { nodeId: 'flaky', context: { blob: 'x'.repeat(4 * 2 ** 20) } }, { timestamp: Date.now() - 30_000 });
      let job: Job | undefined = await worker.getNextJob(token);
      expect(job.id).toBe(added.id);
      const data = new WeakRef(job.data as object);
      await expect(processor(job, token)).rejects.toBeInstanceOf(DelayedError);
      expect(await queue.getJobState(added.id as string)).toBe('delayed');
      job = undefined;
      await collect();
      // Before: the processor kept the Job, and with it the context, until the job was released or its delay ran out.
      expect(data.deref()).toBeUndefined();

      // The call in flight ends (not an answer); the node's next call is answered: the waiting job returns to the queue at once.
      slots.leave('flaky', inFlight, 'other');
      await queue.add(JOB_NAME, { nodeId: 'flaky', context: {} });
      const next = await worker.getNextJob(token);
      expect((await processor(next, token)).ok).toBe(true);
      await expect.poll(() => queue.getJobState(added.id as string), { timeout: 5_000 }).toBe('waiting');
    } finally {
      await worker.close();
      await queue.close();
      connection.disconnect();
    }
  }, 30_000);
});
