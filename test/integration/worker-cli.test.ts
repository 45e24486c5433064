/**
 * The CLI around the queue: `svcnode enqueue --wait --json` prints one Result and exits with its
 * code; `svcnode worker` reports a bad node file and a bad profile and keeps serving the good
 * nodes; /healthz and /metrics answer; Redis without persistence is warned about.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, invocationsMetric, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

const PINO_WARN = 40;
const PINO_ERROR = 50;

describe('svcnode enqueue / worker CLI', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: WorkerProcess | undefined;
  let contextFile: string;

  const enqueue = (nodeId: string): Promise<{ code: number | null; stdout: string; result: Result }> =>
    runCli(['enqueue', nodeId, '--redis', redis.url, '--context', contextFile, '--wait', '--timeout-ms', '20000', '--json']).then((r) => ({
      code: r.code,
      stdout: r.stdout,
      result: JSON.parse(r.stdout) as Result,
    }));

  beforeAll(async () => {
    // No persistence at all: the worker must warn about it.
    [pki, redis] = await Promise.all([createTestPki(), startRedis({ appendonly: false })]);
    backend = await startBackend(pki);
    const url = `https://localhost:${backend.port}/accounts/{{context.accountId}}`;
    f = await createQueueFixtures(pki, [nodeDef('get-account', url), nodeDef('rogue-bot', url, 'rogue'), nodeDef('uses-broken-profile', url, 'broken')]);
    f.writeNodeFile('broken-node.json', '{"id": "broken-node", "request": {"method": "GET"');
    f.writeProfile('broken', { client: { certificate: join(f.dir, 'missing.pem'), key: join(f.dir, 'missing.key') }, trust: { ca: [join(f.dir, 'missing-root.pem')] } });
    contextFile = join(f.dir, 'ctx.json');
    writeFileSync(contextFile, JSON.stringify({ accountId: '42' }));
    worker = await spawnWorker(f, redis.url, { concurrency: 4 });
  });

  afterAll(async () => {
    await worker?.proc.stop('SIGKILL');
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('logs the bad node file and the bad profile at error level and the missing persistence as a warning', () => {
    const logs = worker!.logs();
    const errors = logs.filter((l) => l.level === PINO_ERROR);
    expect(errors.some((l) => l.kind === 'node' && String(l.file).endsWith('broken-node.json'))).toBe(true);
    expect(errors.some((l) => l.kind === 'profile' && String(l.file).endsWith('broken.json'))).toBe(true);
    const loaded = logs.find((l) => typeof l.nodes === 'number' && typeof l.problems === 'number');
    expect(loaded).toMatchObject({ nodes: 3, problems: 2 });
    expect(logs.some((l) => l.level === PINO_WARN && /appendonly/i.test(String(l.msg)))).toBe(true);
    expect(worker!.proc.child.exitCode).toBeNull();
  });

  it('enqueue --wait --json prints one ok Result and exits 0', async () => {
    const { code, stdout, result } = await enqueue('get-account');
    expect(code).toBe(0);
    // enqueue() JSON.parse()d all of stdout: exactly one JSON document, nothing else.
    expect(stdout.trim().startsWith('{')).toBe(true);
    expect(result.ok).toBe(true);
    expect(result.nodeId).toBe('get-account');
    expect(result.response?.status).toBe(200);
    expect(result.response?.body).toEqual({ ok: true, path: '/accounts/42' });
  });

  it('enqueue --wait --json exits 3 for a TLS failure and 2 for a node whose profile did not load', async () => {
    const [rogue, broken] = await Promise.all([enqueue('rogue-bot'), enqueue('uses-broken-profile')]);
    expect(rogue.code).toBe(3);
    expect(rogue.result.failure?.category).toBe('client_cert_rejected');
    expect(broken.code).toBe(2);
    expect(broken.result.failure?.category).toBe('invalid_input');
  });

  it('serves /healthz (degraded: problems listed) and /metrics with per-node invocation counts', async () => {
    const health = await fetch(`http://127.0.0.1:${worker!.metricsPort}/healthz`);
    expect(health.status).toBe(200);
    const report = (await health.json()) as { status: string; redis: string; nodes: number; problems: unknown[] };
    expect(report).toMatchObject({ status: 'degraded', redis: 'connected', nodes: 3 });
    expect(report.problems).toHaveLength(2);

    const metrics = await fetch(`http://127.0.0.1:${worker!.metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^svcnode_invocations_total\{[^}]*node="get-account"/m);
    expect(await invocationsMetric(worker!.metricsPort, { node: 'get-account', outcome: 'ok' })).toBe(1);
    expect(await invocationsMetric(worker!.metricsPort, { node: 'rogue-bot', outcome: 'client_cert_rejected' })).toBe(1);
  });

  it('counts the files that failed to load at start in the load-failure metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${worker!.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^svcnode_profile_load_failures_total\{profile="broken"\} 1$/m);
    expect(text).toMatch(/^svcnode_node_load_failures_total\{file="broken-node.json"\} 1$/m);
  });
});
