/**
 * A Redis that is up and answers reads but refuses writes (maxmemory reached under noeviction):
 * the worker waits instead of spinning on BullMQ's fetch, /healthz and the log name the reason,
 * `enqueue` exits 5 with the code, and once Redis has room the waiting jobs complete.
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Failure } from '../../src/failures/failure.js';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

const QUEUE = 'bull:service-node-invocations';

let pki: TestPki;
let redis: TestRedis;
let admin: Redis;
let backend: MtlsServer;
let f: QueueFixtures;
let worker: WorkerProcess | undefined;

/** Fill Redis past a small maxmemory: every write that needs memory is refused from then on. */
async function fill(): Promise<void> {
  await admin.eval("for i = 1, 20000 do redis.call('set', 'fill:' .. i, string.rep('x', 200)) end return 1", 0);
  await admin.config('SET', 'maxmemory', '2mb');
}

async function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The worker's svcnode_worker_up gauge (sampled every 5 s). */
async function workerUp(port: number): Promise<number> {
  return Number(/^svcnode_worker_up (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1]);
}

/** Calls of BullMQ's scripts (EVALSHA) Redis served or rejected (ACL) since the last reset. */
async function scriptCalls(): Promise<number> {
  const line = /cmdstat_evalsha:(.*)/.exec(await admin.info('commandstats'))?.[1] ?? '';
  return Number(/\bcalls=(\d+)/.exec(line)?.[1] ?? 0) + Number(/rejected_calls=(\d+)/.exec(line)?.[1] ?? 0);
}

beforeAll(async () => {
  pki = await createTestPki();
  [redis, backend] = await Promise.all([startRedis({ maxmemoryPolicy: 'noeviction' }), startBackend(pki)]);
  admin = new Redis(redis.url);
  f = await createQueueFixtures(pki, [nodeDef('ping', `https://localhost:${backend.port}/ping`)]);
  writeFileSync(join(f.dir, 'ctx.json'), '{"i": "1"}');
}, 60_000);

afterAll(async () => {
  await worker?.proc.stop('SIGKILL');
  admin?.disconnect();
  await Promise.all([redis?.close(), backend?.close(), f?.cleanup(), pki?.cleanup()]);
});

