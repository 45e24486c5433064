import type { Logger } from 'pino';
import { basename } from 'node:path';
import { NodeWatcher } from '../definitions/node-watcher.js';
import { ProfileWatcher } from '../definitions/profile-watcher.js';
import { profileName } from '../definitions/profiles.js';
import { Registry } from '../definitions/registry.js';
import type { NodeDefinition } from '../definitions/types.js';
import { profileCertificates } from '../pki/certificates.js';
import { dateFindings, errorFindingsAt } from '../pki/findings.js';
import { PROFILE_DEFAULTS } from '../definitions/profiles.js';
import type { Finding, LoadedProfile } from '../pki/types.js';

/** A loaded profile's error and warning findings, at their level, with the hint that fixes each. */
function logFindings(logger: Logger, profile: LoadedProfile, keep: (f: Finding) => boolean = () => true): void {
  for (const f of profile.findings) {
    if (f.severity === 'info' || !keep(f)) continue;
    logger[f.severity === 'error' ? 'error' : 'warn']({ profile: profile.name, code: f.code, file: f.file, ...(f.hint ? { hint: f.hint } : {}) }, f.message);
  }
}

/**
 * Error findings of loaded profiles: their calls fail (a revoked or expired client certificate,
 * a CRL hard mode cannot have), so /healthz is degraded while they last.
 */
function profileErrors(registry: Registry, now = new Date()): { profile: string; code: string; file: string | undefined; message: string }[] {
  return [...registry.profiles.values()].flatMap((p) => errorFindingsAt(p, now).map((f) => ({ profile: p.name, code: f.code, file: f.file, message: f.message })));
}

/** Past a profiles-directory poll, how long a new node's missing profile may still take to load (a slow PKCS#12, a CRL download). */
const PROFILE_GRACE_MS = 1_000;

/** Date findings are re-judged by logExpiry, so they are not logged twice at start. */
const DATE_CODES = new Set(['CERT_EXPIRES_SOON', 'CERT_EXPIRED', 'CERT_NOT_YET_VALID', 'CLIENT_CERT_EXPIRED', 'CLIENT_CERT_NOT_YET_VALID']);
import { FailureStore } from '../failures/store.js';
import { Metrics } from '../observability/metrics.js';
import { DEFAULT_METRICS_HOST, startMetricsServer, type HealthReport } from '../observability/server.js';
import { AgentPool } from '../tls/agents.js';
import { InvalidInputError, SvcnodeError, errorCode, errorMessage } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { BULLMQ_PREFIX, DEFAULT_REDIS_URL, checkDatabase, connectionFactory, databaseOf, isCluster, parseRedisUrl, resolvePrefix, svcnodeKeyPrefix, withTimeout, type RedisConnection } from './connection.js';
import { QUEUE_NAME, WORKER_DEFAULTS } from './constants.js';
import { createProcessor } from './processor.js';
import { NodeSlots, slowSlotsPerNode } from './node-slots.js';
import { startQueueSampler } from './queue-metrics.js';
import { RedisCrlStore } from './redis-crl-store.js';
import { knownRedisError } from './redis-errors.js';
import { RedisTokenCache } from './redis-token-cache.js';
import { CrlFetcher } from '../pki/crl-fetch.js';
import { distributionPointEvents } from '../pki/distribution-points.js';
import { warmDistributionPoints } from '../tls/cdp-warmup.js';
import { revocationEvents, type RevocationCheck } from '../tls/revocation.js';
import { WorkerSupervisor, type Probe } from './supervisor.js';
import { sleepOrAbort } from './sleep.js';
import { diagnose, diagnoseCluster } from './redis-diagnose.js';

/**
 * Problems /healthz lists; the rest are counted (`problemsNotShown`) and each is in the log and in
 * `svcnode_node_load_failures_total`. A thousand bad files made every probe's answer 217 KB.
 */
const MAX_HEALTH_PROBLEMS = 20;

/** How often a worker says that its agent pool evicts agents in use. */
const EVICTION_LOG_INTERVAL_MS = 10 * 60_000;

