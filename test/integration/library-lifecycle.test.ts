/**
 * The library as a platform embeds it: ServiceNodeClient and startWorker on a real Redis, misused
 * the way real callers do. Whether something is left holding the process is measured the only way
 * that counts: a script that uses the built package in a child process must exit by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { QUEUE_NAME } from '../../src/queue/constants.js';
import { startWorker } from '../../src/queue/worker.js';
import { REPO_ROOT } from '../helpers/cli.js';
import { LOOPBACK, listen } from '../helpers/net.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const INDEX = join(REPO_ROOT, 'dist', 'src', 'index.js');

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Run an ES module body with `svcnode` bound to the built package; `input` lines are written to its
 * stdin when `when(stdout)` says so. Killed (code null) if it has not exited after `limitMs`.
 */
function runScript(body: string, o: { env?: NodeJS.ProcessEnv; limitMs?: number; onOutput?: (stdout: string, stdin: NodeJS.WritableStream) => void } = {}): Promise<ScriptRun> {
  const source = `import * as svcnode from ${JSON.stringify(INDEX)};\n${body}`;
  const started = Date.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], { env: { ...process.env, SVCNODE_LOG_LEVEL: 'silent', ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    o.onOutput?.(stdout, child.stdin);
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.limitMs ?? 15_000);
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const codeOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'resolved',
    (error: { code?: string; message?: string }) => error.code ?? `uncoded: ${error.message}`,
  );

