/**
 * The worker never hangs: a job whose data in Redis is not JSON ends at once; a BullMQ worker
 * that stops taking jobs while Redis answers is recreated; SIGTERM with Redis SIGKILLed still
 * ends the process within the grace period.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { startWorker, type RunningWorker } from '../../src/queue/worker.js';
import { createQueueFixtures, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { listen, waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

const QUEUE = 'service-node-invocations';

/**
 * A TCP proxy to Redis that can make the connections blocked in BZPOPMIN go silent: bytes are
 * swallowed both ways and the socket stays open, like a peer lost without a reset.
 */
async function startSilencingProxy(redisPort: number): Promise<{ port: number; blocking(): number; silenceBlocking(): void; close(): Promise<void> }> {
  const blocking = new Set<net.Socket>();
  const silenced = new Set<net.Socket>();
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(redisPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', (d: Buffer) => {
      if (silenced.has(client)) return;
      if (/BZPOPMIN/i.test(d.toString('latin1'))) blocking.add(client);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!silenced.has(client)) client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      blocking.delete(client);
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  const port = await listen(server, 0);
  return {
    port,
    blocking: () => blocking.size,
    silenceBlocking: () => {
      for (const c of blocking) silenced.add(c);
    },
    close: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a worker that never hangs', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let slowBackend: MtlsServer;
  let midBackend: MtlsServer;
  let f: QueueFixtures;
  let queue: Queue;
  let admin: Redis;
  const workers: WorkerProcess[] = [];
  let inProcess: RunningWorker | undefined;
  const after: Array<() => void> = [];

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    [backend, slowBackend, midBackend] = await Promise.all([startBackend(pki, { delayMs: 20 }), startBackend(pki, { delayMs: 10_000 }), startBackend(pki, { delayMs: 1_500 })]);
    f = await createQueueFixtures(pki, [
      nodeDef('quick', `https://localhost:${backend.port}/q/{{context.i}}`),
      nodeDef('stuck', `https://localhost:${slowBackend.port}/s`, 'bank', { timeouts: { responseMs: 60_000 } }),
      nodeDef('mid', `https://localhost:${midBackend.port}/m`),
    ]);
    queue = new Queue(QUEUE, { connection: { host: redis.host, port: redis.port } });
    admin = new Redis(redis.url);
    // Two tests SIGKILL Redis: the test's own clients just reconnect.
    admin.on('error', () => undefined);
    queue.on('error', () => undefined);
  });
  beforeEach(async () => {
    await admin.flushall();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.proc.stop('SIGKILL')));
    await inProcess?.close(0);
    inProcess = undefined;
    for (const f of after.splice(0)) f();
  });
  afterAll(async () => {
    await queue?.close();
    admin?.disconnect();
    await Promise.all([backend?.close(), slowBackend?.close(), midBackend?.close()]);
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  const addQuick = (n: number): Promise<Job[]> => queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'invoke', data: { nodeId: 'quick', context: { i: String(i) } } })));

  it('ends a job whose data in Redis is not JSON within one stalled-check interval, logged once, while others flow', async () => {
    const stalledIntervalMs = 2_000;
    const w = await spawnWorker(f, redis.url, { concurrency: 4, lockDurationMs: 2_000, stalledIntervalMs });
    workers.push(w);
    // What a hand-written producer in another language might leave: a job hash whose data is not JSON.
    const key = `bull:${QUEUE}:poison-1`;
    const written = Date.now();
    await admin.hset(key, { name: 'invoke', data: '{"nodeId": "quick", context: oops', opts: '{}', timestamp: String(written), delay: '0', priority: '0' });
    await admin.lpush(`bull:${QUEUE}:wait`, 'poison-1');
    await admin.zadd(`bull:${QUEUE}:marker`, 0, '0');
    const good = await addQuick(20);

    await waitFor(async () => (await Job.fromId(queue, 'poison-1').catch(() => undefined)) === undefined && (await admin.hget(key, 'finishedOn')), stalledIntervalMs, 20, 'poison job finished');
    expect(Number(await admin.hget(key, 'finishedOn')) - written).toBeLessThan(stalledIntervalMs);
    expect(await admin.zscore(`bull:${QUEUE}:completed`, 'poison-1')).not.toBeNull();
    const result = JSON.parse((await admin.hget(key, 'returnvalue')) ?? 'null') as Result;
    expect(result).toMatchObject({ ok: false, failure: { phase: 'input', category: 'invalid_input' } });

    await waitFor(async () => (await queue.getCompletedCount()) === 21, 15_000, 50, 'the other jobs completed');
    for (const j of good) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result).ok).toBe(true);
    // Two more stalled-check cycles: the poison job is not picked up or logged again.
    await new Promise((r) => setTimeout(r, 2 * stalledIntervalMs));
    expect(w.logs().filter((l) => l.jobId === 'poison-1')).toHaveLength(1);
    expect(w.logs().filter((l) => l.msg === 'worker error')).toEqual([]);
  }, 60_000);

  it.each([
    ['opts', 'is not valid JSON', { opts: '{"attempts": oops' }],
    ['progress', 'is not valid JSON', { opts: '{}', progress: '{"step": oops' }],
    // JSON, but not options (json.dumps(None) from a hand-written producer): BullMQ threw a TypeError and the job cycled through active for good.
    ['opts', 'is not a JSON object (null)', { opts: 'null' }],
  ] as const)('ends a job whose %s in Redis %s at once with an invalid_input Result (BullMQ left it in active forever)', async (field, wrong, broken) => {
    const w = await spawnWorker(f, redis.url, { concurrency: 4 });
    workers.push(w);
    const id = `poison-${field}-${broken.opts.length}`;
    const key = `bull:${QUEUE}:${id}`;
    const written = Date.now();
    await admin.hset(key, { name: 'invoke', data: '{"nodeId": "quick", "context": {}}', timestamp: String(written), delay: '0', priority: '0', ...broken });
    await admin.lpush(`bull:${QUEUE}:wait`, id);
    await admin.zadd(`bull:${QUEUE}:marker`, 0, '0');
    const good = await addQuick(10);

    // Well within the 30 s lock after which BullMQ would stall it and fetch it again.
    await waitFor(async () => (await admin.zscore(`bull:${QUEUE}:completed`, id)) !== null, 10_000, 20, `${id} completed`);
    const result = JSON.parse((await admin.hget(key, 'returnvalue')) ?? 'null') as Result;
    expect(result).toMatchObject({ ok: false, failure: { phase: 'input', category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' } });
    expect(result.failure?.message).toContain(`${field} in Redis ${wrong}`);
    await waitFor(async () => (await queue.getCompletedCount()) === 11, 15_000, 50, 'the other jobs completed');
    for (const j of good) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result).ok).toBe(true);
    expect(await admin.llen(`bull:${QUEUE}:active`)).toBe(0);
    expect(w.logs().filter((l) => l.jobId === id)).toHaveLength(1);
    expect(w.logs().filter((l) => l.msg === 'worker error')).toEqual([]);
  }, 30_000);

  it('ends a job with unparsable opts queued behind others (handed over as the next job of a completion) at once, not after its 30 s lock', async () => {
    const w = await spawnWorker(f, redis.url, { concurrency: 2 });
    workers.push(w);
    const good = await addQuick(20);
    const key = `bull:${QUEUE}:poison-behind`;
    await admin.hset(key, { name: 'invoke', data: '{"nodeId": "quick", "context": {}}', opts: '{"attempts": oops', timestamp: String(Date.now()), delay: '0', priority: '0' });
    await admin.lpush(`bull:${QUEUE}:wait`, 'poison-behind');
    const behind = await addQuick(20);
    await waitFor(async () => (await admin.zscore(`bull:${QUEUE}:completed`, 'poison-behind')) !== null, 10_000, 50, 'poison-behind completed');
    const result = JSON.parse((await admin.hget(key, 'returnvalue')) ?? 'null') as Result;
    expect(result.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' });
    expect(result.failure?.message).toContain('opts in Redis is not valid JSON');
    await waitFor(async () => (await queue.getCompletedCount()) === 41, 15_000, 50, 'the other jobs completed');
    for (const j of [...good, ...behind]) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result).ok).toBe(true);
    expect(await admin.llen(`bull:${QUEUE}:active`)).toBe(0);
    expect(w.logs().filter((l) => l.msg === 'worker error')).toEqual([]);
  }, 40_000);

  it("keeps the worker's retention whatever a producer set, and completes a job whose removeOnComplete is null or whose attempts counter is not a number, calling the backend once", async () => {
    const w = await spawnWorker(f, redis.url, { concurrency: 4 });
    workers.push(w);
    const others = await addQuick(10);
    await waitFor(async () => (await queue.getCompletedCount()) === 10, 15_000, 50, 'first jobs completed');
    // Through BullMQ's own client: before, {count: 1} trimmed every completed job but this one, and true dropped its own Result.
    const trimming = await queue.add('invoke', { nodeId: 'quick', context: { i: 'trim' } }, { removeOnComplete: { count: 1 } });
    const dropping = await queue.add('invoke', { nodeId: 'quick', context: { i: 'drop' } }, { removeOnComplete: true });
    await waitFor(async () => (await queue.getCompletedCount()) === 12, 15_000, 50, 'producer-retention jobs completed');
    for (const j of [...others, trimming, dropping]) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result | undefined)?.ok, `job ${j.id}`).toBe(true);
    // A hand-written producer: {"removeOnComplete": null} failed BullMQ's completion script after the call (the call ran 4 times, the job ended failed); an atm that is not a number left the job in no list.
    const before = backend.requests;
    const raw = async (id: string, fields: Record<string, string>): Promise<void> => {
      await admin.hset(`bull:${QUEUE}:${id}`, { name: 'invoke', data: `{"nodeId": "quick", "context": {"i": "${id}"}}`, opts: '{}', timestamp: String(Date.now()), delay: '0', priority: '0', ...fields });
      await admin.lpush(`bull:${QUEUE}:wait`, id);
      await admin.zadd(`bull:${QUEUE}:marker`, 0, '0');
    };
    await raw('roc-null', { opts: '{"removeOnComplete": null, "removeOnFail": null}' });
    await raw('atm-text', { atm: 'abc' });
    for (const id of ['roc-null', 'atm-text']) {
      await waitFor(async () => (await admin.zscore(`bull:${QUEUE}:completed`, id)) !== null, 10_000, 20, `${id} completed`);
      expect((JSON.parse((await admin.hget(`bull:${QUEUE}:${id}`, 'returnvalue')) ?? 'null') as Result).ok, id).toBe(true);
    }
    expect(backend.requests - before).toBe(2);
    expect(await queue.getJobCounts('failed', 'active', 'wait')).toEqual({ failed: 0, active: 0, wait: 0 });
    expect(w.logs().filter((l) => l.msg === 'worker error')).toEqual([]);
  }, 40_000);

  it('a job whose data is not UTF-8 ends with an invalid_input Result naming the byte, without a call; echoed ids stay bounded and attempts a number', async () => {
    const w = await spawnWorker(f, redis.url, { concurrency: 4 });
    workers.push(w);
    const raw = async (id: string, data: Buffer | string, fields: Record<string, string> = {}): Promise<void> => {
      await admin.hset(`bull:${QUEUE}:${id}`, { name: 'invoke', data, opts: '{}', timestamp: String(Date.now()), delay: '0', priority: '0', ...fields });
      await admin.lpush(`bull:${QUEUE}:wait`, id);
      await admin.zadd(`bull:${QUEUE}:marker`, 0, '0');
    };
    const resultOf = async (id: string): Promise<Result> => {
      await waitFor(async () => (await admin.zscore(`bull:${QUEUE}:completed`, id)) !== null, 10_000, 20, `${id} completed`);
      return JSON.parse((await admin.hget(`bull:${QUEUE}:${id}`, 'returnvalue')) ?? 'null') as Result;
    };
    const before = backend.requests;
    // Latin-1 bytes from a legacy system (before: sent as U+FFFD, Result ok).
    const latin1 = Buffer.concat([Buffer.from('{"nodeId": "quick", "context": {"i": "J'), Buffer.from([0xfc]), Buffer.from('rgen"}}')]);
    await raw('latin1', latin1);
    const bad = await resultOf('latin1');
    expect(bad.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' });
    expect(bad.failure?.message).toContain(`data in Redis is not UTF-8 (byte ${latin1.indexOf(0xfc)})`);
    // A real U+FFFD is UTF-8: the call runs.
    await raw('replacement-char', '{"nodeId": "quick", "context": {"i": "\uFFFD"}}');
    expect((await resultOf('replacement-char')).ok).toBe(true);
    expect(backend.requests - before).toBe(1);

    // Before: a 1 MiB requestId or nodeId was echoed whole into the stored Result (and its events entry).
    await raw('long-ids', JSON.stringify({ nodeId: `n${'x'.repeat(1 << 20)}`, context: {}, requestId: 'r'.repeat(1 << 20) }));
    const long = await resultOf('long-ids');
    expect(long.failure?.category).toBe('invalid_input');
    expect(long.requestId).toBeUndefined();
    expect(long.nodeId).toHaveLength(129);
    expect(Buffer.byteLength((await admin.hget(`bull:${QUEUE}:long-ids`, 'returnvalue')) ?? '')).toBeLessThan(16_384);
    // A producer-set progress does not make attempts a string ("1" + 1 was "11").
    await raw('odd-progress', '{"nodeId": "quick", "context": {"i": "p"}}', { progress: '{"attempt": "1"}' });
    expect(await resultOf('odd-progress')).toMatchObject({ ok: true, attempts: 1 });
  }, 40_000);

  const inProcessWorker = async (redis: string | Redis, lines: Array<Record<string, unknown>>): Promise<RunningWorker> => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    return startWorker({ ...(typeof redis === 'string' ? { redisUrl: redis } : { connection: redis }), nodesDir: f.nodesDir, profilesDir: f.profilesDir, env: { ...process.env, ...f.env }, logger: pino({ level: 'info' }, sink), metricsPort: 0, concurrency: 4, watchdogIntervalMs: 250, watchdogIdleMs: 3_000 });
  };
  const healthz = async (w: RunningWorker): Promise<{ status: number; reason?: string }> => {
    const r = await fetch(`http://127.0.0.1:${w.metricsPort}/healthz`);
    return { ...((await r.json()) as { reason?: string }), status: r.status };
  };
  const recreations = async (w: RunningWorker): Promise<string | undefined> => /^svcnode_worker_recreated_total (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${w.metricsPort}/metrics`)).text())?.[1];

  it('recreates a BullMQ worker whose blocking connection went silent while Redis answers (log line, counter, /healthz)', async () => {
    // The failover symptom: the socket of BullMQ's blocking BZPOPMIN stops carrying anything (no
    // RST, no reply), so the worker waits forever while jobs pile up and Redis answers everyone else.
    const proxy = await startSilencingProxy(redis.port);
    try {
      const lines: Array<Record<string, unknown>> = [];
      inProcess = await inProcessWorker(`redis://127.0.0.1:${proxy.port}`, lines);
      await waitFor(async () => inProcess && (await healthz(inProcess)).status === 200, 5_000, 50, 'healthy at start');
      await waitFor(() => proxy.blocking() > 0, 5_000, 20, 'the worker blocks on BZPOPMIN');
      proxy.silenceBlocking();
      const jobs = await addQuick(10);
      await waitFor(async () => inProcess && (await healthz(inProcess)).reason === 'worker stopped', 5_000, 50, '/healthz says worker stopped');
      expect(await queue.getCompletedCount()).toBe(0);
      await waitFor(async () => (await queue.getCompletedCount()) === 10, 15_000, 50, 'jobs taken by the recreated worker');
      for (const j of jobs) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result).ok).toBe(true);
      expect(lines.filter((l) => l.msg === 'BullMQ worker stopped taking jobs: recreating it').map((l) => l.reason)).toEqual(['idle while 10 jobs wait']);
      expect(await recreations(inProcess)).toBe('1');
      expect((await healthz(inProcess)).status).toBe(200);
    } finally {
      await inProcess?.close(0);
      inProcess = undefined;
      await proxy.close();
    }
  }, 40_000);

  it('recreates a BullMQ worker whose run loop ended (library worker on a ready ioredis instance)', async () => {
    const lines: Array<Record<string, unknown>> = [];
    // The caller's own connection: the worker works on duplicates of it and leaves it open.
    const mine = new Redis(redis.url);
    after.push(() => mine.disconnect());
    inProcess = await inProcessWorker(mine, lines);
    await waitFor(async () => inProcess && (await healthz(inProcess)).status === 200, 5_000, 50, 'healthy at start');
    // pause() ends BullMQ's main loop, as an unrecovered error in it does.
    await inProcess.supervisor.current.pause(true);
    const jobs = await addQuick(10);
    await waitFor(async () => (await queue.getCompletedCount()) === 10, 15_000, 50, 'jobs taken by the recreated worker');
    for (const j of jobs) expect(((await Job.fromId(queue, j.id as string))?.returnvalue as Result).ok).toBe(true);
    expect(lines.filter((l) => l.msg === 'BullMQ worker stopped taking jobs: recreating it').map((l) => l.reason)).toEqual(['run loop ended']);
    expect(await recreations(inProcess)).toBe('1');
    await inProcess.close(1_000);
    inProcess = undefined;
    expect(await mine.ping()).toBe('PONG');
  }, 40_000);

  it('exits within the grace period + 2 s on SIGTERM when Redis was SIGKILLed, non-zero with jobs held', async () => {
    const graceMs = 2_000;
    const w = await spawnWorker(f, redis.url, { concurrency: 2, extraArgs: ['--shutdown-grace-ms', String(graceMs)] });
    workers.push(w);
    await queue.add('invoke', { nodeId: 'stuck', context: {} });
    await waitFor(() => slowBackend.requests >= 1, 10_000, 20, 'a job held by the worker');
    redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const exit = await w.proc.stop('SIGTERM', 20_000);
    const tookMs = Date.now() - started;
    expect(tookMs).toBeLessThan(graceMs + 2_000);
    expect(exit).toEqual({ code: 5, signal: null });
    await redis.restart();
  }, 40_000);

  it('returns the jobs whose calls the end of the grace period cut short to the wait list at once, with no failure recorded', async () => {
    const graceMs = 1_000;
    const before = slowBackend.requests;
    const w = await spawnWorker(f, redis.url, { concurrency: 4, extraArgs: ['--shutdown-grace-ms', String(graceMs)] });
    workers.push(w);
    const jobs = await queue.addBulk([0, 1, 2].map(() => ({ name: 'invoke', data: { nodeId: 'stuck', context: {} } })));
    await waitFor(() => slowBackend.requests >= before + 3, 10_000, 20, 'three jobs held by the worker');
    const started = Date.now();
    expect(await w.proc.stop('SIGTERM', 20_000)).toEqual({ code: 5, signal: null });
    expect(Date.now() - started).toBeLessThan(graceMs + 2_000);
    // Before: left in active under their 30 s locks, for the stall check to find 30–45 s later.
    expect(await admin.lrange(`bull:${QUEUE}:active`, 0, -1)).toEqual([]);
    expect((await admin.lrange(`bull:${QUEUE}:wait`, 0, -1)).sort()).toEqual(jobs.map((j) => j.id).sort());
    for (const job of jobs) expect(await queue.getJobState(job.id as string)).toBe('waiting');
    // The backend did not fail: nothing is recorded against the node, no timeout Result written.
    expect(await admin.exists('svcnode:failures:node:stuck:recent')).toBe(0);
    expect(w.logs().filter((l) => l.msg === 'call cut short by the shutdown: job returned to the queue').map((l) => l.jobId).sort()).toEqual(jobs.map((j) => j.id).sort());
    expect(w.logs().some((l) => l.msg === 'invocation finished' || String(l.msg).startsWith('job outcome not confirmed'))).toBe(false);
    expect(w.logs().find((l) => l.msg === 'grace period over: cutting short the calls still running')).toMatchObject({ jobs: 3, level: 40 });
  }, 40_000);

  it('exits 0 within seconds on SIGTERM when Redis was SIGKILLed and no job was held, whatever the grace period', async () => {
    const graceMs = 30_000;
    const w = await spawnWorker(f, redis.url, { concurrency: 2, extraArgs: ['--shutdown-grace-ms', String(graceMs)] });
    workers.push(w);
    redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const exit = await w.proc.stop('SIGTERM', 40_000);
    // Before: the whole grace period (BullMQ's close waits on the unreachable Redis), past a
    // 30 s termination budget such as Kubernetes' default, so the worker got SIGKILLed there.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(exit).toEqual({ code: 0, signal: null });
    await redis.restart();
  }, 60_000);

  it('exits 0 on SIGTERM after a job whose lock was lost earlier (its outcome unconfirmed, logged); the job is not counted as held', async () => {
    const w = await spawnWorker(f, redis.url, { concurrency: 2 });
    workers.push(w);
    const job = await queue.add('invoke', { nodeId: 'mid', context: {} });
    await waitFor(() => midBackend.requests >= 1, 10_000, 20, 'the job taken');
    // What a failover can do: the lock is gone when the worker writes the outcome ("Missing lock").
    expect(await admin.del(`bull:${QUEUE}:${job.id}:lock`)).toBe(1);
    await waitFor(() => w.logs().some((l) => l.msg === 'job outcome not confirmed by Redis: the stall check returns it to the queue'), 10_000, 50, 'the unconfirmed outcome logged');
    const line = w.logs().find((l) => l.msg === 'job outcome not confirmed by Redis: the stall check returns it to the queue');
    expect(line).toMatchObject({ jobId: job.id, nodeId: 'mid', level: 40 });
    // The job is in Redis's hands now (another worker, or the stall check, finishes it): not this worker's to drain.
    expect(await w.proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
  }, 40_000);
});