export interface WorkerOptions {
  /** Any Redis URL form (single node, Sentinel, Cluster); or pass `connection`. */
  redisUrl?: string;
  /** A ready ioredis `Redis` or `Cluster`: the worker opens its connections as duplicates of it and leaves it open. */
  connection?: RedisConnection;
  nodesDir: string;
  profilesDir: string;
  /** Where the worker logs (pino). @defaultValue JSON lines on stderr at $SVCNODE_LOG_LEVEL or info, secrets redacted */
  logger?: Logger;
  /** @defaultValue WORKER_DEFAULTS.concurrency */
  concurrency?: number;
  /** Serve /metrics and /healthz on this port (0 = any free port). */
  metricsPort?: number;
  /** Address /metrics and /healthz bind to. @defaultValue '127.0.0.1' */
  metricsHost?: string;
  /** BullMQ key prefix; must hold a hash tag on Redis Cluster. @defaultValue 'bull', on a cluster '{svcnode}' */
  prefix?: string;
  /** @defaultValue WORKER_DEFAULTS.watchdogIntervalMs */
  watchdogIntervalMs?: number;
  /** @defaultValue WORKER_DEFAULTS.watchdogIdleMs */
  watchdogIdleMs?: number;
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Poll the profiles directory for rotated material every this many ms (0 = never). @defaultValue 5000 */
  reloadIntervalMs?: number;
  /** How often the client certificates' validity is judged again for /healthz, metrics and the log. @defaultValue 60000 */
  findingsIntervalMs?: number;
  /**
   * Calls one node may have in flight while its calls are timing out (a backend that does not
   * answer); its further jobs wait without a slot, so other nodes keep theirs. 0: no limit. @defaultValue a quarter of `concurrency`, at least 1
   */
  maxSlowCallsPerNode?: number;
  /** Keep-alive agents kept, one per (profile, backend origin) pair in use. @defaultValue MAX_AGENTS (4096) */
  maxAgents?: number;
  /** How long a removed node's metric series stay after the last job that named it. @defaultValue NODE_SERIES_GRACE_MS (10 min) */
  nodeSeriesGraceMs?: number;
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
  /** The node definition watcher; `check()` runs a reload round now. */
  nodeWatcher: NodeWatcher;
  agents: AgentPool;
  metricsPort: number | undefined;
  /** The BullMQ worker's keeper (watchdog, probes, held jobs). */
  supervisor: WorkerSupervisor;
  /** Stop taking jobs, let in-flight ones finish within `graceMs`, then release everything. */
  close(graceMs?: number): Promise<{ drained: boolean }>;
}

/** Log every certificate that is expired or expires soon, judged now (at start, then daily). */
function logExpiry(registry: Registry, logger: Logger, now = new Date()): void {
  for (const profile of registry.profiles.values()) {
    const warningDays = profile.policy?.expiryWarningDays ?? PROFILE_DEFAULTS.expiryWarningDays;
    for (const [role, cert] of profileCertificates(profile)) {
      for (const f of dateFindings(cert, role, profile.file, now, warningDays)) logger[f.severity === 'error' ? 'error' : 'warn']({ profile: profile.name, code: f.code, role, daysLeft: f.daysLeft, ...(f.hint ? { hint: f.hint } : {}) }, f.message);
    }
  }
}

/** Thrown by startWorker when its signal aborts start-up before Redis answered. */
export class StartAbortedError extends SvcnodeError {
  override readonly name: string = 'StartAbortedError';
  constructor() {
    super('SVCNODE_ABORTED', 'start-up aborted before Redis could be reached');
  }
}

/** Why Redis does not answer at start, found by looking around the client (see redis-diagnose): `run` looks, `found` is what it saw last. */
interface Diagnosis {
  run: () => Promise<SvcnodeError | undefined>;
  found?: SvcnodeError | undefined;
}

/** Redis answers, but to say the URL or its credentials are wrong: waiting would not change that. */
const FATAL_AT_START = new Set(['SVCNODE_REDIS_AUTH', 'SVCNODE_REDIS_DB', 'SVCNODE_REDIS_NOT_CLUSTER']);

/**
 * Resolve true once Redis answers PING, false if `signal` aborts first. An outage is waited out
 * (/healthz says 503 meanwhile); refused credentials are a configuration error and thrown at once.
 */
