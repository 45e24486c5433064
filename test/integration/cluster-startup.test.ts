/**
 * `svcnode worker` on a redis+cluster:// URL that cannot work (real redis-server processes, the
 * real CLI): refused credentials exit 5 within 10 s, as on a single node, instead of waiting forever.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js';

const PASSWORD = 'cluster-pass-7q';
const WRONG = 'wrong-pass-3k';

describe('worker start-up on a Redis Cluster', () => {
  let dir: string;
  let locked: TestCluster;
  const dirs = (): string[] => ['--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0'];
  const seeds = (cluster: TestCluster, userinfo = ''): string => `redis+cluster://${userinfo}${cluster.seeds.slice(0, 2).map((s) => `${s.host}:${s.port}`).join(',')}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-cluster-startup-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    locked = await startCluster(3, 0, { password: PASSWORD });
  });
  afterAll(async () => {
    await locked?.close();
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
});
