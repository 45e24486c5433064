import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { unusedPort } from '../helpers/servers.js';

describe('CLI producers when Redis cannot be reached', () => {
  it.each([['enqueue', 'get-account'], ['failures']])('%s exits 5 with a clear error instead of hanging', async (...args) => {
    const port = await unusedPort();
    const r = await runCli([...args, '--redis', `redis://user:hunter2@127.0.0.1:${port}`], { timeoutMs: 20_000 });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('SVCNODE_REDIS_UNAVAILABLE');
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
  });

  it('with --json: enqueue prints a connect_failed Result, failures an {"error"} document (exit 5)', async () => {
    const port = await unusedPort();
    const url = `redis://user:hunter2@127.0.0.1:${port}`;
    const [enqueue, failures] = await Promise.all([runCli(['enqueue', 'get-account', '--redis', url, '--json'], { timeoutMs: 20_000 }), runCli(['failures', '--redis', url, '--json'], { timeoutMs: 20_000 })]);
    expect(enqueue.code, enqueue.stderr).toBe(5);
    expect(JSON.parse(enqueue.stdout)).toMatchObject({ ok: false, nodeId: 'get-account', failure: { phase: 'connect', category: 'connect_failed', code: 'SVCNODE_REDIS_UNAVAILABLE' } });
    expect(failures.code, failures.stderr).toBe(5);
    expect(JSON.parse(failures.stdout)).toMatchObject({ error: { code: 'SVCNODE_REDIS_UNAVAILABLE' } });
    for (const r of [enqueue, failures]) expect(r.stdout + r.stderr).not.toContain('hunter2');
  });
});

describe('worker when Redis cannot be reached', () => {
  it('reports 503 on /healthz while it waits, and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-noredis-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    const port = await unusedPort();
    const worker = spawnCli(['worker', '--redis', `redis://127.0.0.1:${port}`, '--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0'], { timeoutMs: 30_000 });
    try {
      const line = await worker.waitForLine(/"healthPort":\d+/, { stream: 'stderr', timeoutMs: 15_000 });
      const healthPort = (JSON.parse(line) as { healthPort: number }).healthPort;
      const health = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
      expect(health.status).toBe(503);
      expect(((await health.json()) as { redis: string }).redis).toBe('disconnected');
      const started = Date.now();
      const exit = await worker.stop('SIGTERM', 10_000);
      expect(exit.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await worker.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('worker when no sentinel names a reachable master', () => {
  it('logs ioredis\'s "All sentinels are unreachable" once per 10 s (its retry delay grows in the text), with a hint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-nosentinel-'));
    mkdirSync(join(dir, 'nodes'));
    mkdirSync(join(dir, 'profiles'));
    const port = await unusedPort();
    const worker = spawnCli(['worker', '--redis', `redis+sentinel://127.0.0.1:${port}/mymaster`, '--nodes', join(dir, 'nodes'), '--profiles', join(dir, 'profiles'), '--metrics-port', '0'], { timeoutMs: 30_000 });
    try {
      await worker.waitForLine(/All sentinels are unreachable/, { stream: 'stderr', timeoutMs: 15_000 });
      // ioredis retries every 10, 20, 30… ms, each error's text naming the delay: before, one log line per retry.
      await new Promise((r) => setTimeout(r, 2_000));
      const said = worker.lines.filter((l) => l.text.includes('All sentinels are unreachable')).map((l) => JSON.parse(l.text) as { hint?: string });
      expect(said).toHaveLength(1);
      expect(said[0]?.hint).toMatch(/during a failover this lasts until they promote a replica/);
      expect((await worker.stop('SIGTERM', 10_000)).code).toBe(0);
    } finally {
      await worker.stop('SIGKILL').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
