/**
 * svcnode on a redis+cluster:// URL that cannot work (real redis-server processes, the real CLI):
 * refused credentials exit 5 within 10 s, as on a single node, and a server without cluster support
 * exits 2 naming the fix, instead of a worker waiting forever and an enqueue blaming the network. A
 * cluster whose nodes answer but report cluster_state:fail is waited for, and said so.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../src/queue/worker.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/net.js';
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const PASSWORD = 'cluster-pass-7q';
const WRONG = 'wrong-pass-3k';

describe('worker start-up on a Redis Cluster', () => {
  let dir: string;
  let locked: TestCluster;
  let plain: TestRedis;
  let failing: TestCluster;
  const dirs = (): string[] => ['--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0'];
  const seeds = (cluster: TestCluster, userinfo = ''): string => `redis+cluster://${userinfo}${cluster.seeds.slice(0, 2).map((s) => `${s.host}:${s.port}`).join(',')}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-cluster-startup-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    [locked, plain, failing] = await Promise.all([startCluster(3, 0, { password: PASSWORD }), startRedis(), startCluster(3, 0)]);
  });
  afterAll(async () => {
    await Promise.all([locked?.close(), plain?.close(), failing?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['a wrong password', `:${WRONG}@`],
    ['no password', ''],
  ])('exits 5 within 10 s when the cluster refuses %s, never printing it', async (_, userinfo) => {
    const r = await runCli(['worker', '--redis', seeds(locked, userinfo), ...dirs()], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.durationMs).toBeLessThan(10_000);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/error \[SVCNODE_REDIS_AUTH\]: Redis refused the credentials: (WRONGPASS|NOAUTH)/);
    expect(r.stderr).toContain('hint: put the right user and password in the URL');
    expect(r.stderr).not.toContain(WRONG);
    expect(r.stderr).not.toContain(PASSWORD);
    expect(r.stderr).not.toContain('worker started');
  });

  it('starts with the right password', async () => {
    const w = spawnCli(['worker', '--redis', seeds(locked, `:${PASSWORD}@`), ...dirs()], { timeoutMs: 30_000 });
    try {
      await w.waitForLine(/"msg":"worker started"/, { stream: 'stderr', timeoutMs: 15_000 });
      expect((await w.stop('SIGTERM', 10_000)).code).toBe(0);
      expect(w.stderr()).not.toContain(PASSWORD);
    } finally {
      await w.stop('SIGKILL').catch(() => undefined);
    }
  });

  it.each([['worker'], ['enqueue', 'get-account'], ['failures']])('%s exits 2 naming the fix when the cluster URL names a server without cluster support', async (...args) => {
    const r = await runCli([...args, '--redis', `redis+cluster://127.0.0.1:${plain.port}`, ...(args[0] === 'worker' ? dirs() : [])], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.durationMs).toBeLessThan(10_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error [SVCNODE_REDIS_NOT_CLUSTER]');
    expect(r.stderr).toContain('cluster support disabled');
    expect(r.stderr).toMatch(/hint: use redis:\/\/.*enable cluster mode/);
    expect(r.stderr).not.toContain('worker started');
  });

  it('enqueue --json prints an invalid_input Result for a cluster URL to a server without cluster support', async () => {
    const r = await runCli(['enqueue', 'get-account', '--json', '--redis', `redis+cluster://127.0.0.1:${plain.port}`], { timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, failure: { category: 'invalid_input', code: 'SVCNODE_REDIS_NOT_CLUSTER' } });
  });

  /** Run `fn` while one slot (16383) is served by no master: every node answers, and every node reports cluster_state:fail. */
  const withSlotUnserved = async (fn: (restore: () => Promise<unknown>) => Promise<void>): Promise<void> => {
    const owner = await failing.masterOf(16_383);
    const admins = failing.nodes.map((n) => new Redis({ host: n.host, port: n.port, maxRetriesPerRequest: 1 }));
    try {
      for (const admin of admins) await admin.call('CLUSTER', 'DELSLOTS', 16_383);
      await waitFor(async () => (await Promise.all(admins.map((a) => a.call('CLUSTER', 'INFO')))).every((i) => String(i).includes('cluster_state:fail')), 10_000, 100, 'cluster_state:fail on every node');
      await fn(async () => admins[failing.nodes.indexOf(owner)]?.call('CLUSTER', 'ADDSLOTS', 16_383));
    } finally {
      for (const admin of admins) admin.disconnect();
    }
  };

  it('waits for a cluster in cluster_state:fail, logging why with a hint and answering /healthz "redis cluster down", and starts once it is ok', async () => {
    await withSlotUnserved(async (restore) => {
      const w = spawnCli(['worker', '--redis', seeds(failing), ...dirs()], { timeoutMs: 60_000 });
      try {
        const serving = JSON.parse(await w.waitForLine(/serving \/metrics and \/healthz/, { stream: 'stderr' })) as { healthPort: number };
        const line = JSON.parse(await w.waitForLine(/SVCNODE_REDIS_CLUSTER_DOWN/, { stream: 'stderr', timeoutMs: 8_000 })) as { msg: string; hint: string };
        expect(line.msg).toContain('cluster_state:fail');
        expect(line.hint).toContain('redis-cli --cluster');
        const r = await fetch(`http://127.0.0.1:${serving.healthPort}/healthz`);
        expect(r.status).toBe(503);
        expect(await r.json()).toMatchObject({ reason: 'redis cluster down', code: 'SVCNODE_REDIS_CLUSTER_DOWN' });
        await restore();
        await w.waitForLine(/"msg":"worker started"/, { stream: 'stderr', timeoutMs: 15_000 });
        // The start-up diagnosis said once, not once per attempt. (The queue's supervisor, made
        // before "worker started", may meet the cluster still converging after the slot came back
        // and logs its own CLUSTERDOWN line with the same code: not counted here.)
        expect(w.lines.filter((l) => l.text.includes('SVCNODE_REDIS_CLUSTER_DOWN') && l.text.includes('"msg":"Redis not reachable'))).toHaveLength(1);
        expect((await w.stop('SIGTERM', 10_000)).code).toBe(0);
      } finally {
        await w.stop('SIGKILL').catch(() => undefined);
      }
    });
  }, 60_000);

  it('says why a ready Cluster object given to the library does not start, from its startup nodes', async () => {
    await withSlotUnserved(async (restore) => {
      const connection = new Cluster([`${failing.seeds[0]?.host}:${failing.seeds[0]?.port}`, failing.seeds[1] as { host: string; port: number }]);
      const logs: Record<string, unknown>[] = [];
      const stop = new AbortController();
      const starting = startWorker({ connection, nodesDir: join(dir, 'nodes'), profilesDir: join(dir, 'profiles'), reloadIntervalMs: 0, signal: stop.signal, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) });
      try {
        // Before: no seed list without a URL, so nothing was said while the worker waited.
        await waitFor(() => logs.some((l) => l.code === 'SVCNODE_REDIS_CLUSTER_DOWN'), 8_000, 50, 'SVCNODE_REDIS_CLUSTER_DOWN logged');
        expect(String(logs.find((l) => l.code === 'SVCNODE_REDIS_CLUSTER_DOWN')?.msg)).toContain('cluster_state:fail (1 of 16384 slots have no working master)');
        await restore();
        const worker = await starting;
        await worker.close();
      } finally {
        stop.abort();
        await starting.then((w) => w.close(), () => undefined);
        connection.disconnect();
      }
    });
  }, 60_000);
});
