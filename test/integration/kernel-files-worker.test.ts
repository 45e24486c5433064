/**
 * A kernel pseudo-file or a FIFO in the nodes directory of a worker process. /proc/kmsg stats as
 * a regular file of size 0 and its read blocks until the kernel logs something: a fresh worker
 * hung at start (no /healthz, SIGTERM ignored), and a running one's node watcher stalled for good
 * (files added later never loaded) and the process did not exit after "shutdown complete". Now
 * such files are refused with their kind, the other nodes load and serve, and the worker stops on
 * SIGTERM. Real `svcnode worker` processes (killed if they hang), real Redis and mTLS backend.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { createQueueFixtures, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import type { MtlsServer } from '../helpers/servers.js';

interface Health {
  status: string;
  problems: { kind: string; file: string; code: string; message: string }[];
}

/** A pseudo-file whose read blocks (the probe's), else one that reads on and on. */
const KERNEL_FILE = existsSync('/proc/kmsg') ? '/proc/kmsg' : '/proc/self/pagemap';

describe.runIf(process.platform === 'linux')('kernel pseudo-files and FIFOs in the nodes directory of a worker process', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let backend: MtlsServer;
  let f: QueueFixtures;
  let client: ServiceNodeClient;
  let worker: WorkerProcess | undefined;
  const fifos: string[] = [];

  const health = async (w: WorkerProcess): Promise<Health> => (await (await fetch(`http://127.0.0.1:${w.metricsPort}/healthz`)).json()) as Health;

  beforeAll(async () => {
    [pki, redis] = await Promise.all([createTestPki(), startRedis()]);
    backend = await startBackend(pki);
    f = await createQueueFixtures(pki, [nodeDef('echo', `https://localhost:${backend.port}/echo`)]);
    client = new ServiceNodeClient({ redisUrl: redis.url });
  });

  afterEach(async () => {
    await worker?.proc.stop('SIGKILL');
    worker = undefined;
  });

  afterAll(async () => {
    // A regression leaves a reader blocked on a FIFO: release it.
    for (const path of fifos) {
      try {
        closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // Nobody waiting.
      }
    }
    await client?.close();
    await backend?.close();
    await redis?.close();
    await f?.cleanup();
    await pki?.cleanup();
  });

  it(`a fresh worker with ${KERNEL_FILE} and a FIFO among its node files starts, serves the other nodes and stops on SIGTERM`, async () => {
    const kernel = join(f.nodesDir, 'zz-kernel.json');
    symlinkSync(KERNEL_FILE, kernel);
    const fifo = join(f.nodesDir, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    try {
      await startedDegraded(kernel, fifo);
    } finally {
      rmSync(kernel);
      rmSync(fifo);
    }
  }, 90_000);

  /** A worker starting with `kernel` and `fifo` in its nodes directory: degraded naming both, serving echo, stopping on SIGTERM. */
  async function startedDegraded(kernel: string, fifo: string): Promise<void> {
    worker = await spawnWorker(f, redis.url);
    const h = await health(worker);
    expect(h.status).toBe('degraded');
    expect(h.problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'node', file: kernel, code: 'SVCNODE_INVALID_DEFINITION', message: expect.stringContaining('is a file of procfs (/proc)') as unknown }),
        expect.objectContaining({ kind: 'node', file: fifo, code: 'SVCNODE_INVALID_DEFINITION', message: expect.stringContaining('is a named pipe (FIFO)') as unknown }),
      ]),
    );
    const result = await client.invoke('echo', {}, { timeoutMs: 20_000 });
    expect(result.ok, JSON.stringify(result.failure)).toBe(true);
    const exit = await worker.proc.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(worker.logs()).toContainEqual(expect.objectContaining({ msg: 'shutdown complete' }));
  }

  it(`${KERNEL_FILE} added to a running worker is refused, files added after it still load, and the worker exits after "shutdown complete"`, async () => {
    worker = await spawnWorker(f, redis.url);
    const w = worker;
    const kernel = join(f.nodesDir, 'aa-kernel.json');
    symlinkSync(KERNEL_FILE, kernel);
    // Sorted after the kernel file: its round reads the kernel file first.
    f.writeNode(nodeDef('zz-late', `https://localhost:${backend.port}/late`));
    // The CLI worker polls every 5 s.
    await waitFor(async () => (await health(w)).problems.some((p) => p.file === kernel && p.message.includes('is a file of procfs (/proc)')), 20_000, 200, 'the kernel file refused');
    await waitFor(() => w.logs().some((l) => l.msg === 'node loaded' && l.nodeId === 'zz-late'), 20_000, 200, 'zz-late loaded');
    const result = await client.invoke('zz-late', {}, { timeoutMs: 20_000 });
    expect(result.ok, JSON.stringify(result.failure)).toBe(true);
    const exit = await w.proc.stop('SIGTERM', 10_000);
    expect(exit).toEqual({ code: 0, signal: null });
  }, 90_000);
});