async function redisOrAbort(redis: RedisConnection, signal: AbortSignal | undefined, logger: Logger, diagnosis: Diagnosis): Promise<boolean> {
  // A Cluster's PING waits while no node lets it in: the node's refusal (WRONGPASS, NOAUTH, cluster support disabled) comes only as an 'error' event.
  let lastError: unknown;
  const onError = (error: unknown): void => {
    lastError = error;
  };
  redis.on('error', onError);
  // A raw look at the port says why, when it can (maxclients, TLS on one side only): once a while.
  let nextDiagnosis = Date.now() + 2_000;
  try {
    while (!signal?.aborted) {
      try {
        await withTimeout(redis.ping(), 2_000, () => new Error('PING timed out'));
        await withTimeout(checkDatabase(redis), 2_000, () => new Error('SELECT timed out'));
        return true;
      } catch (error) {
        const known = [error, lastError].map(knownRedisError).find((k) => k !== undefined && FATAL_AT_START.has(k.code));
        if (known) throw known;
        if (Date.now() >= nextDiagnosis) {
          nextDiagnosis = Date.now() + 30_000;
          diagnosis.found = await diagnosis.run();
          const found = diagnosis.found;
          if (found) logger.error({ code: found.code, hint: found.hint }, `Redis not reachable: ${found.message}`);
        }
        await sleepOrAbort(250, signal);
      }
    }
    return false;
  } finally {
    redis.off('error', onError);
  }
}

/** Warn when Redis can evict or lose queued jobs. */
async function checkRedisConfig(redis: RedisConnection, logger: Logger): Promise<void> {
  try {
    const config = async (name: string): Promise<string> => ((await withTimeout(redis.config('GET', name) as Promise<unknown>, 2_000, () => new Error('CONFIG GET timed out'))) as string[])[1] ?? '';
    const [policy, aof, save] = [await config('maxmemory-policy'), await config('appendonly'), await config('save')];
    if (policy !== 'noeviction') logger.warn({ maxmemoryPolicy: policy }, 'Redis maxmemory-policy is not noeviction: queued jobs can be evicted under memory pressure; set maxmemory-policy noeviction');
    if (aof !== 'yes' && !save) logger.warn('Redis has no persistence (appendonly no, no save points): a Redis restart loses queued jobs; set appendonly yes');
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'cannot read Redis configuration (CONFIG GET refused); check maxmemory-policy noeviction and persistence yourself');
  }
}

/** Bind /metrics and /healthz; a taken port is a configuration error (exit 2), not a crash. */
async function listenMetrics(port: number, host: string, metrics: Metrics, health: () => Promise<HealthReport>): Promise<Awaited<ReturnType<typeof startMetricsServer>>> {
  try {
    return await startMetricsServer(port, metrics, health, host);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new InvalidInputError('SVCNODE_PORT_IN_USE', `cannot serve /metrics and /healthz on ${host}:${port} (${code})`, { cause: error, hint: 'pick a free --metrics-port (0 picks any) or stop the process that holds it; --metrics-host sets the address' });
    }
    throw error;
  }
}

