/**
 * svcnode on a redis+cluster:// URL that cannot work (real redis-server processes, the real CLI):
 * refused credentials exit 5 within 10 s, as on a single node, and a server without cluster support
 * exits 2 naming the fix, instead of a worker waiting forever and an enqueue blaming the network.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const PASSWORD = 'cluster-pass-7q';
const WRONG = 'wrong-pass-3k';

describe('worker start-up on a Redis Cluster', () => {
  let dir: string;
  let locked: TestCluster;
  let plain: TestRedis;
  const dirs = (): string[] => ['--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0'];
  const seeds = (cluster: TestCluster, userinfo = ''): string => `redis+cluster://${userinfo}${cluster.seeds.slice(0, 2).map((s) => `${s.host}:${s.port}`).join(',')}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-cluster-startup-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    [locked, plain] = await Promise.all([startCluster(3, 0, { password: PASSWORD }), startRedis()]);
  });
  afterAll(async () => {
    await Promise.all([locked?.close(), plain?.close()]);
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
});
