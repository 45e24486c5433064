import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ProfileWatcher } from '../definitions/profile-watcher.js';
import { Registry } from '../definitions/registry.js';
import { profileCertificates } from '../pki/certificates.js';
import { dateFindings } from '../pki/findings.js';
import { PROFILE_DEFAULTS } from '../definitions/profiles.js';
import type { LoadedProfile } from '../pki/types.js';

/** Date findings are re-judged by logExpiry, so they are not logged twice at start. */
const DATE_CODES = new Set(['CERT_EXPIRES_SOON', 'CERT_EXPIRED', 'CERT_NOT_YET_VALID', 'CLIENT_CERT_EXPIRED', 'CLIENT_CERT_NOT_YET_VALID']);
import { FailureStore } from '../failures/store.js';
import { Metrics } from '../observability/metrics.js';
import { startMetricsServer, type HealthReport } from '../observability/server.js';
import { AgentPool } from '../tls/agents.js';
import { workerConnection } from './connection.js';
import { JOB_NAME, QUEUE_NAME, WORKER_DEFAULTS } from './constants.js';
import { createProcessor } from './processor.js';
import { startQueueSampler } from './queue-metrics.js';
import { RedisTokenCache } from './redis-token-cache.js';
import { RedisCrlStore } from './redis-crl-store.js';
import { CrlFetcher } from '../pki/crl-fetch.js';
import { revocationEvents, type RevocationCheck } from '../tls/revocation.js';

export interface WorkerOptions {
  redisUrl: string;
  nodesDir: string;
  profilesDir: string;
  logger: Logger;
  /** @defaultValue WORKER_DEFAULTS.concurrency */
  concurrency?: number;
  /** Serve /metrics and /healthz on this port (0 = any free port). */
  metricsPort?: number;
  /** BullMQ key prefix; use a hash tag such as `{svcnode}` on Redis Cluster. @defaultValue 'bull' */
  prefix?: string;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Poll the profiles directory for rotated material every this many ms (0 = never). @defaultValue 5000 */
  reloadIntervalMs?: number;
  /** Resume TLS sessions on new connections (false forces full handshakes). @defaultValue true */
  tlsSessionResumption?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Aborts start-up (a stop signal while Redis is still unreachable). */
  signal?: AbortSignal;
}

export interface RunningWorker {
  registry: Registry;
  /** The profile watcher; `check()` runs a reload round now. */
  watcher: ProfileWatcher;
  agents: AgentPool;
  metricsPort: number | undefined;
  /** Stop taking jobs, let in-flight ones finish within `graceMs`, then release everything. */
  close(graceMs?: number): Promise<{ drained: boolean }>;
}

/** Log every certificate that is expired or expires soon, judged now (at start, then daily). */
function logExpiry(registry: Registry, logger: Logger, now = new Date()): void {
  for (const profile of registry.profiles.values()) {
    const warningDays = profile.policy?.expiryWarningDays ?? PROFILE_DEFAULTS.expiryWarningDays;
    for (const [role, cert] of profileCertificates(profile)) {
      for (const f of dateFindings(cert, role, profile.file, now, warningDays)) logger.warn({ profile: profile.name, code: f.code, role, daysLeft: f.daysLeft }, f.message);
    }
  }
}

/** Thrown by startWorker when its signal aborts start-up before Redis answered. */
export class StartAbortedError extends Error {
  constructor() {
    super('start-up aborted before Redis could be reached');
  }
}

/** Resolve true once Redis answers, false if `signal` aborts first. */
async function redisOrAbort(redis: Redis, signal: AbortSignal | undefined): Promise<boolean> {
  const ready = redis.ping().then(
    () => true,
    () => true,
  );
  if (!signal) return ready;
  if (signal.aborted) return false;
  const aborted = new Promise<boolean>((resolve) => signal.addEventListener('abort', () => resolve(false), { once: true }));
  return Promise.race([ready, aborted]);
}

