/**
 * OAuth 2.0 nodes through the real `svcnode worker` and `svcnode dry-run` processes: 64
 * concurrent jobs share one token request, and a sweep of Redis, the worker log, the Results and
 * the dry-run output finds no access token, client secret or client assertion.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, dumpRedis, spawnWorker, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { createOAuth2Fixture, SECRET_ENV, type OAuth2Fixture } from '../helpers/oauth2-fixture.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';

describe('OAuth 2.0 nodes in the worker and the dry-run', () => {
  let f: OAuth2Fixture;
  let q: QueueFixtures;
  let redis: TestRedis;
  let queue: Queue;
  let worker: WorkerProcess | undefined;
  const outputs: string[] = [];
  const secrets = (): string[] => [...f.as.secretsSeen, f.secret];

  beforeAll(async () => {
    [f, redis] = await Promise.all([createOAuth2Fixture(), startRedis()]);
    q = await createQueueFixtures(f.pki, [
      f.node(),
      f.node({ clientId: 'bot-jwt', clientAuth: 'private_key_jwt' }, 'bank', { id: 'accounts-jwt' }),
      f.node({ clientId: 'bot-post', clientAuth: 'client_secret_post', clientSecret: { env: SECRET_ENV } }, 'bank', { id: 'accounts-secret' }),
    ]);
    q.env[SECRET_ENV] = f.secret;
    queue = new Queue('service-node-invocations', { connection: { host: redis.host, port: redis.port } });
  });

  afterAll(async () => {
    await worker?.proc.stop('SIGKILL');
    await queue?.close();
    await Promise.all([f?.cleanup(), q?.cleanup(), redis?.close()]);
  });

  it('64 concurrent jobs: exactly one token request; Redis, log and Results hold no token or secret', async () => {
    worker = await spawnWorker(q, redis.url, { concurrency: 64 });
    const jobs = await queue.addBulk([
      ...Array.from({ length: 64 }, () => ({ name: 'invoke', data: { nodeId: 'accounts', context: {} } })),
      ...['accounts-jwt', 'accounts-secret'].map((nodeId) => ({ name: 'invoke', data: { nodeId, context: {} } })),
    ]);
    await waitFor(async () => (await queue.getJobCounts('completed')).completed === jobs.length, 30_000, 50, 'all jobs completed');
    const results = await Promise.all(jobs.map(async (j) => (await Job.fromId(queue, j.id as string))?.returnvalue as Result));
    expect(results.map((r) => r.failure?.code ?? 'ok')).toEqual(results.map(() => 'ok'));
    expect(f.as.tokenRequests.filter((r) => r.clientId === 'bot-tls')).toHaveLength(1);
    expect(f.as.tokenRequests).toHaveLength(3);
    expect(results[0]?.auth).toMatchObject({ clientAuth: 'tls_client_auth', binding: 'checked', token: '[redacted]' });
    // Tokens and the assertion went through the front: the sweep below has something to find.
    expect(f.as.secretsSeen.length).toBeGreaterThanOrEqual(4);

    assertNoSecrets((await dumpRedis(redis.url)).text, secrets(), 'Redis dump');
    assertNoSecrets(JSON.stringify(results), secrets(), 'Results');
    assertNoSecrets(worker.proc.lines.map((l) => l.text).join('\n'), secrets(), 'worker output');
  });

  it('two worker processes, 64 jobs: still exactly one token request (the fetch is locked in Redis)', async () => {
    await worker?.proc.stop('SIGKILL');
    const admin = new Redis(redis.url);
    await admin.flushall();
    admin.disconnect();
    f.as.tokenRequests.length = 0;
    const workers = await Promise.all([spawnWorker(q, redis.url, { concurrency: 32 }), spawnWorker(q, redis.url, { concurrency: 32 })]);
    try {
      const jobs = await queue.addBulk(Array.from({ length: 64 }, () => ({ name: 'invoke', data: { nodeId: 'accounts', context: {} } })));
      await waitFor(async () => (await queue.getJobCounts('completed')).completed === jobs.length, 30_000, 50, 'all jobs completed');
      const results = await Promise.all(jobs.map(async (j) => (await Job.fromId(queue, j.id as string))?.returnvalue as Result));
      expect(results.every((r) => r.ok)).toBe(true);
      // Without the lock each process makes its own request (two here): both take jobs at once.
      expect(f.as.tokenRequests).toHaveLength(1);
    } finally {
      await Promise.all(workers.map((w) => w.proc.stop('SIGKILL')));
    }
  });

  it('dry-run shows the token step (endpoint, method, status, expires_in, binding) with the token redacted', async () => {
    const file = join(q.dir, 'dry-accounts.json');
    writeFileSync(file, JSON.stringify(f.node({ clientId: 'bot-post', clientAuth: 'client_secret_post', clientSecret: { env: SECRET_ENV } })));
    const text = await runCli(['dry-run', file, '--profiles', q.profilesDir], { env: q.env });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`token       POST ${f.as.mtlsTokenUrl} (client_secret_post; auth.tokenUrl)`);
    expect(text.stdout).toMatch(/HTTP 200, expires_in 300 s, cnf\.x5t#S256 checked: bound to our certificate, token \[redacted\]/);
    const json = await runCli(['dry-run', file, '--profiles', q.profilesDir, '--json'], { env: q.env });
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as Result).auth).toMatchObject({ tokenEndpoint: f.as.mtlsTokenUrl, clientAuth: 'client_secret_post', status: 200, expiresIn: 300, binding: 'checked', token: '[redacted]' });
    outputs.push(text.stdout, text.stderr, json.stdout, json.stderr);
    assertNoSecrets(outputs.join('\n'), secrets(), 'dry-run output');
  });
});
