import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/observability/logger.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../../src/queue/worker.js';
import { createTestPki, type TestPki } from './pki.js';
import { startRedis, type RedisOptions, type TestRedis } from './redis.js';
import { startMtlsServer, type MtlsServer, type RequestHandler } from './servers.js';

export interface WorkerRig {
  pki: TestPki;
  redis: TestRedis;
  /** The mTLS backend node `ping` calls at /ping. */
  backend: MtlsServer;
  worker: RunningWorker;
  client: ServiceNodeClient;
  /** Temporary directory holding nodes/, profiles/ and material/ (client.pem, client.key, root.pem). */
  dir: string;
  /** profiles/bank.json, and the text first written to it. */
  profileFile: string;
  profileText: string;
  /** Stops everything, client and worker first, and removes `dir`. */
  close(): Promise<void>;
}

/**
 * An in-process worker (silent, metrics on a free port) on a real Redis, with profile `bank` over
 * files in material/ and node `ping` calling an mTLS backend; a failed start-up closes what started.
 */
export async function startWorkerRig(o: {
  dirPrefix: string;
  redis?: RedisOptions;
  worker: Pick<WorkerOptions, 'concurrency' | 'reloadIntervalMs' | 'nodeSeriesGraceMs' | 'maxAgents' | 'maxSlowCallsPerNode'> & { logger?: WorkerOptions['logger'] };
  /** More files for nodes/ (name → text), written before the worker starts; `port` → the backend's port. */
  nodes?: (port: number) => Record<string, string>;
  /** How the backend answers. @defaultValue startMtlsServer's (200, JSON) */
  backendHandler?: RequestHandler;
}): Promise<WorkerRig> {
  const closers: Array<() => Promise<void>> = [];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await c();
  };
  try {
    const pki = await createTestPki();
    closers.push(() => pki.cleanup());
    const redis = await startRedis(o.redis);
    closers.push(() => redis.close());
    const backend = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, ...(o.backendHandler ? { handler: o.backendHandler } : {}) });
    closers.push(() => backend.close());
    const dir = mkdtempSync(join(tmpdir(), o.dirPrefix));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    for (const d of ['nodes', 'profiles', 'material']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'material', 'root.pem'), pki.root.certPem);
    writeFileSync(join(dir, 'material', 'client.pem'), pki.client.certPem + pki.intermediate.certPem);
    writeFileSync(join(dir, 'material', 'client.key'), pki.client.keyPem, { mode: 0o600 });
    const profileFile = join(dir, 'profiles', 'bank.json');
    const profileText = JSON.stringify({ client: { certificate: '../material/client.pem', key: '../material/client.key' }, trust: { ca: ['../material/root.pem'] } });
    writeFileSync(profileFile, profileText);
    writeFileSync(join(dir, 'nodes', 'ping.json'), JSON.stringify({ id: 'ping', request: { method: 'GET', url: `https://localhost:${backend.port}/ping` }, tls: { profile: 'bank' }, retry: { limit: 0 } }));
    for (const [name, text] of Object.entries(o.nodes?.(backend.port) ?? {})) writeFileSync(join(dir, 'nodes', name), text);
    const worker = await startWorker({ redisUrl: redis.url, nodesDir: join(dir, 'nodes'), profilesDir: join(dir, 'profiles'), logger: createLogger({ level: 'silent' }), metricsPort: 0, ...o.worker });
    closers.push(async () => {
      await worker.close(5_000);
    });
    const client = new ServiceNodeClient({ redisUrl: redis.url });
    closers.push(() => client.close());
    return { pki, redis, backend, worker, client, dir, profileFile, profileText, close };
  } catch (err) {
    await close();
    throw err;
  }
}