/** Start a worker: load and validate definitions, then consume the invocation queue. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const logger = options.logger ?? createLogger();
  const env = options.env ?? process.env;
  // Bad URLs and prefixes fail before anything is opened.
  const source = options.connection ?? parseRedisUrl(options.redisUrl ?? DEFAULT_REDIS_URL, env);
  const cluster = 'kind' in source ? source.kind === 'cluster' : isCluster(source);
  const prefix = resolvePrefix(cluster, options.prefix);
  const open = connectionFactory(source);
  const keyPrefix = svcnodeKeyPrefix(prefix);
  // trust.crl URLs are downloaded once per fleet and shared through Redis (a Redis outage only means each worker downloads).
  const crlConnection = open('worker');
  crlConnection.on('error', () => undefined);
  const crlFetcher = new CrlFetcher(new RedisCrlStore(crlConnection, keyPrefix));
  // A stop signal while CRLs download ends their wait at once (each may take timeoutMs).
  const stopFetches = (): void => crlFetcher.stop();
  if (options.signal?.aborted) stopFetches();
  else options.signal?.addEventListener('abort', stopFetches, { once: true });
  const registry = await Registry.load(options.nodesDir, options.profilesDir, { env, crlFetcher }).catch((error: unknown) => {
    crlConnection.disconnect();
    throw error;
  });
  if (options.signal?.aborted) {
    crlConnection.disconnect();
    throw new StartAbortedError();
  }
  for (const problem of registry.problems) {
    logger.error({ kind: problem.kind, file: problem.file, code: problem.error.code, hint: problem.error.hint }, problem.error.message);
  }
  for (const profile of registry.profiles.values()) logFindings(logger, profile, (f) => !DATE_CODES.has(f.code));
  logExpiry(registry, logger);
  logger.info({ nodes: registry.nodes.size, profiles: registry.profiles.size, problems: registry.problems.length, profileErrors: profileErrors(registry).length }, 'definitions loaded');
  // Handshakes (no request) to the backends of distribution-point profiles, so their CRLs are fetched before the first call.
  const warm = (nodes: Iterable<NodeDefinition>, fields: Record<string, unknown> = {}): void =>
    void warmDistributionPoints(nodes, registry.profiles).then((n) => n > 0 && logger.info({ ...fields, handshakes: n }, 'learnt the CRL distribution points of backends'));
  warm(registry.nodes.values());

  const metrics = new Metrics(options.nodeSeriesGraceMs);
  metrics.staleProfilesFrom(() => registry.staleProfiles());
  for (const profile of registry.profiles.values()) metrics.setCertificateExpiry(profile);
  // Files broken at start are load failures too: a fleet that starts with one must not read 0.
  for (const problem of registry.problems) {
    if (problem.error.code === 'SVCNODE_UNKNOWN_PROFILE') continue;
    if (problem.kind === 'profile') metrics.profileLoadFailures.inc({ profile: profileName(problem.file) });
    else metrics.nodeLoadFailures.inc({ file: basename(problem.file) });
  }
  const onRevocation = (check: RevocationCheck): void => {
    metrics.observeRevocation(check);
    if (check.result === 'unknown') logger.warn({ profile: check.profile, subject: check.subject }, `revocation status unknown, call allowed (soft mode): ${check.message ?? ''}`);
  };
  revocationEvents.on('check', onRevocation);
  const POINT_PREFIX: Record<string, string> = { failed: 'CRL distribution point not downloaded, counts as no revocation data: ', stale: 'CRL distribution point not refreshed: ', refused: '' };
  const onPoint = (kind: string) => (e: { profile: string; url: string; message: string }): void => void logger.warn({ profile: e.profile, url: e.url }, `${POINT_PREFIX[kind] ?? ''}${e.message}`);
  const onPointFailed = onPoint('failed');
  const onPointStale = onPoint('stale');
  const onPointRefused = onPoint('refused');
  distributionPointEvents.on('failed', onPointFailed).on('stale', onPointStale).on('refused', onPointRefused);

  // Filled in once Redis connections exist; /healthz is served (503) before that.
  const live: { supervisor?: WorkerSupervisor } = {};
  // A cluster whose nodes answer but report cluster_state:fail never gets ready: ask its seeds why.
  const seeds = 'kind' in source && source.kind === 'cluster' ? source : undefined;
  const diagnosis: Diagnosis = { run: () => (seeds ? diagnoseCluster(seeds.nodes, seeds.options.redisOptions) : diagnose(probe)) };
  const health = async (): Promise<HealthReport> => {
    const { supervisor } = live;
    // A stale profile still calls with its last good bundle, and a removed one is a decision: both
    // degrade (200), as a 503 would invite a restart, which loses the last good bundle.
    const stale = registry.staleProfiles();
    const found = supervisor ? undefined : diagnosis.found;
    const result: Probe = supervisor ? await supervisor.probe() : { ok: false, reason: 'redis unreachable', detail: 'not connected yet', ...(found ? { code: found.code } : {}) };
    const refused = result.ok ? supervisor?.commandsRefused() : result.code;
    const down = found?.code === 'SVCNODE_REDIS_CLUSTER_DOWN' || supervisor?.clusterIsDown() === true;
    const reason = down ? 'redis cluster down' : !result.ok ? result.reason : refused ? 'redis refuses commands' : !supervisor?.takingJobs() ? 'worker stopped' : undefined;
    const errors = profileErrors(registry);
    return {
      status: reason ? 'down' : registry.problems.length > 0 || stale.length > 0 || errors.length > 0 ? 'degraded' : 'ok',
      ...(reason ? { reason } : {}),
      ...(down ? { code: 'SVCNODE_REDIS_CLUSTER_DOWN' } : refused ? { code: refused } : {}),
      redis: result.ok ? 'connected' : 'disconnected',
      nodes: registry.nodes.size,
      profiles: registry.profiles.size,
      problems: registry.problems.slice(0, MAX_HEALTH_PROBLEMS).map((p) => ({ kind: p.kind, file: p.file, code: p.error.code, message: p.error.message })),
      ...(registry.problems.length > MAX_HEALTH_PROBLEMS ? { problemsNotShown: registry.problems.length - MAX_HEALTH_PROBLEMS } : {}),
      staleProfiles: stale,
      profileErrors: errors,
    };
  };
  // What start-up holds so far (the CRL connection, listeners on process-wide emitters), let go when it fails before the release below exists.
  const stopListening = (): void => {
    crlFetcher.stop();
    options.signal?.removeEventListener('abort', stopFetches);
    revocationEvents.off('check', onRevocation);
    distributionPointEvents.off('failed', onPointFailed).off('stale', onPointStale).off('refused', onPointRefused);
  };
  // The port is bound before the queue's Redis connections exist.
  const server =
    options.metricsPort === undefined
      ? undefined
      : await listenMetrics(options.metricsPort, options.metricsHost ?? DEFAULT_METRICS_HOST, metrics, health).catch((error: unknown) => {
          stopListening();
          crlConnection.disconnect();
          throw error;
        });
  if (server) logger.info({ healthPort: server.port, host: options.metricsHost ?? DEFAULT_METRICS_HOST }, 'serving /metrics and /healthz');

  const probe = open('producer');
  const storeConnection = open('worker');
  for (const c of [probe, storeConnection]) c.on('error', () => undefined);
  let evictionSaidAt = -Infinity;
  const agents = new AgentPool({
    ...(options.tlsSessionResumption === false ? { maxCachedSessions: 0 } : {}),
    ...(options.maxAgents === undefined ? {} : { maxAgents: options.maxAgents }),
    onEvicted: (evicted) => {
      // An idle agent going is housekeeping; one with connections means pairs in use outnumber the pool.
      if (evicted.openSockets === 0 || performance.now() - evictionSaidAt < EVICTION_LOG_INTERVAL_MS) return;
      evictionSaidAt = performance.now();
      logger.warn(
        { ...evicted, code: 'SVCNODE_AGENTS_EVICTED', hint: 'raise the maxAgents worker option above the number of (profile, backend) pairs that carry traffic' },
        'more (profile, backend) pairs carry traffic than the worker keeps agents for: connections and TLS sessions in use were dropped, and calls pay full handshakes (said at most every 10 min)',
      );
    },
    onIdleLearned: (learned) => logger.info(learned, 'the backend closes idle connections sooner than timeouts.keepAliveMs: its kept-alive connections now close sooner (learned for 10 min)'),
  });
  const store = new FailureStore(storeConnection, { prefix: keyPrefix });
  const tokens = new RedisTokenCache(storeConnection, keyPrefix);
  const concurrency = options.concurrency ?? WORKER_DEFAULTS.concurrency;
  const slowCalls = options.maxSlowCallsPerNode ?? slowSlotsPerNode(concurrency);
  const processor = createProcessor({ registry: () => registry, agents, tokens, store, metrics, logger, ...(slowCalls > 0 ? { slots: new NodeSlots(slowCalls) } : {}) });
  // One signal for every call, aborted when a shutdown's grace period runs out (cheaper than a per-job one).
  const shutdown = new AbortController();
  const expiryTimer = setInterval(() => logExpiry(registry, logger), 86_400_000);
  expiryTimer.unref();
  // A client certificate that expires (or becomes valid) while the worker runs: within a minute its
  // error finding is in /healthz, svcnode_profile_error_findings and the log, as after a reload.
  const judged = new Map<string, string>();
  const judgeErrors = (now = new Date()): void => {
    for (const profile of registry.profiles.values()) {
      const errors = errorFindingsAt(profile, now);
      // The codes only: a reload publishes its own findings (the reloaded handler), so only the clock's changes are left here.
      const key = errors.map((f) => f.code).join(',');
      const before = judged.get(profile.name);
      judged.set(profile.name, key);
      if (before === undefined || before === key) continue;
      metrics.setCertificateExpiry(profile, now);
      for (const f of errors) if (!profile.findings.some((p) => p.code === f.code && p.severity === 'error')) logger.error({ profile: profile.name, code: f.code, file: f.file, ...(f.hint ? { hint: f.hint } : {}) }, f.message);
    }
  };
  judgeErrors();
  const judgeTimer = setInterval(judgeErrors, options.findingsIntervalMs ?? 60_000);
  judgeTimer.unref();

  /** How often profiles and node files are polled for changes; 0 turns both off. */
  const reloadIntervalMs = options.reloadIntervalMs ?? 5_000;
  // A nodes or profiles directory gone (unmounted, renamed, a failed symlink swap): its files are out of use until it is back.
  const directoryUnreadable = (dir: string, error: InvalidInputError): void => logger.error({ dir, code: error.code, hint: error.hint }, error.message);
  const directoryReadable = (dir: string): void => logger.info({ dir }, 'directory readable again: its files are loaded');
  const watcher = new ProfileWatcher(
    registry,
    {
      reloaded(profile: LoadedProfile, previous: LoadedProfile | undefined) {
        const retired = agents.retire(profile.name, profile.version);
        metrics.setCertificateExpiry(profile);
        logger.info({ profile: profile.name, retiredAgents: retired, client: profile.client?.leaf.subject.replace(/\n/g, ', ') }, previous ? 'profile reloaded: new connections use the new material' : 'profile loaded');
        logFindings(logger, profile);
      },
      unchanged(profile, previous, recovered) {
        if (recovered) logger.info({ profile: profile.name }, 'profile loads again, with the material already in use: its reload failure is over');
        // Only what is new: a CRL that keeps failing to refresh is said once, not once a minute.
        logFindings(logger, profile, (f) => !previous.findings.some((p) => p.code === f.code && p.message === f.message));
      },
      removed(name, file, previous) {
        agents.retire(name);
        metrics.removeProfile(name);
        if (!previous) logger.info({ profile: name, file }, 'profile file removed (it had not loaded, nothing was in use)');
        else logger.error({ profile: name, file, client: previous.client?.leaf.subject.replace(/\n/g, ', ') }, 'profile removed: its nodes answer invalid_input until the file is back');
      },
      deferred(name, file, why) {
        logger.warn({ profile: name, file, code: why.code, hint: why.hint }, `profile reload deferred: ${why.message}`);
      },
      failed(name, file, error, kept) {
        metrics.profileLoadFailures.inc({ profile: name });
        logger.error({ profile: name, file, code: error.code, hint: error.hint }, kept ? `profile reload failed, keeping the last good bundle: ${error.message}` : `profile failed to load, its nodes answer invalid_input until it does: ${error.message}`);
      },
      unreadable: directoryUnreadable,
      readable: directoryReadable,
      error(error) {
        logger.error({ err: errorMessage(error) }, 'profile reload round failed; the next round runs as usual');
      },
    },
    { intervalMs: reloadIntervalMs, ...(options.env ? { env: options.env } : {}), crlFetcher },
  );

  const nodeWatcher = new NodeWatcher(
    registry,
    {
      loaded(file, node, previous, droppedId, displaced) {
        metrics.keepNode(node.id);
        metrics.keepNodeFile(basename(file));
        if (droppedId !== undefined) {
          metrics.retireNode(droppedId);
          logger.warn({ nodeId: droppedId, file, now: node.id }, 'node removed: its file now defines another id, its jobs answer invalid_input');
        }
        if (displaced !== undefined) {
          metrics.nodeLoadFailures.inc({ file: basename(displaced) });
          logger.error({ nodeId: node.id, file, displaced, code: 'SVCNODE_INVALID_DEFINITION' }, `node id "${node.id}" is defined by two files: ${file} is used (the first by name, as in every worker), ${displaced} is refused until one of them changes`);
        }
        logger.info({ nodeId: node.id, file }, previous ? 'node reloaded' : 'node loaded');
        // A new backend (or profile) gets the start-up handshake too, so its CRLs are there before its first call.
        if (!previous || previous.request.url !== node.request.url || previous.tls.profile !== node.tls.profile || previous.tls.servername !== node.tls.servername) warm([node], { nodeId: node.id });
        if (!registry.profiles.has(node.tls.profile)) {
          // A new node and its new profile are often deployed together, and the nodes directory may be
          // polled first: judged once the profiles directory has been polled again.
          setTimeout(() => {
            if (registry.nodes.get(node.id) === node && !registry.profiles.has(node.tls.profile)) logger.error({ nodeId: node.id, file, profile: node.tls.profile, code: 'SVCNODE_UNKNOWN_PROFILE' }, `node "${node.id}" uses profile "${node.tls.profile}", which is not loaded`);
          }, reloadIntervalMs + PROFILE_GRACE_MS).unref();
        }
      },
      failed(file, error, lastGood) {
        metrics.keepNodeFile(basename(file));
        metrics.nodeLoadFailures.inc({ file: basename(file) });
        logger.error({ file, code: error.code, hint: error.hint, ...(lastGood ? { nodeId: lastGood.id } : {}) }, lastGood ? `node reload failed, keeping the last good definition: ${error.message}` : `node file failed to load: ${error.message}`);
      },
      removed(file, nodeId) {
        metrics.retireNodeFile(basename(file));
        if (nodeId === undefined) {
          logger.info({ file }, 'node file removed (it had no node in use)');
          return;
        }
        metrics.retireNode(nodeId);
        logger.warn({ nodeId, file }, 'node removed: its jobs answer invalid_input until the file is back');
      },
      unreadable: directoryUnreadable,
      readable: directoryReadable,
      error(error) {
        logger.error({ err: errorMessage(error) }, 'node reload round failed; the next round runs as usual');
      },
    },
    { intervalMs: reloadIntervalMs },
  );

  const supervisor = new WorkerSupervisor({
    open,
    prefix,
    concurrency,
    lockDurationMs: options.lockDurationMs ?? WORKER_DEFAULTS.lockDurationMs,
    stalledIntervalMs: options.stalledIntervalMs ?? WORKER_DEFAULTS.stalledIntervalMs,
    processor: (job, token) => processor(job, token, shutdown.signal),
    probe,
    logger,
    metrics,
    ...(options.watchdogIntervalMs ? { watchdogIntervalMs: options.watchdogIntervalMs } : {}),
    ...(options.watchdogIdleMs ? { watchdogIdleMs: options.watchdogIdleMs } : {}),
  });

  const queueSampler = startQueueSampler(metrics, storeConnection, { ...(prefix ? { prefix } : {}), isUp: () => live.supervisor?.takingJobs() ?? false });

  /** Release everything, bounded in time: quit politely, then cut what does not answer. */
  const release = async (graceMs: number): Promise<{ drained: boolean }> => {
    queueSampler.stop();
    watcher.stop();
    nodeWatcher.stop();
    clearInterval(expiryTimer);
    clearInterval(judgeTimer);
    stopListening();
    // Calls still running past the grace period are aborted; their jobs return to the queue.
    const outcome = await supervisor.close(graceMs, () => shutdown.abort());
    if (!outcome.drained) shutdown.abort();
    agents.destroy();
    await server?.close();
    await withTimeout(Promise.allSettled([probe.quit(), storeConnection.quit(), crlConnection.quit()]), 300, () => new Error('quit timed out')).catch(() => undefined);
    probe.disconnect();
    storeConnection.disconnect();
    crlConnection.disconnect();
    return outcome;
  };

  try {
    if (reloadIntervalMs > 0) await Promise.all([watcher.start(), nodeWatcher.start()]);
    // /healthz answers (503) while Redis is still unreachable at start; a stop signal ends the wait.
    if (!(await redisOrAbort(probe, options.signal, logger, diagnosis))) throw new StartAbortedError();
    const first = await supervisor.probe();
    if (!first.ok && first.reason === 'MOVED: wrong node') {
      // Not fatal: this node may own the slot after a failover; /healthz says 503 until then.
      const known = knownRedisError(new Error(first.detail));
      logger.error({ code: known?.code, hint: known?.hint }, known?.message ?? first.detail);
    }
    await checkRedisConfig(probe, logger);
  } catch (error) {
    await release(0);
    throw error;
  }
  supervisor.start();
  live.supervisor = supervisor;
  void queueSampler.sample();
  logger.info({ queue: QUEUE_NAME, prefix: prefix || BULLMQ_PREFIX, db: databaseOf(source), cluster, concurrency, metricsPort: server?.port }, 'worker started');

  return {
    registry,
    agents,
    metricsPort: server?.port,
    watcher,
    nodeWatcher,
    supervisor,
    close: (graceMs = WORKER_DEFAULTS.shutdownGraceMs) => release(graceMs),
  };
}
