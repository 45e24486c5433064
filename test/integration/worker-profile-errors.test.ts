/**
 * A profile that loads but whose calls fail (here: hard revocation mode and its CRL URL down)
 * is not "ok": the worker logs each error finding at error level with its hint, counts them in
 * the start line, and /healthz is degraded naming them. Real worker process, real Redis.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintLeaf } from '../../src/pki/mint.js';
import { startWorker } from '../../src/queue/worker.js';
import { createQueueFixtures, spawnWorker, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { listen } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

describe('a worker with a profile whose calls fail', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let f: QueueFixtures;
  let worker: WorkerProcess | undefined;
  let url: string;

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    f = await createQueueFixtures(pki);
    // A port nothing listens on: the CRL download is refused at once.
    const probe = net.createServer();
    const port = await listen(probe, 0);
    await new Promise((resolve) => probe.close(resolve));
    url = `http://127.0.0.1:${port}/root.crl`;
    f.writeProfile('crldown', { trust: { ca: [pki.files.root], crl: [url] } });
    worker = await spawnWorker(f, redis.url);
  }, 60_000);

  afterAll(async () => {
    await worker?.proc.stop('SIGKILL');
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('logs the error findings at error level with their hints and counts them at start', () => {
    const logs = worker?.logs() ?? [];
    const unavailable = logs.find((l) => l.code === 'CRL_UNAVAILABLE');
    expect(unavailable).toMatchObject({ level: 50, profile: 'crldown', file: url });
    expect(String(unavailable?.hint)).toContain('reachable');
    expect(logs.find((l) => l.msg === 'definitions loaded')).toMatchObject({ problems: 0, profileErrors: 2 });
  });

  it('/healthz is degraded (200) and names the profile and the finding; the other profiles are fine', async () => {
    const res = await fetch(`http://127.0.0.1:${worker?.metricsPort ?? 0}/healthz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; profileErrors: { profile: string; code: string; file?: string }[] };
    expect(body.status).toBe('degraded');
    expect(body.profileErrors.map((e) => [e.profile, e.code]).sort()).toEqual([['crldown', 'CRL_MISSING'], ['crldown', 'CRL_UNAVAILABLE']]);
  });

  it('/metrics counts them per profile and code (the SvcnodeProfileErrors alert reads it); a profile without any has no series', async () => {
    const text = await (await fetch(`http://127.0.0.1:${worker?.metricsPort ?? 0}/metrics`)).text();
    expect(text).toContain('svcnode_profile_error_findings{profile="crldown",code="CRL_UNAVAILABLE"} 1');
    expect(text).toContain('svcnode_profile_error_findings{profile="crldown",code="CRL_MISSING"} 1');
    expect(text).not.toMatch(/svcnode_profile_error_findings\{profile="bank"/);
  });
});

describe('a client certificate that expires while the worker runs', () => {
  it('becomes a profile error within the judging interval: /healthz, /metrics and one error log line', async () => {
    const [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    const f = await createQueueFixtures(pki);
    const soon = await mintLeaf({ subject: 'CN=svcnode-bot-soon,O=svcnode tests', issuer: pki.intermediate, usage: 'client', notAfter: new Date(Date.now() + 2_500) });
    f.writeProfile('soon', { client: { certificate: pki.write('soon.pem', soon.certPem, pki.intermediate.certPem), key: pki.write('soon.key', soon.keyPem) }, trust: { ca: [pki.files.root] } });
    const lines: { level: number; code?: string; profile?: string; hint?: string; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const worker = await startWorker({ redisUrl: redis.url, nodesDir: f.nodesDir, profilesDir: f.profilesDir, metricsPort: 0, metricsHost: '127.0.0.1', findingsIntervalMs: 200, reloadIntervalMs: 0, env: { ...process.env, ...f.env }, logger });
    const base = `http://127.0.0.1:${worker.metricsPort ?? 0}`;
    const errors = async (): Promise<string[]> => ((await (await fetch(`${base}/healthz`)).json()) as { profileErrors: { profile: string; code: string }[] }).profileErrors.map((e) => `${e.profile} ${e.code}`);
    try {
      expect(await errors()).toEqual([]);
      await new Promise((r) => setTimeout(r, 3_200));
      // Before: nothing until the profile was reloaded, while every call failed as client_cert_expired.
      expect(await errors()).toEqual(['soon CLIENT_CERT_EXPIRED']);
      expect(await (await fetch(`${base}/metrics`)).text()).toContain('svcnode_profile_error_findings{profile="soon",code="CLIENT_CERT_EXPIRED"} 1');
      const logged = lines.filter((l) => l.code === 'CLIENT_CERT_EXPIRED');
      expect(logged).toEqual([expect.objectContaining({ level: 50, profile: 'soon', hint: expect.stringContaining('renew') as string })]);
    } finally {
      await worker.close();
      await redis.close();
      await f.cleanup();
      await pki.cleanup();
    }
  }, 30_000);
});
