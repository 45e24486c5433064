/**
 * The CLI contract for bad input, as real subprocesses of the built CLI (one real redis-server):
 * usage errors exit 2 on every command; with --json stdout holds exactly one JSON document for
 * every outcome (an ok:false Result for dry-run and enqueue, {"error": …} elsewhere); flags and
 * variables out of range are refused naming themselves; Redis URLs never leak a password.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import { CLI_PATH, runCli, type CliResult } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'svcnode-cli-contract-'));
  writeFileSync(join(dir, 'array.json'), '[1, 2]');
  writeFileSync(join(dir, 'bom.json'), '\uFEFF{"accountId": "42"}');
  writeFileSync(join(dir, 'node.json'), JSON.stringify({ id: 'get-account', request: { method: 'GET', url: 'https://127.0.0.1:9/x' } }));
});
afterAll(async () => {
  await redis?.close();
});

/** stdout parsed as exactly one JSON document (JSON.parse refuses two, or trailing text). */
function onlyDocument(out: CliResult): Record<string, unknown> {
  expect(out.stdout.trim(), `stderr: ${out.stderr}`).not.toBe('');
  return JSON.parse(out.stdout) as Record<string, unknown>;
}

/** An ok:false Result whose failure is invalid_input with this code. */
function expectInputResult(out: CliResult, nodeId: string, code: string): Result {
  expect(out.code, out.stderr).toBe(2);
  const result = onlyDocument(out) as unknown as Result;
  expect(result).toMatchObject({ ok: false, nodeId, tls: null, response: null, failure: { phase: 'input', category: 'invalid_input', code } });
  expect(result.failure?.hint).toBeTruthy();
  return result;
}

/** `{"error": {code, message, hint}}` and exit 2. */
function expectErrorDocument(out: CliResult, code: string): { code: string; message: string; hint: string } {
  expect(out.code, out.stderr).toBe(2);
  const doc = onlyDocument(out) as { error: { code: string; message: string; hint: string } };
  expect(doc.error).toMatchObject({ code });
  expect(doc.error.message).toBeTruthy();
  expect(doc.error.hint).toBeTruthy();
  expect(Object.keys(doc)).toEqual(['error']);
  return doc.error;
}

describe.concurrent('dry-run usage errors exit 2, like every other command', () => {
  for (const args of [['dry-run'], ['dry-run', 'a.json', 'b.json'], ['dry-run', 'x.json', '--context'], ['dry-run', 'x.json', '--bogus']]) {
    it(`svcnode ${args.join(' ')}`, async () => {
      const out = await runCli(args);
      expect(out.code, out.stderr).toBe(2);
      expect(out.stdout).toBe('');
      expect(out.stderr).toMatch(/error: /);
    });
  }

  it('with --json: one invalid_input Result naming the node of the file', async () => {
    const out = await runCli(['dry-run', join(dir, 'node.json'), '--json', '--bogus']);
    const result = expectInputResult(out, 'get-account', 'SVCNODE_USAGE');
    expect(result.failure?.message).toContain('--bogus');
    expectInputResult(await runCli(['dry-run', '--json']), '', 'SVCNODE_USAGE');
    expectInputResult(await runCli(['dry-run', join(dir, 'node.json'), '--json', '--context']), 'get-account', 'SVCNODE_USAGE');
  });
});

