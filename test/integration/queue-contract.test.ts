/**
 * The queue contract from a producer's side, against a real redis-server and an in-process
 * worker: raw BullMQ producers get Results as return values, every job ends completed, failure
 * records count per attempt, `svcnode failures` prints documented shapes, and Redis holds no secrets.
 */
import { Writable } from 'node:stream';
import { Job, Queue, QueueEvents } from 'bullmq';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { REDACT_PATHS } from '../../src/observability/logger.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { WORKER_DEFAULTS } from '../../src/queue/constants.js';
import { startWorker, type RunningWorker } from '../../src/queue/worker.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, dumpRedis, nodeDef, startBackend, type QueueFixtures } from '../helpers/fixtures.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { unusedPort, type MtlsServer } from '../helpers/servers.js';

const AUTH_TOKEN = 's3cr3t-token';
const BAD_CERT_RUNS = 3;
const DOWN_RUNS = 2;
const RETRY_LIMIT = 1;
const GHOST_RUNS = 55;

describe('queue contract (raw BullMQ producer, in-process worker)', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: RunningWorker | undefined;
  let queue: Queue;
  let events: QueueEvents;
  const logText: string[] = [];
  const okByNode = new Map<string, number>();

  const add = (data: unknown): Promise<Job> => queue.add('invoke', data);
  const run = async (data: unknown): Promise<{ job: Job; result: Result }> => {
    const job = await add(data);
    const result = (await job.waitUntilFinished(events, 20_000)) as Result;
    if (result.ok) okByNode.set(result.nodeId, (okByNode.get(result.nodeId) ?? 0) + 1);
    return { job, result };
  };

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    // Connection: close makes every successful call a full new handshake, so counts are exact.
    backend = await startBackend(pki, { closeAfterEachResponse: true });
    const down = await unusedPort();
    const url = (port: number): string => `https://localhost:${port}/accounts/{{context.accountId}}`;
    f = await createQueueFixtures(pki, [
      nodeDef('get-account', url(backend.port)),
      nodeDef('with-auth', url(backend.port), 'bank', { request: { method: 'GET', url: url(backend.port), headers: { authorization: `Bearer ${AUTH_TOKEN}` } } }),
      nodeDef('rogue-bot', url(backend.port), 'rogue'),
      // Invoked without its context variable: invalid_input recorded against a known node.
      nodeDef('ghost', url(backend.port)),
      nodeDef('backend-down', url(down), 'bank', { retry: { limit: RETRY_LIMIT, backoffMs: 100 } }),
    ]);
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logText.push(chunk.toString('utf8'));
        done();
      },
    });
    const logger = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    worker = await startWorker({ redisUrl: redis.url, nodesDir: f.nodesDir, profilesDir: f.profilesDir, logger, concurrency: 8, env: { ...process.env, ...f.env } });
    expect(worker.registry.problems).toEqual([]);
    const connection = { host: redis.host, port: redis.port };
    queue = new Queue('service-node-invocations', { connection });
    events = new QueueEvents('service-node-invocations', { connection });
    // Many concurrent waitUntilFinished calls each add a listener.
    queue.setMaxListeners(200);
    events.setMaxListeners(200);
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

  it('returns an ok Result with the response body as the return value of a raw BullMQ job', async () => {
    const { job, result } = await run({ nodeId: 'get-account', context: { accountId: '42' }, requestId: 'req-1' });
    expect(result.ok).toBe(true);
    expect(result.failure).toBeNull();
    expect(result.nodeId).toBe('get-account');
    expect(result.requestId).toBe('req-1');
    expect(result.request).toMatchObject({ method: 'GET' });
    expect(result.request.url).toMatch(/\/accounts\/42$/);
    expect(result.response?.status).toBe(200);
    expect(result.response?.body).toEqual({ ok: true, path: '/accounts/42' });
    expect(result.tls?.clientCertificate?.subject).toMatch(/CN=svcnode-bot/);
    // Stored successful Results are lean: the chain is in failures, failure records and dry-run reports.
    expect(result.tls?.serverChain).toEqual([]);
    expect(await job.getState()).toBe('completed');
    // The stored return value is the same Result (what a producer in another language reads).
    const stored = await Job.fromId(queue, job.id as string);
    expect(stored?.returnvalue).toEqual(result);
    // The backend saw our client certificate.
    expect(backend.clientSubjects.at(-1)).toMatchObject({ CN: 'svcnode-bot' });
  });

  it('returns failure Results as completed jobs: client_cert_rejected, connect_failed after retries, invalid_input', async () => {
    const rejected = await Promise.all(Array.from({ length: BAD_CERT_RUNS }, (_, i) => run({ nodeId: 'rogue-bot', context: { accountId: String(i) } })));
    for (const { result } of rejected) {
      expect(result.ok).toBe(false);
      expect(result.failure?.category).toBe('client_cert_rejected');
      expect(result.failure?.phase).toBe('tls');
      expect(result.attempts).toBe(1); // permanent: not retried
    }

    const down = await Promise.all(Array.from({ length: DOWN_RUNS }, () => run({ nodeId: 'backend-down', context: { accountId: '1' } })));
    for (const { result } of down) {
      expect(result.failure?.category).toBe('connect_failed');
      expect(result.attempts).toBe(RETRY_LIMIT + 1);
    }

    const unknown = await run({ nodeId: 'no-such-node', context: {} });
    expect(unknown.result.failure?.category).toBe('invalid_input');
    expect(unknown.result.nodeId).toBe('no-such-node');

    for (const bad of [{ nodeId: 42 }, {}, { nodeId: 'get-account', context: 'not-an-object' }, { nodeId: 'get-account', extra: true }, null]) {
      const { result } = await run(bad);
      expect(result.ok).toBe(false);
      expect(result.failure?.category).toBe('invalid_input');
    }

    // Producers in any language name their jobs: a wrong name is bad job data, answered with a Result.
    const misnamed = await queue.add('other', { nodeId: 'get-account', context: { accountId: '1' } });
    expect(await misnamed.waitUntilFinished(events, 20_000)).toMatchObject({ ok: false, nodeId: 'get-account', failure: { category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' } });
    expect(await misnamed.getState()).toBe('completed');

    // Every job, ok or not, is completed; none failed, none left over.
    const jobs = [...rejected, ...down, unknown];
    for (const { job } of jobs) expect(await job.getState()).toBe('completed');
    const counts = await queue.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed');
    expect(counts).toEqual({ completed: 1 + BAD_CERT_RUNS + DOWN_RUNS + 1 + 5 + 1, failed: 0, active: 0, wait: 0, delayed: 0 });
  });

  it('ServiceNodeClient.invoke returns the Result, and its jobs carry bounded retention', async () => {
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    try {
      const result = await client.invoke('get-account', { accountId: '7' }, { timeoutMs: 20_000, jobId: 'client-job-1' });
      okByNode.set('get-account', (okByNode.get('get-account') ?? 0) + 1);
      expect(result.ok).toBe(true);
      expect(result.response?.body).toEqual({ ok: true, path: '/accounts/7' });
      const job = await Job.fromId(queue, 'client-job-1');
      expect(await job?.getState()).toBe('completed');
      expect(job?.opts.removeOnComplete).toEqual(WORKER_DEFAULTS.removeOnComplete);
      expect(job?.opts.removeOnFail).toEqual(WORKER_DEFAULTS.removeOnFail);
    } finally {
      await client.close();
    }
  });

  it('counts failures per node and attempt, and `svcnode failures --json` prints the documented shapes', async () => {
    const withAuth = await run({ nodeId: 'with-auth', context: { accountId: '9' } });
    expect(withAuth.result.ok).toBe(true);
    // Enough failures of one node to overflow the recent list.
    await Promise.all(Array.from({ length: GHOST_RUNS }, () => run({ nodeId: 'ghost', context: {} })));

    const summary = await runCli(['failures', '--redis', redis.url, '--json']);
    expect(summary.code).toBe(0);
    const doc = JSON.parse(summary.stdout) as { nodes: Array<{ nodeId: string; counts: Record<string, number>; lastFailure: Record<string, unknown> | null }> };
    expect(Object.keys(doc)).toEqual(['nodes']);
    const byId = new Map(doc.nodes.map((n) => [n.nodeId, n]));
    for (const n of doc.nodes) expect(Object.keys(n).sort()).toEqual(['counts', 'lastFailure', 'nodeId']);

    expect(byId.get('rogue-bot')?.counts).toEqual({ client_cert_rejected: BAD_CERT_RUNS });
    expect(byId.get('backend-down')?.counts).toEqual({ connect_failed: DOWN_RUNS * (RETRY_LIMIT + 1) });
    // One full or resumed handshake per ok call (the backend closes after each response).
    const getAccount = byId.get('get-account')?.counts ?? {};
    expect(getAccount.handshakes_ok).toBe(okByNode.get('get-account'));
    expect(Object.keys(getAccount).filter((k) => k !== 'handshakes_ok' && k !== 'session_reused')).toEqual([]);
    expect(getAccount.session_reused ?? 0).toBeLessThanOrEqual(getAccount.handshakes_ok ?? 0);
    expect(byId.get('get-account')?.lastFailure).toBeNull();
    expect(byId.get('with-auth')?.counts.handshakes_ok).toBe(1);
    // Unknown node ids are answered but not recorded: arbitrary ids must not create Redis keys.
    expect(byId.has('no-such-node')).toBe(false);
    expect(byId.get('ghost')?.counts).toEqual({ invalid_input: GHOST_RUNS });
    expect(byId.get('rogue-bot')?.lastFailure).toMatchObject({ category: 'client_cert_rejected' });
    expect(byId.get('backend-down')?.lastFailure).toMatchObject({ category: 'connect_failed' });

    const one = await runCli(['failures', 'rogue-bot', '--redis', redis.url, '--json']);
    expect(one.code).toBe(0);
    const node = JSON.parse(one.stdout) as { nodeId: string; counts: Record<string, number>; recent: Array<Record<string, unknown>> };
    expect(Object.keys(node).sort()).toEqual(['counts', 'nodeId', 'recent']);
    expect(node.nodeId).toBe('rogue-bot');
    expect(node.counts).toEqual({ client_cert_rejected: BAD_CERT_RUNS });
    expect(node.recent).toHaveLength(BAD_CERT_RUNS);
    for (const r of node.recent) {
      expect(r).toMatchObject({ category: 'client_cert_rejected' });
      expect(typeof r.at).toBe('string');
      expect(Number.isNaN(Date.parse(r.at as string))).toBe(false);
      expect(typeof r.message).toBe('string');
      expect(Array.isArray(r.serverChain)).toBe(true);
      // The handshake got far enough to see the backend's chain.
      expect((r.serverChain as Array<{ subject: string }>)[0]?.subject).toMatch(/CN=localhost/);
    }

    const ghost = JSON.parse((await runCli(['failures', 'ghost', '--redis', redis.url, '--json'])).stdout) as { counts: Record<string, number>; recent: unknown[] };
    expect(ghost.counts.invalid_input).toBe(GHOST_RUNS);
    expect(ghost.recent).toHaveLength(50); // capped (FailureStore recentMax)
  });

  it('leaves no key, passphrase or authorization value anywhere in Redis or the worker log', async () => {
    const { keys, text } = await dumpRedis(redis.url);
    expect(keys.some((k) => k.startsWith('bull:service-node-invocations:'))).toBe(true);
    expect(keys.some((k) => k.startsWith('svcnode:failures:'))).toBe(true);
    // The job hashes and the events stream were read: a Result of the with-auth node is in there.
    expect(text).toContain('/accounts/9');
    const keyBody = (pem: string): string[] => pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----')).slice(0, 3);
    const secrets = [f.passphrase, `Bearer ${AUTH_TOKEN}`, AUTH_TOKEN, ...keyBody(pki.client.keyPem), ...keyBody(f.rogue.keyPem)];
    assertNoSecrets(text, secrets, 'Redis contents');
    assertNoSecrets(logText.join(''), secrets, 'worker log');
  });
});
