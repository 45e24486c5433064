/**
 * `svcnode worker --reload-interval-ms`: how often the nodes and profiles directories are polled.
 * Each poll reads the metadata of every file (about 1% of a core per 1,000 node files at the
 * default 5 s), so a large deployment may poll less often; 0 turns reloading off. The CLI had no
 * way to set it (only the library's `reloadIntervalMs`). Real worker processes and a real Redis.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const node = (id: string): string => JSON.stringify({ id, request: { method: 'GET', url: `https://backend.example:8443/${id}` }, tls: { profile: 'bank' } });

describe('svcnode worker --reload-interval-ms', () => {
  let redis: TestRedis;
  let pki: TestPki;
  let dir: string;
  beforeAll(async () => {
    [redis, pki] = await Promise.all([startRedis(), createTestPki()]);
    pki.profile('bank');
    dir = mkdtempSync(join(tmpdir(), 'svcnode-reload-interval-'));
  });
  afterAll(async () => {
    await redis?.close();
    await pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function worker(name: string, interval: string): Promise<{ nodes: string; proc: ReturnType<typeof spawnCli> }> {
    const nodes = join(dir, name);
    mkdirSync(nodes);
    writeFileSync(join(nodes, 'first.json'), node('first'));
    const proc = spawnCli(['worker', '--redis', redis.url, '--prefix', name, '--nodes', nodes, '--profiles', pki.profilesDir, '--reload-interval-ms', interval], { env: { SVCNODE_LOG_LEVEL: 'info' }, timeoutMs: 30_000 });
    await proc.waitForLine(/"msg":"worker started"/, { stream: 'stderr', timeoutMs: 20_000 });
    return { nodes, proc };
  }

  it('a short interval picks up a new node file within it', async () => {
    const { nodes, proc } = await worker('fast', '200');
    try {
      const since = proc.lines.length;
      writeFileSync(join(nodes, 'added.json'), node('added'));
      // The default (5 s) would not have polled yet.
      await proc.waitForLine(/"nodeId":"added".*"msg":"node loaded"/, { stream: 'stderr', timeoutMs: 3_000, since });
    } finally {
      await proc.stop();
    }
  }, 40_000);

  it('0 never polls: a new node file waits for a restart', async () => {
    const { nodes, proc } = await worker('off', '0');
    try {
      writeFileSync(join(nodes, 'added.json'), node('added'));
      await sleep(6_000);
      expect(proc.stderr()).not.toMatch(/"nodeId":"added"/);
    } finally {
      await proc.stop();
    }
  }, 40_000);

  it('a value that is not a whole number is a usage error, exit 2', async () => {
    const out = await runCli(['worker', '--redis', redis.url, '--nodes', dir, '--profiles', pki.profilesDir, '--reload-interval-ms', '-5']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('--reload-interval-ms must be a whole number');
  });
});
