/**
 * Start-up failures end the process at once with a coded message and a documented exit code,
 * instead of leaving a worker that takes no jobs and ignores SIGTERM; and where /metrics binds.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintCa } from '../../src/pki/mint.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { listen, waitFor } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

describe('worker start-up failures', () => {
  let dir: string;
  let redis: TestRedis;
  let locked: TestRedis;
  const dirs = (): string[] => ['--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles')];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-startup-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    [redis, locked] = await Promise.all([startRedis(), startRedis({ args: ['--requirepass', 'right-pass-4a1'] })]);
  });
  afterAll(async () => {
    await Promise.all([redis?.close(), locked?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 2 within 10 s when --metrics-port is taken', async () => {
    const holder = net.createServer();
    const port = await listen(holder, 0);
    try {
      const r = await runCli(['worker', '--redis', redis.url, ...dirs(), '--metrics-port', String(port)], { timeoutMs: 20_000 });
      expect(r.timedOut).toBe(false);
      expect(r.durationMs).toBeLessThan(10_000);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('SVCNODE_PORT_IN_USE');
      expect(r.stderr).toContain('--metrics-port');
    } finally {
      holder.close();
    }
  });

  it('a stop signal while CRL URLs do not answer ends start-up at once; profiles download side by side', async () => {
    const held = new Set<net.Socket>();
    const blackhole = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
    });
    const port = await listen(blackhole, 0);
    const profiles = join(dir, 'crl-profiles');
    mkdirSync(profiles);
    writeFileSync(join(profiles, 'ca.pem'), (await mintCa({ subject: 'CN=CRL test CA' })).certPem);
    for (const name of ['a', 'b', 'c']) writeFileSync(join(profiles, `${name}.json`), JSON.stringify({ trust: { ca: ['ca.pem'], crl: [`http://127.0.0.1:${port}/${name}.crl`] } }));
    const worker = spawnCli(['worker', '--redis', redis.url, '--nodes', join(dir, 'nodes'), '--profiles', profiles, '--metrics-port', '0']);
    try {
      // All three downloads are open at once, long before the first one's 10 s timeout.
      await waitFor(() => held.size === 3, 5_000, 20, 'three CRL downloads at once');
      const signalled = performance.now();
      const exit = await worker.stop('SIGTERM', 15_000);
      expect(performance.now() - signalled).toBeLessThan(3_000);
      expect(exit.code).toBe(0);
      expect(worker.stderr()).not.toContain('worker started');
    } finally {
      for (const socket of held) socket.destroy();
      blackhole.close();
    }
  });

  it('exits 5 within 10 s when Redis refuses the password, never printing it', async () => {
    const url = `redis://:wrong-pass-9z@127.0.0.1:${locked.port}`;
    const r = await runCli(['worker', '--redis', url, ...dirs(), '--metrics-port', '0'], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.durationMs).toBeLessThan(10_000);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('SVCNODE_REDIS_AUTH');
    expect(r.stderr).not.toContain('wrong-pass-9z');
    expect(r.stderr).not.toContain('worker started');
  });

  it('writes only JSON lines to stderr, also with a Redis whose eviction policy BullMQ warns about in plain text', async () => {
    const lru = await startRedis({ maxmemoryPolicy: 'allkeys-lru' });
    const w = spawnCli(['worker', '--redis', lru.url, ...dirs(), '--metrics-port', '0'], { timeoutMs: 30_000 });
    try {
      await w.waitForLine(/"msg":"worker started"/, { stream: 'stderr', timeoutMs: 15_000 });
      await waitFor(() => w.stderr().includes('IMPORTANT! Eviction policy is allkeys-lru'), 5_000, 50, "BullMQ's warning");
      expect((await w.stop('SIGTERM', 10_000)).code).toBe(0);
      // Before: BullMQ's console.warn printed "IMPORTANT! Eviction policy is allkeys-lru. …" as bare text, 3 times.
      const lines = w.lines.filter((l) => l.stream === 'stderr').map((l) => l.text);
      const records = lines.map((t) => JSON.parse(t) as { level: number; msg: string; source?: string });
      expect(records.filter((r) => r.msg.startsWith('IMPORTANT! Eviction policy is allkeys-lru')).every((r) => r.level === 40 && r.source === 'console')).toBe(true);
    } finally {
      await w.stop('SIGKILL').catch(() => undefined);
      await lru.close();
    }
  });

  it.each([['enqueue', 'get-account'], ['failures']])('%s exits 5 at once when Redis refuses the password (or none is given)', async (...args) => {
    for (const url of [`redis://:wrong-pass-9z@127.0.0.1:${locked.port}`, `redis://127.0.0.1:${locked.port}`]) {
      const r = await runCli([...args, '--redis', url], { timeoutMs: 20_000 });
      expect(r.code).toBe(5);
      expect(r.durationMs).toBeLessThan(4_000); // before the 5 s connect timeout
      expect(r.stderr).toContain('SVCNODE_REDIS_AUTH');
      expect(r.stderr).not.toContain('wrong-pass-9z');
    }
  });

  it.each([['worker'], ['enqueue', 'get-account'], ['failures']])('%s exits 2 when the URL selects a database the server lacks (/16 or ?db=16), and never works on database 0 instead', async (...args) => {
    const db0 = new Redis({ port: redis.port, lazyConnect: true });
    // A job of database 0's queue, which a worker that fell back to database 0 would take.
    const wait = 'bull:service-node-invocations:wait';
    await db0.rpush(wait, 'job-of-db-0');
    try {
      for (const url of [`${redis.url}/16`, `${redis.url}?db=16`]) {
        const r = await runCli([...args, '--redis', url, ...(args[0] === 'worker' ? [...dirs(), '--metrics-port', '0'] : [])], { timeoutMs: 20_000 });
        expect(r.code, url).toBe(2);
        expect(r.stderr).toContain('SVCNODE_REDIS_DB');
        expect(r.stderr).not.toContain('worker started');
        expect(await db0.lrange(wait, 0, -1)).toEqual(['job-of-db-0']);
      }
    } finally {
      await db0.del(wait);
      db0.disconnect();
    }
  });

  it('a worker on ?db=N (as redis-py reads a shared REDIS_URL) serves database N and says so; before, database 0', async () => {
    const worker = spawnCli(['worker', '--redis', `${redis.url}?db=5`, ...dirs(), '--metrics-port', '0'], { timeoutMs: 60_000 });
    try {
      const started = JSON.parse(await worker.waitForLine(/"msg":"worker started"/, { stream: 'stderr', timeoutMs: 20_000 })) as { db?: number };
      // No node is loaded: a worker that takes the job answers with an unknown_node Result (exit 2); one on database 0 never sees it (exit 5).
      const r = await runCli(['enqueue', 'no-such-node', '--redis', `${redis.url}/5`, '--wait', '--timeout-ms', '15000', '--json'], { timeoutMs: 30_000 });
      expect(r.code, r.stdout).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, failure: { category: 'invalid_input', code: 'SVCNODE_UNKNOWN_NODE' } });
      expect(started.db).toBe(5);
    } finally {
      await worker.stop('SIGTERM', 10_000);
    }
  });

  it.each([
    [['worker', '--redis', 'redis+cluster://127.0.0.1:7000', '--prefix', 'svcnode'], "'{svcnode}'"],
    [['enqueue', 'n', '--redis', 'redis+cluster://127.0.0.1:7000', '--prefix', 'svcnode'], "'{svcnode}'"],
    [['failures', '--redis', 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001', '--prefix', 'bull'], "'{bull}'"],
    [['enqueue', 'n', '--redis', 'redis+sentinel://127.0.0.1:26379'], 'MASTER_NAME'],
    [['enqueue', 'n', '--redis', 'redis://127.0.0.1:7000,127.0.0.1:7001'], 'redis+cluster://'],
    [['worker', '--redis', 'redis://127.0.0.1:7000?ssl_cert_reqs=none'], 'takes only ?db='],
    [['failures', '--redis', 'redis://127.0.0.1:7000/3?db=5'], '?db=N'],
    [['enqueue', 'n', '--redis', 'redis+cluster://127.0.0.1:7000?db=2'], 'only database 0'],
  ])('%j exits 2 at once with a hint naming the fix', async (args, hint) => {
    const r = await runCli(args[0] === 'worker' ? [...args, ...dirs()] : args, { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.durationMs).toBeLessThan(5_000);
    expect(r.stderr).toContain('SVCNODE_USAGE');
    expect(r.stderr).toContain(hint);
  });

  it('exits 2 at once on an unknown command or option', async () => {
    expect((await runCli(['wroker'])).code).toBe(2);
    expect((await runCli(['worker', '--metrics-prot', '1'])).code).toBe(2);
  });

  it('lists every option in --help', async () => {
    const worker = (await runCli(['worker', '--help'])).stdout;
    for (const flag of ['--redis', '--prefix', '--metrics-port', '--metrics-host', '--shutdown-grace-ms', '--lock-duration-ms', '--stalled-interval-ms', '--concurrency']) expect(worker).toContain(flag);
    for (const command of [['enqueue', 'x'], ['failures']]) expect((await runCli([...command, '--help'])).stdout).toContain('--prefix');
  });
});

describe('--metrics-host', () => {
  let dir: string;
  let redis: TestRedis;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-host-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reachable = async (host: string, port: number): Promise<boolean> => {
    try {
      return (await fetch(`http://${host}:${port}/healthz`)).status > 0;
    } catch {
      return false;
    }
  };

  it.each([
    ['the default', [], {}, '127.0.0.1', '127.0.0.2'],
    ['--metrics-host', ['--metrics-host', '127.0.0.2'], {}, '127.0.0.2', '127.0.0.1'],
    ['SVCNODE_METRICS_HOST', [], { SVCNODE_METRICS_HOST: '127.0.0.2' }, '127.0.0.2', '127.0.0.1'],
  ])('%s binds /healthz to one address only', async (_name, extra, env, bound, other) => {
    const worker = spawnCli(['worker', '--redis', redis.url, '--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0', ...extra], { env, timeoutMs: 30_000 });
    try {
      const line = await worker.waitForLine(/"healthPort":\d+/, { stream: 'stderr', timeoutMs: 15_000 });
      const { healthPort, host } = JSON.parse(line) as { healthPort: number; host: string };
      expect(host).toBe(bound);
      expect(await reachable(bound, healthPort)).toBe(true);
      expect(await reachable(other, healthPort)).toBe(false);
    } finally {
      await worker.stop('SIGTERM', 10_000);
    }
  });
});