describe('Redis refuses writes (OOM under maxmemory-policy noeviction)', () => {
  it('the worker waits instead of spinning, says why, and completes the waiting jobs once Redis has room', async () => {
    // Three jobs wait; then Redis fills up before any worker runs.
    for (let i = 0; i < 3; i++) expect((await runCli(['enqueue', 'ping', '--redis', redis.url, '--context', join(f.dir, 'ctx.json')], { env: f.env })).code).toBe(0);
    await fill();
    worker = await spawnWorker(f, redis.url, { concurrency: 4 });
    const port = worker.metricsPort;

    await waitFor(async () => (await healthz(port)).body.reason === 'redis refuses commands', 10_000, 50, '/healthz names the refused writes');
    expect(await healthz(port)).toMatchObject({ status: 503, body: { status: 'down', reason: 'redis refuses commands', code: 'SVCNODE_REDIS_OOM', redis: 'connected' } });
    // The worker takes no job: svcnode_worker_up says so (the "no worker taking jobs" alert fires).
    await waitFor(async () => (await workerUp(port)) === 0, 10_000, 100, 'svcnode_worker_up 0');
    const logged = worker.logs().find((l) => l.code === 'SVCNODE_REDIS_OOM');
    expect(logged?.hint).toMatch(/maxmemory/);

    // BullMQ alone fetches again at once: thousands of refused scripts a second. Here one a second
    // (plus the stalled check), measured over 15 s: longer than the watchdog takes to recreate a worker idle while jobs wait (10 s idle, checked every 2 s).
    await admin.config('RESETSTAT');
    await new Promise((r) => setTimeout(r, 15_000));
    expect(await scriptCalls()).toBeLessThan(50);
    // Not mistaken for a stuck worker (idle while jobs wait): a new one would be refused too.
    expect(worker.logs().filter((l) => l.msg === 'BullMQ worker stopped taking jobs: recreating it')).toEqual([]);

    await admin.config('SET', 'maxmemory', '0');
    await waitFor(async () => (await admin.zcard(`${QUEUE}:completed`)) === 3, 15_000, 50, 'the three waiting jobs completed');
    for (const id of await admin.zrange(`${QUEUE}:completed`, '0', '-1')) {
      expect((JSON.parse((await admin.hget(`${QUEUE}:${id}`, 'returnvalue')) ?? 'null') as Result).ok).toBe(true);
    }
    await waitFor(async () => (await healthz(port)).status === 200, 10_000, 50, '/healthz back to 200');
    await waitFor(async () => (await workerUp(port)) === 1, 10_000, 100, 'svcnode_worker_up back to 1');
    expect(await worker.proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
    worker = undefined;
  }, 60_000);

  it('enqueue exits 5 with SVCNODE_REDIS_OOM and a hint, in text and in --json', async () => {
    await fill();
    try {
      const args = ['enqueue', 'ping', '--redis', redis.url, '--context', join(f.dir, 'ctx.json')];
      const text = await runCli(args, { env: f.env });
      expect(text.code).toBe(5);
      expect(text.stderr).toContain('SVCNODE_REDIS_OOM');
      expect(text.stderr).toContain('maxmemory');
      const json = await runCli([...args, '--json'], { env: f.env });
      expect(json.code).toBe(5);
      const result = JSON.parse(json.stdout) as Result;
      expect(result.failure).toMatchObject({ code: 'SVCNODE_REDIS_OOM', category: 'connect_failed' });
      expect(result.failure?.hint).toMatch(/maxmemory/);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
  }, 30_000);

  it('MISCONF (a snapshot that cannot be written), READONLY (a replica), NOREPLICAS (min-replicas-to-write unmet) and BUSY (a long script) get their own codes', async () => {
    const enqueue = async (url: string): Promise<Failure | null | undefined> => {
      const out = await runCli(['enqueue', 'ping', '--redis', url, '--context', join(f.dir, 'ctx.json'), '--json'], { env: f.env });
      expect(out.code, out.stdout).toBe(5);
      return (JSON.parse(out.stdout) as Result).failure;
    };
    const [misconf, replica, guarded, busy] = await Promise.all([
      startRedis({ args: ['--save', '3600 1'] }),
      startRedis({ args: ['--replicaof', '127.0.0.1', String(redis.port)] }),
      startRedis({ args: ['--min-replicas-to-write', '1'] }),
      startRedis({ args: ['--busy-reply-threshold', '100'] }),
    ]);
    const m = new Redis(misconf.url);
    // Another client's script that never ends: after 100 ms Redis answers everyone else BUSY.
    const looping = spawn('redis-cli', ['-p', String(busy.port), 'EVAL', 'local i = 0 while true do i = i + 1 end', '0'], { stdio: 'ignore' });
    try {
      // Its directory disappears (a full or unmounted disk): BGSAVE fails and Redis stops taking writes.
      rmSync(misconf.dir, { recursive: true, force: true });
      await m.bgsave();
      await waitFor(async () => /rdb_last_bgsave_status:err/.test(await m.info('persistence')), 10_000, 50, 'BGSAVE failed');
      const [a, b, c, d] = await Promise.all([enqueue(misconf.url), enqueue(replica.url), enqueue(guarded.url), enqueue(busy.url)]);
      expect(a).toMatchObject({ code: 'SVCNODE_REDIS_MISCONF', hint: expect.stringMatching(/disk/) as unknown });
      expect(b).toMatchObject({ code: 'SVCNODE_REDIS_READONLY', hint: expect.stringMatching(/master/) as unknown });
      expect(c).toMatchObject({ code: 'SVCNODE_REDIS_NOREPLICAS', hint: expect.stringMatching(/min-replicas-to-write/) as unknown });
      expect(d).toMatchObject({ code: 'SVCNODE_REDIS_BUSY', hint: expect.stringMatching(/SCRIPT KILL/) as unknown });
    } finally {
      looping.kill();
      m.disconnect();
      await Promise.all([misconf.close(), replica.close(), guarded.close(), busy.close()]);
    }
  }, 40_000);

  it('a Redis user whose ACL does not cover the queue (NOPERM): the worker waits, /healthz and enqueue name SVCNODE_REDIS_NOPERM', async () => {
    // A user confined to other keys: PING and SELECT work, every queue script is refused.
    await admin.acl('SETUSER', 'bot', 'on', '>bot-pw-1', '~other:*', '+@all');
    const url = `redis://bot:bot-pw-1@127.0.0.1:${redis.port}`;
    const w = await spawnWorker(f, url, { concurrency: 4 });
    try {
      await waitFor(async () => (await healthz(w.metricsPort)).body.code === 'SVCNODE_REDIS_NOPERM', 10_000, 50, '/healthz names NOPERM');
      expect((await healthz(w.metricsPort)).body).toMatchObject({ status: 'down', reason: 'redis refuses commands' });
      expect(w.logs().find((l) => l.code === 'SVCNODE_REDIS_NOPERM')?.hint).toMatch(/~bull:\*/);
      await admin.config('RESETSTAT');
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await scriptCalls()).toBeLessThan(15);
    } finally {
      expect(await w.proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
    }
    const out = await runCli(['enqueue', 'ping', '--redis', url, '--context', join(f.dir, 'ctx.json'), '--json'], { env: f.env });
    expect(out.code).toBe(5);
    expect((JSON.parse(out.stdout) as Result).failure?.code).toBe('SVCNODE_REDIS_NOPERM');
    // The password is a secret: not in the output.
    expect(out.stdout + out.stderr).not.toContain('bot-pw-1');
  }, 40_000);
});
