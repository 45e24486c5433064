/**
 * `svcnode failures` against a real Redis whose records were tampered with: records that are not
 * JSON, lack fields, hold terminal control sequences, or keys of the wrong type. Each is shown as
 * broken, the other nodes are still listed, the exit code is 0, control characters are escaped.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailureStore } from '../../src/failures/store.js';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const ESC = '\u001b';

function failed(nodeId: string): Result {
  return {
    ok: false,
    nodeId,
    request: { method: 'GET', url: 'https://h/x' },
    tls: null,
    response: null,
    failure: { phase: 'tls', category: 'server_cert_expired', code: 'CERT_HAS_EXPIRED', message: 'expired', hint: 'renew' },
    timings: { connectMs: 0, handshakeMs: 0, totalMs: 0 },
    attempts: 1,
  };
}

describe('svcnode failures survives bad records', () => {
  let redis: TestRedis;
  let r: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    r = new Redis(redis.url);
    const store = new FailureStore(r);
    await store.record(failed('good'));
    await r.sadd('svcnode:failures:nodes', 'not-json', 'no-chain', 'escapes', 'wrong-type', 'counts-string');
    await r.xadd('svcnode:failures:node:not-json:recent', '*', 'record', 'Unexpected{');
    await r.xadd('svcnode:failures:node:no-chain:recent', '*', 'record', JSON.stringify({ at: '2026-01-01T00:00:00.000Z', category: 'timeout', code: 'ETIMEDOUT', message: 'slow', hint: 'wait', attempt: 1 }));
    await r.xadd('svcnode:failures:node:escapes:recent', '*', 'record', JSON.stringify({ at: 'x', category: `timeout${ESC}[2J`, code: 'C', message: `${ESC}]0;owned${'\u0007'}${ESC}[31mred\r\nfake line \u202eevil\u202c`, hint: 'h', attempt: 1, serverChain: [{ subject: `CN=${ESC}[1mbold` }] }));
    await r.hset('svcnode:failures:node:escapes:counts', 'timeout', 'NaN-ish');
    await r.set('svcnode:failures:node:wrong-type:counts', 'a string');
    await r.set('svcnode:failures:node:wrong-type:recent', 'a string');
    // Only the counts key broken: its real failure record must still show, beside the broken key.
    await r.xadd('svcnode:failures:node:counts-string:recent', '*', 'record', JSON.stringify({ at: '2026-01-02T00:00:00.000Z', category: 'timeout', code: 'ETIMEDOUT', message: 'slow', hint: 'wait', attempt: 1, serverChain: [] }));
    await r.set('svcnode:failures:node:counts-string:counts', 'a string');
  });
  afterAll(async () => {
    r?.disconnect();
    await redis?.close();
  });

  it('the summary lists every node, shows broken records as such, escapes control characters, exits 0', async () => {
    const out = await runCli(['failures', '--redis', redis.url]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    for (const id of ['good', 'not-json', 'no-chain', 'escapes', 'wrong-type']) expect(out.stdout).toContain(id);
    expect(out.stdout).toContain('broken');
    expect(out.stdout).not.toContain(ESC);
    expect(out.stdout).toContain('\\u001b');
  });

  it('one node: broken fields are filled in, nothing raw reaches the terminal', async () => {
    for (const id of ['not-json', 'no-chain', 'escapes', 'wrong-type']) {
      const out = await runCli(['failures', id, '--redis', redis.url]);
      expect(out.code, `${id}: ${out.stderr}`).toBe(0);
      expect([...out.stdout].filter((c) => c !== '\n' && (c < ' ' || c === '\u007f'))).toEqual([]);
    }
    const escapes = await runCli(['failures', 'escapes', '--redis', redis.url]);
    expect(escapes.stdout).toContain('\\u001b]0;owned\\u0007');
    // A right-to-left override would reorder what the terminal shows (Trojan-source style).
    expect(escapes.stdout).not.toContain('\u202e');
    expect(escapes.stdout).toContain('\\u202eevil\\u202c');
    expect(escapes.stdout.split('\n').filter((l) => l.startsWith('fake line'))).toEqual([]);
  });

  it('--json stays one valid document with the broken record marked', async () => {
    const out = await runCli(['failures', 'not-json', '--redis', redis.url, '--json']);
    expect(out.code).toBe(0);
    const doc = JSON.parse(out.stdout) as { recent: { broken?: boolean; category: string }[] };
    expect(doc.recent[0]).toMatchObject({ broken: true, category: 'broken_record' });
    const summary = JSON.parse((await runCli(['failures', '--redis', redis.url, '--json'])).stdout) as { nodes: { nodeId: string }[] };
    expect(summary.nodes.map((n) => n.nodeId)).toEqual(['counts-string', 'escapes', 'good', 'no-chain', 'not-json', 'wrong-type']);
  });

  it('a counts or records key of another type is named as broken, not shown as a node without failures', async () => {
    const key = (id: string, part: string): string => `svcnode:failures:node:${id}:${part}`;
    const broken = (k: string): unknown => ({ key: k, code: 'SVCNODE_BROKEN_RECORD', message: expect.stringContaining(`"${k}" holds another type`) as string, hint: expect.stringContaining('delete the key') as string });
    const one = JSON.parse((await runCli(['failures', 'counts-string', '--redis', redis.url, '--json'])).stdout) as { counts: object; recent: { category: string }[]; broken?: unknown[] };
    // Before: {"counts": {}} and nothing else, as if the node had never failed.
    expect(one).toMatchObject({ counts: {}, recent: [{ category: 'timeout' }], broken: [broken(key('counts-string', 'counts'))] });
    const both = JSON.parse((await runCli(['failures', 'wrong-type', '--redis', redis.url, '--json'])).stdout) as { recent: unknown[]; broken?: unknown[] };
    expect(both).toMatchObject({ recent: [], broken: [broken(key('wrong-type', 'counts')), broken(key('wrong-type', 'recent'))] });
    const summary = JSON.parse((await runCli(['failures', '--redis', redis.url, '--json'])).stdout) as { nodes: { nodeId: string; broken?: unknown[] }[] };
    expect(summary.nodes.find((n) => n.nodeId === 'counts-string')?.broken).toEqual([broken(key('counts-string', 'counts'))]);
    expect(summary.nodes.find((n) => n.nodeId === 'good')?.broken).toBeUndefined();
    const text = await runCli(['failures', '--redis', redis.url]);
    expect(text.stdout).toMatch(/counts-string .*timeout \(broken record: see below\)/);
    expect(text.stdout).toContain(`[broken record] Redis key "${key('counts-string', 'counts')}" holds another type`);
    expect((await runCli(['failures', 'counts-string', '--redis', redis.url])).stdout).toContain(`[broken record] Redis key "${key('counts-string', 'counts')}"`);
  });
});
