/**
 * A node definition or profile that nests thousands of levels (a 10 KB file) overflowed the stack
 * while it was validated: every worker exited 1 at start, the other nodes unserved, and dry-run
 * printed SVCNODE_INTERNAL_ERROR (exit 1). Such a file is now refused at load, naming where it
 * nests too deep, like any bad file. Real worker process, real Redis and mTLS backend, real CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { loadNodeFile } from '../../src/definitions/nodes.js';
const MAX_DOCUMENT_DEPTH = 64;
import type { Result } from '../../src/invoke/result.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { runCli } from '../helpers/cli.js';
import { createQueueFixtures, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

/** A node file whose request body nests `levels` arrays inside the body (the document adds 2 levels above it). */
function deepNode(id: string, url: string, levels: number): string {
  return `{"id": "${id}", "request": {"method": "POST", "url": "${url}", "body": ${'['.repeat(levels)}1${']'.repeat(levels)}}, "tls": {"profile": "bank"}}`;
}

describe('deeply nested definitions and profiles', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let worker: WorkerProcess | undefined;
  let url: string;

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startBackend(pki);
    url = `https://localhost:${backend.port}/ok`;
    f = await createQueueFixtures(pki, [nodeDef('echo', url)]);
  });

  afterAll(async () => {
    await worker?.proc.stop('SIGTERM');
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it(`a definition of ${MAX_DOCUMENT_DEPTH} levels loads; one more is refused naming the file and the JSON pointer`, () => {
    const ok = f.writeNodeFile('edge.json', deepNode('edge', url, MAX_DOCUMENT_DEPTH - 2));
    expect(loadNodeFile(ok).id).toBe('edge');
    const deep = f.writeNodeFile('edge.json', deepNode('edge', url, MAX_DOCUMENT_DEPTH - 1));
    let error: unknown;
    try {
      loadNodeFile(deep);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_DEFINITION', file: deep, field: `/request/body${'/0'.repeat(MAX_DOCUMENT_DEPTH - 2)}` });
    expect((error as Error).message).toContain(`${deep}: the node definition nests deeper than ${MAX_DOCUMENT_DEPTH} levels (at /request/body/0/`);
  });

  it('dry-run of a 5,000-level definition prints an invalid_input Result and exits 2 (before: SVCNODE_INTERNAL_ERROR, exit 1)', async () => {
    const file = f.writeNodeFile('edge.json', deepNode('deep5k', url, 5_000));
    const r = await runCli(['dry-run', file, '--profiles', f.profilesDir, '--json'], { env: f.env, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(2);
    const result = JSON.parse(r.stdout) as Result;
    expect(result.ok).toBe(false);
    expect(result.failure).toMatchObject({ phase: 'input', category: 'invalid_input', code: 'SVCNODE_INVALID_DEFINITION' });
    expect(result.failure?.message).toContain(`nests deeper than ${MAX_DOCUMENT_DEPTH} levels`);
  }, 40_000);

  it('a worker starting with a 5,000-level node file and profile serves the other nodes, /healthz degraded naming both (before: exit 1 at start)', async () => {
    const node = f.writeNodeFile('edge.json', deepNode('deep5k', url, 5_000));
    const profile = f.writeProfile('deep', `{"trust": {"systemRoots": true}, "policy": ${'{"x": '.repeat(5_000)}1${'}'.repeat(5_000)}}`);
    worker = await spawnWorker(f, redis.url);
    const health = (await (await fetch(`http://127.0.0.1:${worker.metricsPort}/healthz`)).json()) as { status: string; problems: { kind: string; file: string; code: string }[] };
    expect(health.status).toBe('degraded');
    expect(health.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'node', file: node, code: 'SVCNODE_INVALID_DEFINITION' }),
        expect.objectContaining({ kind: 'profile', file: profile, code: 'SVCNODE_INVALID_PROFILE' }),
      ]),
    );
    expect(worker.logs()).toContainEqual(expect.objectContaining({ file: node, code: 'SVCNODE_INVALID_DEFINITION', msg: expect.stringContaining('nests deeper than') as unknown }));
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    try {
      const result = await client.invoke('echo', {}, { timeoutMs: 20_000 });
      expect(result.ok, JSON.stringify(result.failure)).toBe(true);
      expect((await client.invoke('deep5k', {}, { timeoutMs: 20_000 })).failure?.code).toBe('SVCNODE_UNKNOWN_NODE');
    } finally {
      await client.close();
    }
  }, 60_000);
});
