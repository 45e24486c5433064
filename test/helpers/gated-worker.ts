import { afterAll, beforeAll } from 'vitest';
import { ServiceNodeClient } from '../../src/queue/client.js';
import type { RunningWorker, WorkerOptions } from '../../src/queue/worker.js';
import { createQueueFixtures, nodeDef, startGatedBackend, startLoggedWorker, type GatedBackend, type QueueFixtures } from './fixtures.js';
import { hookValue } from './hook-value.js';
import { createTestPki, type TestPki } from './pki.js';

/** What useGatedWorker set up; each field throws when read before beforeAll ran (or when it failed). */
export interface GatedWorker<S> {
  readonly pki: TestPki;
  /** The Redis (or cluster) the worker and client use. */
  readonly store: S;
  readonly backend: GatedBackend;
  readonly f: QueueFixtures;
  readonly worker: RunningWorker;
  readonly client: ServiceNodeClient;
  /** The worker's log lines, info and up, in order. */
  readonly logs: Record<string, unknown>[];
}

/**
 * Registers beforeAll/afterAll for tests that act on Redis while calls are in flight: a test PKI,
 * `store` (a Redis or cluster, started by `startStore`), a gated backend with one node `gated` at
 * `path`, an in-process worker logging into `logs` and a ServiceNodeClient, all on `store.url`.
 */
export function useGatedWorker<S extends { url: string; close(): Promise<void> }>(startStore: () => Promise<S>, path: string, extra: Partial<WorkerOptions> = {}, timeoutMs = 60_000): GatedWorker<S> {
  const logs: Record<string, unknown>[] = [];
  let pki: TestPki | undefined;
  let store: S | undefined;
  let backend: GatedBackend | undefined;
  let f: QueueFixtures | undefined;
  let worker: RunningWorker | undefined;
  let client: ServiceNodeClient | undefined;
  beforeAll(async () => {
    [pki, store] = await Promise.all([createTestPki(), startStore()]);
    backend = await startGatedBackend(pki);
    f = await createQueueFixtures(pki, [nodeDef('gated', `https://localhost:${backend.server.port}${path}`)]);
    worker = await startLoggedWorker(f, store.url, logs, extra);
    client = new ServiceNodeClient({ redisUrl: store.url });
  }, timeoutMs);
  afterAll(async () => {
    await client?.close();
    await worker?.close(2_000);
    await backend?.server.close();
    await store?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });
  const what = 'gated worker';
  return {
    logs,
    get pki() {
      return hookValue(pki, what);
    },
    get store() {
      return hookValue(store, what);
    },
    get backend() {
      return hookValue(backend, what);
    },
    get f() {
      return hookValue(f, what);
    },
    get worker() {
      return hookValue(worker, what);
    },
    get client() {
      return hookValue(client, what);
    },
  };
}
