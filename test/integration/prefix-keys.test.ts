/**
 * `--prefix bull`, BullMQ's default written out, is the default: a worker given it keeps its
 * failure records (and token cache, CRL copies) under the same `svcnode:*` keys as one without
 * it, so `svcnode failures` with or without the flag lists them. Real redis-server, built CLI.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, nodeDef, spawnWorker, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { freePort } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

describe('an explicit --prefix bull behaves as the default', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let f: QueueFixtures;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    // Nothing listens there: every attempt is a connect_failed the worker records.
    const closed = await freePort();
    f = await createQueueFixtures(pki, [nodeDef('refused', `https://127.0.0.1:${closed}/x`, 'bank', { retry: { limit: 0 } })]);
    writeFileSync(join(f.dir, 'ctx.json'), '{}');
    worker = await spawnWorker(f, redis.url, { extraArgs: ['--prefix', 'bull'] });
  });

  afterAll(async () => {
    await worker?.proc.stop('SIGTERM', 10_000);
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('records failures where `svcnode failures` without --prefix reads them (before: bull:svcnode:*, listed only with the flag)', async () => {
    const run = await runCli(['enqueue', 'refused', '--redis', redis.url, '--context', join(f.dir, 'ctx.json'), '--wait', '--timeout-ms', '20000', '--json']);
    expect(run.code, run.stdout).toBe(5);
    expect((JSON.parse(run.stdout) as Result).failure?.category).toBe('connect_failed');

    for (const flags of [[], ['--prefix', 'bull']]) {
      const out = await runCli(['failures', '--redis', redis.url, ...flags, '--json']);
      expect(out.code, out.stderr).toBe(0);
      const { nodes } = JSON.parse(out.stdout) as { nodes: Array<{ nodeId: string; counts: Record<string, number> }> };
      expect(nodes.find((n) => n.nodeId === 'refused')?.counts, `failures ${flags.join(' ')}`).toEqual({ connect_failed: 1 });
    }
    const admin = new Redis(redis.port, '127.0.0.1');
    try {
      expect(await admin.keys('bull:svcnode:*')).toEqual([]);
      expect(await admin.smembers('svcnode:failures:nodes')).toContain('refused');
    } finally {
      admin.disconnect();
    }
  });
});
