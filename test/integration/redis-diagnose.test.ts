/**
 * Redis that ioredis cannot get through to, for a reason only the port itself tells: over
 * maxclients (Redis says so and closes), rediss:// on a plain port (the TLS handshake never
 * completes), redis:// on a TLS port (reset). The CLI and the worker's start-up name the cause.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, type CliResult } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

let pki: TestPki;
let plain: TestRedis;
let full: TestRedis;
let tls: TestRedis;
let tlsPort: number;
const holders: Array<{ kill(): boolean }> = [];

const failures = (url: string): Promise<CliResult> => runCli(['failures', '--redis', url, '--json'], { timeoutMs: 20_000 });

function expectCode(out: CliResult, code: string): { code: string; message: string; hint: string } {
  expect(out.code, out.stderr).toBe(5);
  const error = (JSON.parse(out.stdout) as { error: { code: string; message: string; hint: string } }).error;
  expect(error.code).toBe(code);
  return error;
}

beforeAll(async () => {
  pki = await createTestPki();
  tlsPort = await freePort();
  [plain, full, tls] = await Promise.all([
    startRedis(),
    startRedis({ args: ['--maxclients', '1'] }),
    startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', pki.files.serverChain, '--tls-key-file', pki.files.serverKey, '--tls-auth-clients', 'no'] }),
  ]);
  // The only client slot of `full` is taken by a client that blocks forever.
  const holder = spawn('redis-cli', ['-p', String(full.port), 'BLPOP', 'never', '0'], { stdio: 'ignore' });
  holders.push(holder);
  await new Promise((r) => setTimeout(r, 300));
}, 60_000);

afterAll(async () => {
  for (const h of holders) h.kill();
  await Promise.all([plain?.close(), full?.close(), tls?.close()]);
  await pki?.cleanup();
});

describe('a Redis port that refuses for a reason of its own', () => {
  it('maxclients, rediss:// on a plain port and redis:// on a TLS port each get their code and fix (exit 5)', async () => {
    const [maxed, tlsOnPlain, plainOnTls, untrusted, down] = await Promise.all([
      failures(full.url),
      failures(`rediss://127.0.0.1:${plain.port}`),
      failures(`redis://127.0.0.1:${tlsPort}`),
      failures(`rediss://127.0.0.1:${tlsPort}`),
      failures(`redis://127.0.0.1:${await freePort()}`),
    ]);
    expect(expectCode(maxed, 'SVCNODE_REDIS_MAXCLIENTS').hint).toContain('maxclients');
    expect(expectCode(tlsOnPlain, 'SVCNODE_REDIS_TLS_MISMATCH').hint).toContain('redis://');
    expect(expectCode(plainOnTls, 'SVCNODE_REDIS_TLS_MISMATCH').hint).toContain('rediss://');
    // Controls: the right scheme with a CA this machine does not trust is not called a mismatch,
    // and nothing listening is still "cannot reach", with the refused connection named.
    expect(expectCode(untrusted, 'SVCNODE_REDIS_UNAVAILABLE').message).toMatch(/certificate/);
    expect(expectCode(down, 'SVCNODE_REDIS_UNAVAILABLE').message).toContain('ECONNREFUSED');
  }, 30_000);

  it('the worker, waiting for Redis at start, logs the cause with its code and hint', async () => {
    const worker = spawnCli(['worker', '--redis', `redis://127.0.0.1:${tlsPort}`, '--nodes', pki.dir, '--profiles', pki.profilesDir, '--metrics-port', '0'], { timeoutMs: 30_000 });
    try {
      const line = await worker.waitForLine(/Redis not reachable/, { stream: 'stderr', timeoutMs: 15_000 });
      expect(JSON.parse(line)).toMatchObject({ code: 'SVCNODE_REDIS_TLS_MISMATCH', hint: expect.stringContaining('rediss://') as unknown });
    } finally {
      expect(await worker.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null });
    }
  }, 30_000);
});
