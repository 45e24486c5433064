/**
 * A backend that sheds load (429 or 5xx, with or without Retry-After): the failure message quotes
 * the wait it asked for, the 429 hint speaks of rate limiting, and the Result the retry policy
 * gives up on says how many attempts were made instead of promising a retry, in the dry-run's
 * retry loop (in process and as the built CLI) and in a worker on a real Redis. A real mTLS
 * server, certificates minted per run.
 */
import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import { runCli } from '../helpers/cli.js';
import type { MtlsServer } from '../helpers/servers.js';
import { startMtlsServer } from '../helpers/servers.js';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

/** Answers `/STATUS` with that status, and `/STATUS/WAIT` with `Retry-After: WAIT` (seconds, or a percent-encoded date). */
const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  req.resume();
  const [status, wait] = (req.url ?? '').slice(1).split('/');
  res.writeHead(Number(status), { 'content-type': 'application/json', ...(wait === undefined ? {} : { 'retry-after': decodeURIComponent(wait) }) }).end('{"error":"busy"}');
};

const FAST = { backoffMs: 10, maxBackoffMs: 20 };

function node(port: number, path: string, o: { method?: NodeDefinition['request']['method']; retry?: NodeDefinition['retry'] } = {}): NodeDefinition {
  return { id: 'shedding', request: { method: o.method ?? 'GET', url: `https://localhost:${port}${path}` }, tls: { profile: 'bank' }, retry: o.retry ?? { limit: 0 }, timeouts: { responseMs: 3_000 } };
}

describe('in process (one attempt, and the retry loop of dry-run --retry)', () => {
  const bank = useBankFixture();
  let server: MtlsServer;
  beforeAll(async () => {
    server = await bank.serve({ handler });
  });

  it('the failure quotes the Retry-After of a 429 or 503, in seconds or as a date', async () => {
    const r429 = await invoke(node(server.port, '/429/30'), {}, bank.deps);
    expect(r429.failure?.code).toBe('HTTP_429');
    expect(r429.failure?.message).toContain('HTTP 429 (Retry-After: 30 s)');
    const date = new Date(Date.now() + 60_000).toUTCString();
    const r503 = await invoke(node(server.port, `/503/${encodeURIComponent(date)}`), {}, bank.deps);
    expect(r503.failure?.message).toMatch(/HTTP 503 \(Retry-After: (59|60) s\)/);
    const plain = await invoke(node(server.port, '/503'), {}, bank.deps);
    expect(plain.failure?.message).not.toContain('Retry-After');
  });

  it('a 429 hint speaks of rate limiting, not of the request or acceptStatus', async () => {
    const r = await invoke(node(server.port, '/429'), {}, bank.deps);
    expect(r.failure?.hint).toMatch(/rate-limit/);
    expect(r.failure?.hint).not.toContain('acceptStatus');
  });

  it('a 429 retried after its Retry-After: the final failure quotes it and counts the attempts', async () => {
    const started = Date.now();
    const r = await invokeWithRetries(node(server.port, '/429/1', { retry: { limit: 1 } }), {}, bank.deps);
    expect(r.attempts).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(r.failure?.message).toContain('HTTP 429 (Retry-After: 1 s)');
    expect(r.failure?.hint).toContain('rate-limited');
    expect(r.failure?.hint).toContain('2 attempts');
    expect(r.failure?.hint).not.toContain('acceptStatus');
  });

  it('a 5xx after the retries ran out says how many attempts were made, not that it may succeed on retry', async () => {
    const r = await invokeWithRetries(node(server.port, '/503', { retry: { limit: 2, ...FAST } }), {}, bank.deps);
    expect(r.attempts).toBe(3);
    expect(r.failure?.hint).toContain('3 attempts');
    expect(r.failure?.hint).toContain('retry.limit 2');
    expect(r.failure?.hint).not.toContain('may succeed on retry');
  });

  it('a 5xx to a POST, sent once, says why it was not retried', async () => {
    const before = server.requests;
    const r = await invokeWithRetries(node(server.port, '/502', { method: 'POST', retry: { limit: 2, ...FAST } }), {}, bank.deps);
    expect(r.attempts).toBe(1);
    expect(server.requests - before).toBe(1);
    expect(r.failure?.hint).toContain('retry.nonIdempotent');
    expect(r.failure?.hint).not.toContain('may succeed on retry');
  });

  it('svcnode dry-run --retry --json: the 503 Result counts the attempts, exit 4', async () => {
    const file = join(bank.pki.dir, 'shedding.json');
    writeFileSync(file, JSON.stringify(node(server.port, '/503/1', { retry: { limit: 1 } })));
    const run = await runCli(['dry-run', file, '--profiles', bank.pki.profilesDir, '--retry', '--json']);
    expect(run.code, run.stderr).toBe(4);
    const r = JSON.parse(run.stdout) as Result;
    expect(r.attempts).toBe(2);
    expect(r.failure?.message).toContain('HTTP 503 (Retry-After: 1 s)');
    expect(r.failure?.hint).toContain('2 attempts');
  });
});

describe('in a worker', () => {
  let rig: WorkerRig;
  let server: MtlsServer;

  beforeAll(async () => {
    rig = await startWorkerRig({ dirPrefix: 'svcnode-status-wording-', worker: { concurrency: 2 } });
    server = await startMtlsServer({ key: rig.pki.server.keyPem, cert: rig.pki.server.certPem + rig.pki.intermediate.certPem, ca: rig.pki.root.certPem, handler });
    const nodes = { 'w-503': node(server.port, '/503', { retry: { limit: 1, ...FAST } }), 'w-429': node(server.port, '/429/1', { retry: { limit: 1 } }) };
    for (const [id, n] of Object.entries(nodes)) writeFileSync(join(rig.dir, 'nodes', `${id}.json`), JSON.stringify({ ...n, id }));
    await rig.worker.nodeWatcher.check();
  });

  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  it('the stored Result of a job whose retries ran out on 503 counts its attempts', async () => {
    const r = await rig.client.invoke('w-503', {}, { timeoutMs: 20_000 });
    expect(r.attempts).toBe(2);
    expect(r.failure?.hint).toContain('2 attempts');
    expect(r.failure?.hint).not.toContain('may succeed on retry');
  });

  it('a job refused with 429 and Retry-After quotes the wait and speaks of rate limiting', async () => {
    const r = await rig.client.invoke('w-429', {}, { timeoutMs: 20_000 });
    expect(r.attempts).toBe(2);
    expect(r.failure?.message).toContain('HTTP 429 (Retry-After: 1 s)');
    expect(r.failure?.hint).toContain('rate-limited');
  });
});