describe('ServiceNodeClient and startWorker on a real Redis', () => {
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await startRedis();
  }, 30_000);

  afterAll(async () => {
    await redis?.close();
  });

  it('close() ends a pending wait at once with SVCNODE_CLIENT_CLOSED, refuses later calls, and the process exits by itself', async () => {
    const run = await runScript(
      `const client = new svcnode.ServiceNodeClient({ redisUrl: ${JSON.stringify(redis.url)} });
       const t0 = Date.now();
       const waiting = client.invoke('nobody-runs-this', {}, { timeoutMs: 120000 }).then(() => 'resolved', (e) => e.code + ' ' + e.message);
       setTimeout(async () => {
         await client.close();
         console.log('WAIT', await waiting, Date.now() - t0);
         console.log('AFTER', await client.enqueue('x', {}).then(() => 'resolved', (e) => e.code));
         console.log('AGAIN', await client.close().then(() => 'ok'));
       }, 500);`,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^WAIT SVCNODE_CLIENT_CLOSED the client was closed while waiting for the Result of job \S+; the job stays queued and will still run/m);
    expect(Number(/^WAIT .* (\d+)$/m.exec(run.stdout)?.[1])).toBeLessThan(3_000);
    expect(run.stdout).toContain('AFTER SVCNODE_CLIENT_CLOSED');
    expect(run.stdout).toContain('AGAIN ok');
    // Before: the wait held the process for its whole 120 s timeout.
    expect(run.ms).toBeLessThan(10_000);
  }, 30_000);

  it('close() resolves within seconds when Redis died after a wait was opened, and the process exits', async () => {
    const dying = await startRedis();
    try {
      let sent = false;
      const run = await runScript(
        `import { createInterface } from 'node:readline';
         const client = new svcnode.ServiceNodeClient({ redisUrl: ${JSON.stringify(dying.url)}, connectTimeoutMs: 1000 });
         const waiting = client.invoke('nobody-runs-this', {}, { timeoutMs: 120000 }).catch((e) => e.code);
         setTimeout(() => console.log('WAITING'), 500);
         createInterface({ input: process.stdin }).once('line', async () => {
           const t0 = Date.now();
           await client.close();
           console.log('CLOSED', Date.now() - t0, await waiting);
           process.stdin.destroy();
         });`,
        {
          limitMs: 20_000,
          onOutput: (out, stdin) => {
            if (sent || !out.includes('WAITING')) return;
            sent = true;
            dying.kill();
            setTimeout(() => stdin.write('close\n'), 500);
          },
        },
      );
      expect(run.code).toBe(0);
      const closed = /^CLOSED (\d+) (\S+)$/m.exec(run.stdout);
      expect(closed?.[2]).toBe('SVCNODE_CLIENT_CLOSED');
      // Before: close() never resolved (Node reported an unsettled top-level await).
      expect(Number(closed?.[1])).toBeLessThan(4_000);
      // The script's own waits are 1 s and close() at most 2 s; then BullMQ's watchdog on the events
      // read (block time + 1 s) was 11 s with its default block of 10 s.
      expect(run.ms).toBeLessThan(9_000);
    } finally {
      await dying.close();
    }
  }, 40_000);

  it('a wait that outlives Redis says Redis was lost, not that the worker was slow; with Redis up it stays a timeout', async () => {
    const dying = await startRedis();
    const lost = new ServiceNodeClient({ redisUrl: dying.url, connectTimeoutMs: 1000 });
    const steady = new ServiceNodeClient({ redisUrl: redis.url, connectTimeoutMs: 1000 });
    try {
      const waiting = lost.invoke('nobody-runs-this', {}, { timeoutMs: 2500 }).then(
        () => undefined,
        (error: Error & { code?: string }) => error,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      dying.kill();
      const error = await waiting;
      expect(error?.code).toBe('SVCNODE_REDIS_UNAVAILABLE');
      expect(error?.message).toMatch(/^no Result for job \S+ within 2500 ms: Redis at redis:\/\/127\.0\.0\.1:\d+ was unreachable during the wait \(last error: .+\); unless Redis lost its data, the job stays queued/);
      // Before: SVCNODE_TIMEOUT, whose hint tells the operator to start a worker.
      expect(await codeOf(steady.invoke('nobody-runs-this', {}, { timeoutMs: 500 }))).toBe('SVCNODE_TIMEOUT');
    } finally {
      await Promise.all([lost.close(), steady.close()]);
      await dying.close();
    }
  }, 30_000);

  it('awaits many Results at once without a MaxListenersExceededWarning', async () => {
    const run = await runScript(
      `process.on('warning', (w) => console.log('WARNING', w.name));
       const client = new svcnode.ServiceNodeClient({ redisUrl: ${JSON.stringify(redis.url)} });
       const ids = await Promise.all(Array.from({ length: 25 }, (_, i) => client.enqueue('nobody-runs-this', { i })));
       const codes = await Promise.all(ids.map((id) => client.result(id, 300).then(() => 'ok', (e) => e.code)));
       console.log('CODES', [...new Set(codes)].join(','));
       await client.close();`,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('CODES SVCNODE_TIMEOUT');
    // Before: warnings from the client's close signal, BullMQ's Queue and the connection's ready wait, from the eleventh call.
    expect(run.stdout).not.toContain('WARNING');
  }, 30_000);

  it('refuses bad timeouts and contexts JSON would change, before enqueuing anything', async () => {
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    const admin = new Redis(redis.url);
    try {
      await admin.flushall();
      for (const timeoutMs of [0, Number.NaN, -5, 1.5, Number.POSITIVE_INFINITY, 3e9]) {
        expect(await codeOf(client.invoke('n', {}, { timeoutMs })), String(timeoutMs)).toBe('SVCNODE_INVALID_OPTION');
      }
      const refused = async (context: unknown): Promise<string> =>
        client.enqueue('n', context as Record<string, unknown>).then(
          () => 'resolved',
          (error: { code?: string; message: string }) => `${error.code} ${error.message}`,
        );
      expect(await refused({ amount: 10n })).toMatch(/^SVCNODE_INVALID_DEFINITION invocation: the context cannot be sent as JSON: .*BigInt/);
      expect(await refused({ items: new Map([['a', 1]]) })).toBe('SVCNODE_INVALID_DEFINITION invocation: the context key "items" is a Map, which JSON would send as {}');
      expect(await refused({ fn: () => 1 })).toBe('SVCNODE_INVALID_DEFINITION invocation: the context key "fn" is a function, which JSON would drop');
      // A Date is stored as its string: the worker would refuse it, so the client does.
      expect(await refused(new Date())).toMatch(/^SVCNODE_INVALID_DEFINITION invocation: invalid invocation:\n {2}\/context: must be object/);
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      expect(await refused(circular)).toMatch(/^SVCNODE_INVALID_DEFINITION .*(circular|nests deeper)/);
      expect(await refused({ blob: 'x'.repeat(9 * 2 ** 20) })).toMatch(/^SVCNODE_INVALID_DEFINITION invocation: the context is 9\.0 MiB as JSON, more than the 8 MiB/);
      // A nested Date is sent as its ISO string, which is what the worker sees.
      await client.enqueue('n', { when: new Date(0) });
      expect(await admin.llen(`bull:${QUEUE_NAME}:wait`)).toBe(1);
    } finally {
      await client.close();
      admin.disconnect();
    }
  }, 30_000);

  it('names a missing job and a job that failed in BullMQ, whatever its failure reason says', async () => {
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    const worker = new Worker(QUEUE_NAME, () => Promise.reject(new Error('upstream timed out')), { connection: new Redis(redis.url, { maxRetriesPerRequest: null }) });
    try {
      const missing = await client.result('no-such-job', 1000).catch((error: { code?: string; message: string }) => error);
      expect(missing).toMatchObject({ code: 'SVCNODE_JOB_NOT_FOUND' });
      const failed = await client.invoke('n', {}, { timeoutMs: 10_000 }).catch((error: { code?: string; message: string }) => error);
      // Before: a plain Error, and since the reason contains "timed out", an InvokeTimeoutError saying the job is still queued.
      expect(failed).toMatchObject({ code: 'SVCNODE_JOB_FAILED' });
      expect((failed as Error).message).toMatch(/failed in the queue without a Result: upstream timed out$/);
    } finally {
      await worker.close();
      await client.close();
    }
  }, 30_000);

  it('with its metrics port taken, and no logger given: a coded error, and nothing left holding the process', async () => {
    const taken = net.createServer();
    const port = await listen(taken, 0);
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-lib-'));
    try {
      const run = await runScript(
        `import { EventEmitter } from 'node:events';
         const tries = [];
         for (let i = 0; i < 12; i++) {
           tries.push(await svcnode.startWorker({ redisUrl: ${JSON.stringify(redis.url)}, nodesDir: ${JSON.stringify(dir)}, profilesDir: ${JSON.stringify(dir)}, metricsPort: ${port}, metricsHost: '127.0.0.1', reloadIntervalMs: 0 }).then(() => 'started', (e) => e.code));
         }
         console.log('CODES', [...new Set(tries)].join(','));`,
        { env: { NODE_OPTIONS: '--trace-warnings' } },
      );
      expect(run.stdout).toContain('CODES SVCNODE_PORT_IN_USE');
      // Before: a Redis connection per try stayed open (the script never exited), and listeners piled up.
      expect(run.stderr).not.toContain('MaxListenersExceededWarning');
      expect(run.code).toBe(0);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('Redis credentials in thrown errors', () => {
  const PASSWORD = 'Wr0ngPw-7c1e4f';
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await startRedis({ args: ['--requirepass', 'the-right-one'] });
  }, 30_000);

  afterAll(async () => {
    await redis?.close();
  });

  it('a refused password appears nowhere in the error, its cause or their inspection', async () => {
    const url = `redis://default:${PASSWORD}@${LOOPBACK}:${redis.port}`;
    const client = new ServiceNodeClient({ redisUrl: url, connectTimeoutMs: 3000 });
    const dir = mkdtempSync(join(tmpdir(), 'svcnode-lib-'));
    try {
      const fromClient = await client.enqueue('n', {}).catch((error: unknown) => error);
      expect(fromClient).toMatchObject({ code: 'SVCNODE_REDIS_AUTH' });
      const fromWorker = await startWorker({ redisUrl: url, nodesDir: dir, profilesDir: dir, reloadIntervalMs: 0, logger: (await import('pino')).pino({ level: 'silent' }) }).catch((error: unknown) => error);
      expect(fromWorker).toMatchObject({ code: 'SVCNODE_REDIS_AUTH' });
      for (const error of [fromClient, fromWorker]) {
        // Before: cause.command.args held ['default', PASSWORD] (the AUTH command ioredis sent).
        const shown = inspect(error, { depth: 20, showHidden: true });
        expect(shown).toContain('WRONGPASS');
        expect(shown).not.toContain(PASSWORD);
      }
    } finally {
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