/** Warn when Redis can evict or lose queued jobs. */
async function checkRedisConfig(redis: Redis, logger: Logger): Promise<void> {
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as [string, string];
    const [, aof] = (await redis.config('GET', 'appendonly')) as [string, string];
    const [, save] = (await redis.config('GET', 'save')) as [string, string];
    if (policy !== 'noeviction') logger.warn({ maxmemoryPolicy: policy }, 'Redis maxmemory-policy is not noeviction: queued jobs can be evicted under memory pressure; set maxmemory-policy noeviction');
    if (aof !== 'yes' && !save) logger.warn('Redis has no persistence (appendonly no, no save points): a Redis restart loses queued jobs; set appendonly yes');
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'cannot read Redis configuration (CONFIG GET refused); check maxmemory-policy noeviction and persistence yourself');
  }
}

/** Start a worker: load and validate definitions, then consume the invocation queue. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { logger } = options;
  // trust.crl URLs are downloaded once per fleet and shared through Redis (a Redis outage only means each worker downloads).
  const crlConnection = workerConnection(options.redisUrl);
  crlConnection.on('error', () => undefined);
  const crlFetcher = new CrlFetcher(new RedisCrlStore(crlConnection, options.prefix ? `${options.prefix}:svcnode` : 'svcnode'));
  const registry = await Registry.load(options.nodesDir, options.profilesDir, { env: options.env ?? process.env, crlFetcher }).catch((error: unknown) => {
    crlConnection.disconnect();
    throw error;
  });
  for (const problem of registry.problems) {
    logger.error({ kind: problem.kind, file: problem.file, code: problem.error.code, hint: problem.error.hint }, problem.error.message);
  }
  for (const profile of registry.profiles.values()) {
    for (const finding of profile.findings) {
      if (finding.severity !== 'info' && !DATE_CODES.has(finding.code)) logger.warn({ profile: profile.name, code: finding.code, file: finding.file }, finding.message);
    }
  }
  logExpiry(registry, logger);
  const expiryTimer = setInterval(() => logExpiry(registry, logger), 86_400_000);
  expiryTimer.unref();
  logger.info({ nodes: registry.nodes.size, profiles: registry.profiles.size, problems: registry.problems.length }, 'definitions loaded');

  const metrics = new Metrics();
  for (const profile of registry.profiles.values()) metrics.setCertificateExpiry(profile);
  const onRevocation = (check: RevocationCheck): void => {
    metrics.observeRevocation(check);
    if (check.result === 'unknown') logger.warn({ profile: check.profile, subject: check.subject }, `revocation status unknown, call allowed (soft mode): ${check.message ?? ''}`);
  };
  revocationEvents.on('check', onRevocation);

  const connection = workerConnection(options.redisUrl);
  const storeConnection = workerConnection(options.redisUrl);
  let redisReady = false;
  for (const c of [connection, storeConnection]) {
    c.on('error', (error: Error) => logger.warn({ err: error.message }, 'Redis connection error'));
  }
  connection.on('ready', () => {
    redisReady = true;
  });
  connection.on('close', () => {
    redisReady = false;
  });
  const agents = new AgentPool(options.tlsSessionResumption === false ? { maxCachedSessions: 0 } : {});
  const keyPrefix = options.prefix ? `${options.prefix}:svcnode` : 'svcnode';
  const store = new FailureStore(storeConnection, { prefix: keyPrefix });
  const tokens = new RedisTokenCache(storeConnection, keyPrefix);
  const processor = createProcessor({ registry: () => registry, agents, tokens, store, metrics, logger });

  // One signal for every call, aborted when a shutdown's grace period runs out. A processor that
  // takes BullMQ's per-job signal costs an AbortController and listeners per job (npm run bench).
  const shutdown = new AbortController();
  const worker = new Worker(QUEUE_NAME, (job, token) => (job.name === JOB_NAME ? processor(job, token, shutdown.signal) : Promise.reject(new Error(`unknown job name "${job.name}"`))), {
    connection,
    ...(options.prefix ? { prefix: options.prefix } : {}),
    concurrency: options.concurrency ?? WORKER_DEFAULTS.concurrency,
    lockDuration: options.lockDurationMs ?? WORKER_DEFAULTS.lockDurationMs,
    stalledInterval: options.stalledIntervalMs ?? WORKER_DEFAULTS.stalledIntervalMs,
    maxStalledCount: WORKER_DEFAULTS.maxStalledCount,
    removeOnComplete: WORKER_DEFAULTS.removeOnComplete,
    removeOnFail: WORKER_DEFAULTS.removeOnFail,
    autorun: false,
  });
  worker.on('error', (error) => logger.warn({ err: error.message }, 'worker error'));
  const queueSampler = startQueueSampler(metrics, storeConnection, { ...(options.prefix ? { prefix: options.prefix } : {}), isUp: () => redisReady && worker.isRunning() });
  worker.on('failed', (job, error) => logger.error({ jobId: job?.id, err: error.message }, 'job failed (infrastructure)'));

  const watcher = new ProfileWatcher(
    registry,
    {
      reloaded(profile: LoadedProfile, previous: LoadedProfile | undefined) {
        const retired = agents.retire(profile.name, profile.version);
        metrics.setCertificateExpiry(profile);
        logger.info({ profile: profile.name, retiredAgents: retired, client: profile.client?.leaf.subject.replace(/\n/g, ', ') }, previous ? 'profile reloaded: new connections use the new material' : 'profile loaded');
        for (const f of profile.findings) if (f.severity !== 'info') logger.warn({ profile: profile.name, code: f.code, file: f.file }, f.message);
      },
      removed(name, file, previous) {
        agents.retire(name);
        metrics.removeProfile(name);
        logger.error({ profile: name, file, client: previous?.client?.leaf.subject.replace(/\n/g, ', ') }, 'profile removed: its nodes answer invalid_input until the file is back');
      },
      failed(name, file, error) {
        metrics.profileLoadFailures.inc({ profile: name });
        logger.error({ profile: name, file, code: error.code, hint: error.hint }, `profile reload failed, keeping the last good bundle: ${error.message}`);
      },
    },
    { intervalMs: options.reloadIntervalMs ?? 5_000, ...(options.env ? { env: options.env } : {}), crlFetcher },
  );
  if ((options.reloadIntervalMs ?? 5_000) > 0) await watcher.start();

  const health = (): HealthReport => {
    const stale = registry.staleProfiles();
    return {
      status: !redisReady || !worker.isRunning() ? 'down' : registry.problems.length > 0 || stale.length > 0 ? 'degraded' : 'ok',
      redis: redisReady ? 'connected' : 'disconnected',
      nodes: registry.nodes.size,
      profiles: registry.profiles.size,
      problems: registry.problems.map((p) => ({ kind: p.kind, file: p.file, code: p.error.code, message: p.error.message })),
      staleProfiles: stale,
    };
  };
  const server = options.metricsPort === undefined ? undefined : await startMetricsServer(options.metricsPort, metrics, health);
  if (server) logger.info({ healthPort: server.port }, 'serving /metrics and /healthz');
  // /healthz answers (503) while Redis is still unreachable at start; a stop signal ends the wait.
  if (!(await redisOrAbort(connection, options.signal))) {
    queueSampler.stop();
    watcher.stop();
    clearInterval(expiryTimer);
    revocationEvents.off('check', onRevocation);
    crlConnection.disconnect();
    agents.destroy();
    await server?.close();
    await worker.close(true).catch(() => undefined);
    connection.disconnect();
    storeConnection.disconnect();
    throw new StartAbortedError();
  }
  await checkRedisConfig(connection, logger);
  void worker.run().catch((error: unknown) => logger.error({ err: (error as Error).message }, 'worker stopped'));
  void queueSampler.sample();
  logger.info({ queue: QUEUE_NAME, concurrency: options.concurrency ?? WORKER_DEFAULTS.concurrency, metricsPort: server?.port }, 'worker started');

  return {
    registry,
    agents,
    metricsPort: server?.port,
    watcher,
    async close(graceMs = WORKER_DEFAULTS.shutdownGraceMs) {
      queueSampler.stop();
      watcher.stop();
      clearInterval(expiryTimer);
      revocationEvents.off('check', onRevocation);
      const graceful = worker.close().then(() => true);
      const timer = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref());
      const drained = await Promise.race([graceful, timer]);
      if (!drained) {
        shutdown.abort();
        await worker.close(true);
      }
      agents.destroy();
      await server?.close();
      await Promise.allSettled([connection.quit(), storeConnection.quit(), crlConnection.quit()]);
      return { drained };
    },
  };
}
