/**
 * A secrets sweep and a gzip bomb through a real `svcnode worker` process and a real Redis:
 * a node with URL userinfo (refused), certificate-session auth whose field does not match, a
 * backend that sets cookies and token headers. Every Redis key and value, the worker log,
 * /metrics, /healthz and dry-run output hold none of the secrets; a decompression bomb's stored
 * Result and its events-stream entry stay under the documented bound.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import { STORED_RESULT_OVERHEAD_BYTES, type Result } from '../../src/invoke/result.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { QUEUE_NAME } from '../../src/queue/constants.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, dumpRedis, nodeDef, spawnWorker, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

const secret = (label: string): string => `${label}-${randomBytes(12).toString('hex')}`;
const URL_PASSWORD = secret('urlpw');
const SESSION_TOKEN = secret('session');
const COOKIE = secret('cookie');
const HEADER_TOKEN = secret('hdrtoken');
const BOUND = DEFAULTS.response.maxStoredBodyBytes + STORED_RESULT_OVERHEAD_BYTES;
// 64 MiB of NULs, 64 KiB on the wire: cut at maxBodyBytes (1 MiB) when decoded.
const BOMB = gzipSync(Buffer.alloc(64 * 1_048_576));

describe('secrets sweep and gzip bomb (worker process, real Redis)', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: WorkerProcess;
  let client: ServiceNodeClient;
  const results = new Map<string, { jobId: string; result: Result }>();
  const dryRuns: string[] = [];

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startMtlsServer({
      key: pki.server.keyPem,
      cert: pki.server.certPem + pki.intermediate.certPem,
      ca: pki.root.certPem,
      handler: (req, res) => {
        req.resume();
        const cookies = [`sid=${COOKIE}; HttpOnly; Secure`, `other=${COOKIE}x`];
        if (req.url === '/auth') {
          res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': cookies });
          res.end(JSON.stringify({ sessionToken: SESSION_TOKEN, expiresIn: 3600 }));
        } else if (req.url === '/bomb') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
          res.end(BOMB);
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': cookies, 'x-auth-token': HEADER_TOKEN, 'x-request-id': 'r-1' });
          res.end('{"ok":true}');
        }
      },
    });
    const base = `https://localhost:${backend.port}`;
    f = await createQueueFixtures(pki, [
      nodeDef('cookies', `${base}/api`),
      nodeDef('session-mismatch', `${base}/api`, 'bank', { auth: { type: 'certificate-session', tokens: [{ url: `${base}/auth`, header: 'sessionToken', field: 'token' }] } }),
      nodeDef('bomb', `${base}/bomb`),
    ]);
    f.writeNode(nodeDef('userinfo', `https://admin:${URL_PASSWORD}@localhost:${backend.port}/api`));
    worker = await spawnWorker(f, redis.url);
    client = new ServiceNodeClient({ redisUrl: redis.url });
    for (const nodeId of ['cookies', 'session-mismatch', 'bomb', 'userinfo']) {
      const jobId = await client.enqueue(nodeId, {});
      results.set(nodeId, { jobId, result: await client.result(jobId, 30_000) });
    }
    for (const id of ['cookies', 'session-mismatch', 'userinfo']) {
      for (const json of [true, false]) {
        const r = await runCli(['dry-run', join(f.nodesDir, `${id}.json`), '--profiles', f.profilesDir, ...(json ? ['--json'] : [])], { env: f.env });
        dryRuns.push(`${r.code}\n${r.stdout}\n${r.stderr}`);
      }
    }
  }, 120_000);
  afterAll(async () => {
    await client?.close();
    await worker?.proc.stop();
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it('the outcomes are the expected ones', () => {
    expect(results.get('cookies')?.result.ok).toBe(true);
    expect(results.get('cookies')?.result.response?.headers['x-request-id']).toBe('r-1');
    expect(results.get('session-mismatch')?.result.failure?.code).toBe('SVCNODE_AUTH_NO_TOKEN');
    expect(results.get('session-mismatch')?.result.response).toBeNull();
    // Refused at load: the worker does not know the node.
    expect(results.get('userinfo')?.result.failure?.category).toBe('invalid_input');
    expect(results.get('bomb')?.result.response?.truncated).toBe(true);
    expect(dryRuns.filter((d) => d.startsWith('2\n'))).toHaveLength(2);
  });

  it('no secret in any Redis key or value, the worker log, /metrics, /healthz or dry-run output', async () => {
    const secrets = [URL_PASSWORD, SESSION_TOKEN, COOKIE, HEADER_TOKEN, f.passphrase];
    const dump = await dumpRedis(redis.url);
    expect(dump.keys.length).toBeGreaterThan(5);
    assertNoSecrets(dump.text, secrets, 'Redis');
    assertNoSecrets(worker.proc.lines.map((l) => l.text).join('\n'), secrets, 'worker log');
    const metrics = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
    assertNoSecrets(metrics, secrets, '/metrics');
    const health = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).text();
    expect(health).toContain('userinfo');
    assertNoSecrets(health, secrets, '/healthz');
    assertNoSecrets(dryRuns.join('\n'), secrets, 'dry-run output');
  });

  it('the gzip bomb: stored return value and its events-stream entry each under the documented bound', async () => {
    const { jobId } = results.get('bomb') ?? expect.fail('no bomb job');
    const redisClient = new Redis(redis.url);
    try {
      const stored = await redisClient.hget(`bull:${QUEUE_NAME}:${jobId}`, 'returnvalue');
      expect(stored).not.toBeNull();
      expect(Buffer.byteLength(stored ?? '')).toBeLessThan(BOUND);
      const events = await redisClient.xrange(`bull:${QUEUE_NAME}:events`, '-', '+');
      const completed = events.map(([, fields]) => fields).filter((fields) => fields.includes('completed') && fields[fields.indexOf('jobId') + 1] === jobId);
      expect(completed).toHaveLength(1);
      const entryBytes = (completed[0] ?? []).reduce((n, field) => n + Buffer.byteLength(field), 0);
      expect(entryBytes).toBeLessThan(BOUND + 256);
    } finally {
      redisClient.disconnect();
    }
  });
});
