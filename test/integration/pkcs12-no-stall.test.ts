/**
 * A PKCS#12 profile with a high key-derivation count loads on a worker thread: a running worker
 * (a real CLI process on a real Redis) keeps answering /healthz while it loads one. In place, its
 * derivation held the event loop for seconds (39 s for 2,000,000 iterations before the native
 * PBKDF2), and with it job locks and /healthz.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/cli.js';
import { createTestPki, opensslPkcs12, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const PASS = 'slow but fine';
let pki: TestPki;
let redis: TestRedis;

beforeAll(async () => {
  [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
});
afterAll(async () => {
  await redis?.close();
  await pki?.cleanup();
});

describe('a PKCS#12 profile with 2,000,000 iterations added to a running worker', () => {
  it('loads while /healthz keeps answering within a second', async () => {
    const nodes = join(pki.dir, 'nodes');
    mkdirSync(nodes);
    pki.profile('bank');
    const worker = spawnCli(['worker', '--redis', redis.url, '--nodes', nodes, '--profiles', pki.profilesDir, '--metrics-port', '0'], { env: { SVCNODE_LOG_LEVEL: 'info', SLOW_P12_PASS: PASS }, timeoutMs: 60_000 });
    try {
      const line = await worker.waitForLine(/"healthPort":\d+/, { stream: 'stderr', timeoutMs: 15_000 });
      const healthPort = (JSON.parse(line) as { healthPort: number }).healthPort;
      const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'slow.p12'), passphrase: PASS, iterations: 2_000_000 });
      writeFileSync(join(pki.profilesDir, 'slow.json'), JSON.stringify({ client: { pkcs12: p12, passphrase: { env: 'SLOW_P12_PASS' } }, trust: { ca: [pki.files.root] } }));
      const loaded = worker.waitForLine(/"profile":"slow".*"msg":"profile loaded"/, { stream: 'stderr', timeoutMs: 45_000 });
      let done = false;
      void loaded.then(() => (done = true), () => (done = true));
      let slowestMs = 0;
      let probes = 0;
      while (!done) {
        const started = performance.now();
        const health = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
        await health.arrayBuffer();
        slowestMs = Math.max(slowestMs, performance.now() - started);
        probes++;
        await new Promise((r) => setTimeout(r, 50));
      }
      await loaded;
      // Deriving the MAC key alone takes seconds here; the event loop never waited for it.
      expect(probes).toBeGreaterThan(10);
      expect(slowestMs).toBeLessThan(1_000);
    } finally {
      await worker.stop();
    }
  }, 90_000);
});