describe.concurrent('--json prints one document for every outcome', () => {
  it('enqueue: a context that is not an object, or missing, is an invalid_input Result (exit 2)', async () => {
    const array = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--context', join(dir, 'array.json'), '--json']);
    expect(expectInputResult(array, 'get-account', 'SVCNODE_INVALID_DEFINITION').failure?.message).toContain('array.json');
    const missing = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--context', join(dir, 'missing.json'), '--json', '--request-id', 'r-1']);
    expect(expectInputResult(missing, 'get-account', 'SVCNODE_FILE_NOT_FOUND').requestId).toBe('r-1');
  });

  it('enqueue: no node id is a usage error Result', async () => {
    const result = expectInputResult(await runCli(['enqueue', '--json']), '', 'SVCNODE_USAGE');
    expect(result.failure?.message).toContain('nodeId');
  });

  it('enqueue --wait: no Result in time is a timeout Result (exit 5)', async () => {
    const out = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--wait', '--timeout-ms', '300', '--json']);
    expect(out.code, out.stderr).toBe(5);
    const result = onlyDocument(out) as unknown as Result;
    expect(result).toMatchObject({ ok: false, nodeId: 'get-account', failure: { category: 'timeout', code: 'SVCNODE_TIMEOUT' } });
  });

  it('enqueue --wait: the timeout says when no worker serves the queue (a prefix no worker uses), and not when one does', async () => {
    // Before: "the job stays queued and will still run", which it never would on a prefix no worker serves.
    const none = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--prefix', 'other', '--wait', '--timeout-ms', '300', '--json']);
    expect(none.code, none.stderr).toBe(5);
    const lonely = (onlyDocument(none) as unknown as Result).failure;
    expect(lonely?.message).toContain('no worker is connected to this queue (prefix "other") on this Redis');
    expect(lonely?.hint).toContain('--prefix other');
    expect(none.stderr).toContain('hint: start a worker with the same Redis URL and prefix');
    // A (busy) worker on the queue: the job will run, and the message says so.
    const busy = new Worker('service-node-invocations', () => new Promise(() => undefined), { connection: { host: redis.host, port: redis.port }, prefix: 'busy', autorun: false });
    try {
      await busy.waitUntilReady();
      const served = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--prefix', 'busy', '--wait', '--timeout-ms', '300', '--json']);
      expect(served.code, served.stderr).toBe(5);
      const failure = (onlyDocument(served) as unknown as Result).failure;
      expect(failure?.message).toContain('the job stays queued and will still run');
      expect(failure?.hint).toContain('wait longer (--timeout-ms)');
    } finally {
      await busy.close(true);
    }
  });

  it('failures: an id no node can have is invalid input (exit 2) before Redis is asked; before, an empty answer (exit 0)', async () => {
    for (const id of ['../x', '*', 'a'.repeat(300)]) {
      const doc = expectErrorDocument(await runCli(['failures', id, '--redis', 'redis://127.0.0.1:1', '--json']), 'SVCNODE_INVALID_DEFINITION');
      expect(doc.message).toMatch(/ is not a node id: an id is 1 to 128 letters/);
    }
  });

  it('failures: too many arguments', async () => {
    expect(expectErrorDocument(await runCli(['failures', 'a', 'b', '--json']), 'SVCNODE_USAGE').hint).toContain('svcnode failures --help');
  });

  it('an unknown command or subcommand with --json answers in JSON too (nothing on stdout without --json)', async () => {
    expect(expectErrorDocument(await runCli(['frobnicate', '--json']), 'SVCNODE_USAGE')).toMatchObject({ message: "unknown command 'frobnicate'", hint: 'run svcnode --help for usage' });
    expect(expectErrorDocument(await runCli(['certs', 'frob', '--json']), 'SVCNODE_USAGE').hint).toBe('run svcnode certs --help for usage');
    expect(expectErrorDocument(await runCli(['worker', '--json']), 'SVCNODE_USAGE').message).toBe("unknown option '--json'");
    const plain = await runCli(['frobnicate']);
    expect([plain.code, plain.stdout]).toEqual([2, '']);
    expect(plain.stderr).toContain("unknown command 'frobnicate'");
  });

  it('enqueue: a context nested too deep for BullMQ to store is invalid input (exit 2), not a stack overflow (exit 1)', async () => {
    writeFileSync(join(dir, 'deep.json'), `{"list": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const out = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--context', join(dir, 'deep.json'), '--json']);
    expect(expectInputResult(out, 'get-account', 'SVCNODE_INVALID_DEFINITION').failure?.message).toContain('nests deeper than 64 levels');
  });

  it('dry-run: a context nested deeper than a job may be is refused as enqueue refuses it (before, it ran: not the worker path)', async () => {
    writeFileSync(join(dir, 'deep-100.json'), `{"a": ${'{"a": '.repeat(99)}1${'}'.repeat(100)}`);
    writeFileSync(join(dir, 'deep-node.json'), JSON.stringify({ id: 'get-account', request: { method: 'GET', url: 'https://127.0.0.1:9/x/{{context.a.a}}' }, tls: { profile: 'bank' } }));
    const out = await runCli(['dry-run', join(dir, 'deep-node.json'), '--context', join(dir, 'deep-100.json'), '--json']);
    expect(expectInputResult(out, 'get-account', 'SVCNODE_INVALID_DEFINITION').failure).toMatchObject({ message: expect.stringMatching(/deep-100\.json: the context nests deeper than 64 levels \(at \/context(\/a){64}\)/) as string, phase: 'input' });
  });

  it('dry-run: a clientSecret beside tls_client_auth is invalid_input (exit 2) naming the field and the fix (before, "/auth: must NOT be valid")', async () => {
    const auth = { type: 'oauth2-client-credentials', tokenUrl: 'https://127.0.0.1:9/token', clientId: 'bot', clientAuth: 'tls_client_auth', clientSecret: { env: 'BANK_CLIENT_SECRET' } };
    writeFileSync(join(dir, 'secret-tls.json'), JSON.stringify({ id: 'secret-tls', request: { method: 'GET', url: 'https://127.0.0.1:9/x' }, tls: { profile: 'bank' }, auth }));
    const failure = expectInputResult(await runCli(['dry-run', join(dir, 'secret-tls.json'), '--json']), 'secret-tls', 'SVCNODE_INVALID_DEFINITION').failure;
    expect(failure?.message).toContain('/auth/clientSecret: tls_client_auth authenticates with the client certificate; remove clientSecret or use clientAuth client_secret_basic');
    expect(failure?.message).not.toContain('must NOT be valid');
    expect(failure?.message).not.toContain('one allowed form');
  });

  it('certs status: a profiles directory that does not exist', async () => {
    expectErrorDocument(await runCli(['certs', 'status', '--profiles', join(dir, 'nonexist'), '--json']), 'SVCNODE_FILE_NOT_FOUND');
  });

  it('certs import: a payload that is no bundle', async () => {
    const out = await runCli(['certs', 'import', '--name', 'x', '--profiles', join(dir, 'profiles'), '--json'], { input: 'garbage\n' });
    expectErrorDocument(out, 'SVCNODE_INVALID_BUNDLE');
  });

});

describe.concurrent('Redis URL passwords with unencoded @ or % are refused without a trace of them', () => {
  const port = (): number => redis.port;
  const atUrl = (): string => `redis://app:Tr0ub4dor@Horse99@127.0.0.1:${port()}`;
  const pctUrl = (): string => `redis://app:50%off@127.0.0.1:${port()}`;

  const expectRefused = (out: CliResult, secretParts: string[], encoded: string): void => {
    expect(out.code, out.stderr).toBe(2);
    for (const part of secretParts) expect(out.stdout + out.stderr).not.toContain(part);
    expect(out.stderr).toContain(`redis://***@127.0.0.1:${port()}`);
    expect(out.stderr).toContain(encoded);
    expect(out.stderr).toMatch(/SVCNODE_USAGE/);
  };

  it('failures --redis with an @ in the password (and --json)', async () => {
    expectRefused(await runCli(['failures', '--redis', atUrl()]), ['Tr0ub4dor', 'Horse99'], '%40');
    const json = await runCli(['failures', '--redis', atUrl(), '--json']);
    expectRefused(json, ['Tr0ub4dor', 'Horse99'], '%40');
    expect(expectErrorDocument(json, 'SVCNODE_USAGE').message).toContain('"@"');
  });

  it('enqueue and worker (REDIS_URL) with a % in the password', async () => {
    expectRefused(await runCli(['enqueue', 'get-account', '--redis', pctUrl()]), ['50%off'], '%25');
    const worker = await runCli(['worker', '--nodes', dir, '--profiles', dir], { env: { REDIS_URL: pctUrl() }, timeoutMs: 15_000 });
    expectRefused(worker, ['50%off'], '%25');
  });

  it('worker with an @ in the password logs nothing of it', async () => {
    expectRefused(await runCli(['worker', '--nodes', dir, '--profiles', dir, '--redis', atUrl()], { timeoutMs: 15_000 }), ['Tr0ub4dor', 'Horse99'], '%40');
  });
});

describe.concurrent('numbers and settings out of range exit 2 naming the flag or variable', () => {
  const worker = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    runCli(['worker', '--nodes', dir, '--profiles', dir, '--redis', redis.url, ...args], { env, timeoutMs: 15_000 });

  for (const [flag, value] of [
    ['--metrics-port', '70000'],
    ['--metrics-port', '1e9'],
    ['--concurrency', '0'],
    ['--lock-duration-ms', '0'],
    ['--stalled-interval-ms', '0'],
  ] as const) {
    it(`worker ${flag} ${value}`, async () => {
      const out = await worker([flag, value]);
      expect(out.code, out.stderr).toBe(2);
      expect(out.stderr).toContain(`${flag} must be a whole number from`);
    });
  }

  it('worker --metrics-host / SVCNODE_METRICS_HOST that does not resolve', async () => {
    const flag = await worker(['--metrics-host', 'no.such.host.invalid']);
    expect(flag.code, flag.stderr).toBe(2);
    expect(flag.stderr).toContain('--metrics-host "no.such.host.invalid"');
    const env = await worker([], { SVCNODE_METRICS_HOST: 'no.such.host.invalid' });
    expect(env.code, env.stderr).toBe(2);
    expect(env.stderr).toContain('SVCNODE_METRICS_HOST "no.such.host.invalid"');
  });

  it('worker with SVCNODE_LOG_LEVEL=bogus', async () => {
    const out = await worker([], { SVCNODE_LOG_LEVEL: 'bogus' });
    expect(out.code, out.stderr).toBe(2);
    expect(out.stderr).toContain('SVCNODE_LOG_LEVEL "bogus"');
    expect(out.stderr).toContain('info');
  });

  for (const value of ['0', '3000000000']) {
    it(`enqueue --wait --timeout-ms ${value}`, async () => {
      const out = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--wait', '--timeout-ms', value, '--json'], { timeoutMs: 10_000 });
      expect(out.timedOut).toBe(false);
      expect(out.code, out.stderr).toBe(2);
      expect(out.stderr).toContain('--timeout-ms must be a whole number from 1 to 2147483647');
      expect(expectInputResult(out, 'get-account', 'SVCNODE_USAGE').failure?.message).toContain('--timeout-ms');
    });
  }
});

describe('Redis data and files from other tools', () => {
  it('failures: an index key of the wrong type is shown as broken, naming the key (exit 0)', async () => {
    const r = new Redis(redis.url);
    try {
      await r.set('svcnode:failures:nodes', 'notaset');
      const text = await runCli(['failures', '--redis', redis.url]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain('broken record');
      expect(text.stdout).toContain('"svcnode:failures:nodes"');
      const json = await runCli(['failures', '--redis', redis.url, '--json']);
      expect(json.code, json.stderr).toBe(0);
      expect(onlyDocument(json)).toMatchObject({ nodes: [], broken: { key: 'svcnode:failures:nodes', code: 'SVCNODE_BROKEN_RECORD' } });
    } finally {
      await r.del('svcnode:failures:nodes');
      r.disconnect();
    }
  });

  it('a context file with a UTF-8 byte-order mark is read', async () => {
    const out = await runCli(['enqueue', 'get-account', '--redis', redis.url, '--context', join(dir, 'bom.json'), '--json']);
    expect(out.code, out.stderr).toBe(0);
    const { jobId } = onlyDocument(out) as { jobId: string };
    const r = new Redis(redis.url);
    try {
      const data = JSON.parse((await r.hget(`bull:service-node-invocations:${jobId}`, 'data')) ?? '{}') as { context?: unknown };
      expect(data.context).toEqual({ accountId: '42' });
    } finally {
      r.disconnect();
    }
  });
});

it('a reader that closes the pipe early (`svcnode dry-run --help | head -1`) ends the output quietly, exit 0, no stack trace', async () => {
  const child = spawn(process.execPath, [CLI_PATH, 'dry-run', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the CLI writes (it starts in ~100 ms): its first write gets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(stderr).not.toContain('EPIPE');
  expect(code).toBe(0);
});
