import { Job, type Queue } from 'bullmq';
import { expect } from 'vitest';
import type { Result } from '../../src/invoke/result.js';
import type { QueueFixtures, WorkerProcess } from './fixtures.js';
import { createQueueFixtures, nodeDef, startBackend } from './fixtures.js';
import { createTestPki, type TestPki } from './pki.js';
import type { MtlsServer } from './servers.js';

/** What start() resolves to; `store` is the Redis, Cluster or Sentinel group it was given. */
export interface SlowNodeSetup<S> {
  pki: TestPki;
  store: S;
  backend: MtlsServer;
  f: QueueFixtures;
}

export interface SlowNodeRun<S> {
  /** Worker processes that close() SIGKILLs first. */
  readonly workers: WorkerProcess[];
  /** A test PKI and `store` together, then a backend answering after `delayMs` and queue fixtures with node `slow` calling /work/{{context.i}}. */
  start(store: Promise<S>, delayMs: number): Promise<SlowNodeSetup<S>>;
  /** SIGKILLs the workers, runs `first` in order (the test's producers), then closes backend, store, fixtures and PKI. */
  close(...first: Array<() => unknown>): Promise<void>;
}

/**
 * Worker-process tests over a store that fails (a Redis restart, a Cluster or Sentinel failover):
 * the set-up they share and a teardown that also undoes a half-done start().
 */
export function slowNodeRun<S extends { close(): Promise<void> }>(): SlowNodeRun<S> {
  let pki: TestPki | undefined;
  let store: S | undefined;
  let backend: MtlsServer | undefined;
  let f: QueueFixtures | undefined;
  const workers: WorkerProcess[] = [];
  return {
    workers,
    async start(storeStarting, delayMs) {
      [pki, store] = await Promise.all([createTestPki(), storeStarting]);
      backend = await startBackend(pki, { delayMs });
      f = await createQueueFixtures(pki, [nodeDef('slow', `https://localhost:${backend.port}/work/{{context.i}}`)]);
      return { pki, store, backend, f };
    },
    async close(...first) {
      await Promise.all(workers.map((w) => w.proc.stop('SIGKILL')));
      for (const c of first) await c();
      await backend?.close();
      await store?.close();
      await f?.cleanup();
      await pki?.cleanup();
    },
  };
}

/** Expects every job's Result to be ok; returns the longest gap (ms) between consecutive finish times. */
export async function longestFinishGap(queue: Queue, jobs: Job[]): Promise<number> {
  const finished: number[] = [];
  for (const j of jobs) {
    const job = await Job.fromId(queue, j.id as string);
    expect((job?.returnvalue as Result).ok).toBe(true);
    finished.push(job?.finishedOn ?? 0);
  }
  finished.sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < finished.length; i++) gap = Math.max(gap, (finished[i] ?? 0) - (finished[i - 1] ?? 0));
  return gap;
}
