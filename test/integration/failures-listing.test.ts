/**
 * `svcnode failures` at scale: the listing narrowed to failing nodes or one category, sorted by
 * failures or by the latest failure, cut to a number, with a line that counts what was listed.
 * Before, it was every node with any record (5,500 lines for 5,000 healthy nodes and 500 failing
 * ones), by id only. Records written by the worker's FailureStore into a real Redis, read by the CLI.
 */
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureStore, type AttemptOutcome } from '../../src/failures/store.js';
import type { FailureCategory } from '../../src/failures/categories.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

function attempt(nodeId: string, category?: FailureCategory): AttemptOutcome {
  return {
    nodeId,
    attempts: 1,
    tls: { protocol: 'TLSv1.3', sessionReused: false, connectionReused: false, serverChain: [] },
    failure: category ? { phase: category === 'timeout' ? 'request' : 'connect', category, code: 'X', message: `${category} failure`, hint: 'h' } : null,
  };
}

describe('svcnode failures: --failing, --category, --sort, --limit', () => {
  let redis: TestRedis;
  let r: Redis;
  const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(['failures', '--redis', redis.url, ...args]);
  const listed = (stdout: string): string[] => stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0] ?? '').filter((id) => /^node-/.test(id));

  beforeAll(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    const store = new FailureStore(r);
    // node-a: 3 timeouts; node-d: 2 connect failures; node-c: successful handshakes only; node-b: 1 expired certificate, the latest failure.
    for (const [id, category] of [['node-a', 'timeout'], ['node-a', 'timeout'], ['node-a', 'timeout'], ['node-c', undefined], ['node-d', 'connect_failed'], ['node-d', 'connect_failed'], ['node-b', 'server_cert_expired']] as const) {
      await store.record(attempt(id, category));
      // Record times in milliseconds: each later than the one before.
      await sleep(5);
    }
  });
  afterAll(async () => {
    r?.disconnect();
    await redis?.close();
  });

  it('lists every node by id by default, and counts them', async () => {
    const out = await cli();
    expect(out.code, out.stderr).toBe(0);
    expect(listed(out.stdout)).toEqual(['node-a', 'node-b', 'node-c', 'node-d']);
    expect(out.stdout).toContain('4 nodes with records, 3 with failures\n');
  });

  it('--failing leaves out nodes with successful handshakes only; --category keeps the nodes with that category', async () => {
    const failing = await cli('--failing');
    expect(listed(failing.stdout)).toEqual(['node-a', 'node-b', 'node-d']);
    expect(failing.stdout).toContain('4 nodes with records, 3 with failures; 3 shown');
    const expired = await cli('--category', 'server_cert_expired');
    expect(listed(expired.stdout)).toEqual(['node-b']);
  });

  it('--sort failures puts the most failures first, --sort recent the latest failure first; --limit cuts', async () => {
    expect(listed((await cli('--sort', 'failures')).stdout)).toEqual(['node-a', 'node-d', 'node-b', 'node-c']);
    expect(listed((await cli('--sort', 'recent')).stdout)).toEqual(['node-b', 'node-d', 'node-a', 'node-c']);
    const top = await cli('--failing', '--sort', 'failures', '--limit', '2', '--json');
    expect(top.code, top.stderr).toBe(0);
    const doc = JSON.parse(top.stdout) as { nodes: { nodeId: string; counts: Record<string, number> }[] };
    expect(Object.keys(doc)).toEqual(['nodes']);
    expect(doc.nodes.map((n) => n.nodeId)).toEqual(['node-a', 'node-d']);
    expect(doc.nodes[0]?.counts).toMatchObject({ timeout: 3, handshakes_ok: 3 });
  });

  it('refuses what it cannot do, exit 2: an unknown category or order, a limit of 0, narrowing the failures of one node', async () => {
    for (const args of [['--category', 'nope'], ['--sort', 'size'], ['--limit', '0'], ['node-a', '--failing']]) {
      const out = await cli(...args);
      expect(out.code, `${args.join(' ')}: ${out.stderr}`).toBe(2);
      expect(out.stdout).toBe('');
    }
  });
});
