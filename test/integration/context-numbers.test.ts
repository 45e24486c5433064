/**
 * Context numbers that JSON.parse cannot keep (an integer beyond 2^53 from a Python producer,
 * 1e400) are invalid input naming their JSON pointer, wherever a context enters: job data written
 * by another language, ServiceNodeClient.enqueue, `enqueue --context`, `dry-run --context`. The
 * backend is never called with the rounded value. Real redis-server, mTLS backend and CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, QueueEvents, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import type { Result } from '../../src/invoke/result.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { startWorker, type RunningWorker } from '../../src/queue/worker.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createQueueFixtures, nodeDef, type QueueFixtures } from '../helpers/fixtures.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

const HINT = 'send it as a string (JSON numbers beyond 2^53 lose digits)';

describe('context numbers beyond 2^53', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: RunningWorker | undefined;
  let queue: Queue;
  let events: QueueEvents;
  const paths: string[] = [];
  const file = (name: string, text: string): string => {
    const path = join(f.dir, name);
    writeFileSync(path, text);
    return path;
  };

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startMtlsServer({
      key: pki.server.keyPem,
      cert: pki.server.certPem + pki.intermediate.certPem,
      ca: pki.root.certPem,
      handler: (req, res) => {
        req.resume();
        paths.push(req.url ?? '');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      },
    });
    f = await createQueueFixtures(pki, [nodeDef('echo', `https://localhost:${backend.port}/echo/{{context.accountId}}?amount={{context.amount}}`, 'bank', { retry: { limit: 0 } })]);
    const connection = { host: redis.host, port: redis.port };
    queue = new Queue('service-node-invocations', { connection });
    events = new QueueEvents('service-node-invocations', { connection });
    await events.waitUntilReady();
  });

  afterAll(async () => {
    await events?.close();
    await queue?.close();
    await worker?.close(5_000);
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  /** A job whose data is this exact JSON text, as a Python producer's json.dumps writes it (no JS number rounds it on the way in). */
  const rawJob = async (json: string): Promise<Job> => {
    const job = await queue.add('invoke', { nodeId: 'echo', context: {} });
    const admin = new Redis(redis.port, redis.host);
    try {
      await admin.hset(`bull:service-node-invocations:${job.id as string}`, 'data', json);
    } finally {
      admin.disconnect();
    }
    return job;
  };

  it('a job from another language: refused as invalid_input naming the field, the backend not called; 2^53 - 1 and 1.5 still go through', async () => {
    // Written before any worker runs, so the hand-written data is what the worker reads.
    const big = await rawJob('{"nodeId":"echo","context":{"accountId":9007199254740993,"amount":1},"requestId":"big"}');
    const nested = await rawJob('{"nodeId":"echo","context":{"accountId":"a1","amount":1,"items":[{"id":1},{"id":12345678901234567891}]}}');
    const huge = await rawJob('{"nodeId":"echo","context":{"accountId":"a2","amount":1e400}}');
    const safe = await rawJob('{"nodeId":"echo","context":{"accountId":9007199254740991,"amount":1.5}}');
    const silent = pino({ level: 'silent' });
    worker = await startWorker({ redisUrl: redis.url, nodesDir: f.nodesDir, profilesDir: f.profilesDir, logger: silent, concurrency: 2, env: { ...process.env, ...f.env } });

    const refused: [Job, string][] = [[big, '/context/accountId'], [nested, '/context/items/1/id'], [huge, '/context/amount']];
    for (const [job, pointer] of refused) {
      const result = (await job.waitUntilFinished(events, 20_000)) as Result;
      expect(await job.getState()).toBe('completed');
      expect(result).toMatchObject({ ok: false, nodeId: 'echo', failure: { phase: 'input', category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION', hint: HINT } });
      expect(result.failure?.message).toContain(pointer);
    }
    expect(((await big.waitUntilFinished(events, 1_000)) as Result).requestId).toBe('big');

    const ok = (await safe.waitUntilFinished(events, 20_000)) as Result;
    expect(ok.ok, JSON.stringify(ok.failure)).toBe(true);
    expect(paths).toEqual(['/echo/9007199254740991?amount=1.5']);
  });

  it('ServiceNodeClient.enqueue refuses them before anything is queued, naming the field', async () => {
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    try {
      for (const [context, field] of [
        [{ accountId: 2 ** 53 }, '/context/accountId'],
        [{ accountId: 'x', amount: Number.POSITIVE_INFINITY }, '/context/amount'],
        [{ accountId: 'x', amount: Number.NaN }, '/context/amount'],
        [{ accountId: 'x', list: [1, -(2 ** 60)] }, '/context/list/1'],
      ] as const) {
        const error = await client.enqueue('echo', context).then(
          () => expect.fail(`${JSON.stringify(context)} was enqueued`),
          (e: unknown) => e as InvalidInputError,
        );
        expect(error).toBeInstanceOf(InvalidInputError);
        expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', field, hint: HINT });
      }
      const ok = await client.invoke('echo', { accountId: 2 ** 53 - 1, amount: -(2 ** 53 - 1), rate: 1.5 }, { timeoutMs: 20_000 });
      expect(ok.request.url).toMatch(/\/echo\/9007199254740991\?amount=-9007199254740991$/);
    } finally {
      await client.close();
    }
  });

  /** An invalid_input Result (exit 2) naming the field. */
  const expectRefused = (out: CliResult, pointer: string): void => {
    expect(out.code, out.stderr).toBe(2);
    const result = JSON.parse(out.stdout) as Result;
    expect(result.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION', hint: HINT });
    expect(result.failure?.message).toContain(pointer);
  };

  it('dry-run --context and enqueue --context exit 2; a safe integer and a float still run', async () => {
    const big = file('big.json', '{"accountId": 9007199254740993, "amount": 1}');
    const node = join(f.nodesDir, 'echo.json');
    const env = f.env;
    expectRefused(await runCli(['dry-run', node, '--profiles', f.profilesDir, '--context', big, '--json'], { env }), '/context/accountId');
    expectRefused(await runCli(['enqueue', 'echo', '--redis', redis.url, '--context', big, '--json']), '/context/accountId');
    const before = paths.length;
    const ok = await runCli(['dry-run', node, '--profiles', f.profilesDir, '--context', file('ok.json', '{"accountId": 9007199254740991, "amount": 0.25}'), '--json'], { env });
    expect(ok.code, ok.stdout).toBe(0);
    expect(paths.slice(before)).toEqual(['/echo/9007199254740991?amount=0.25']);
  });
});
