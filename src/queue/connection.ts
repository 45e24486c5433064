import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { translateRedisError } from './redis-errors.js';
import { parseRedisUrl, type RedisTarget } from './redis-url.js';

export { DEFAULT_REDIS_URL, parseRedisUrl, redactRedisUrl, resolvePrefix, svcnodeKeyPrefix, BULLMQ_PREFIX, CLUSTER_PREFIX, type RedisTarget } from './redis-url.js';

/** A connection to one node (or Sentinel's master) or to a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/** ioredis options of a single-node or Sentinel URL (a cluster URL is refused: use parseRedisUrl). */
export function redisOptions(url: string, env: NodeJS.ProcessEnv = process.env): RedisOptions {
  const target = parseRedisUrl(url, env);
  if (target.kind === 'cluster') throw new TypeError('redisOptions: a cluster URL has no single-node options');
  return target.options;
}

/** How a connection is used: workers block and must never give up on a command; producers fail fast. */
export type Role = 'worker' | 'producer';

function roleOptions(role: Role): RedisOptions {
  return role === 'worker' ? { maxRetriesPerRequest: null, disconnectTimeout: 200 } : { maxRetriesPerRequest: 1, enableOfflineQueue: true, disconnectTimeout: 200 };
}

/** Redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, a closed connection) a cluster command may take before it fails. */
const CLUSTER_MAX_REDIRECTIONS = 300;

/** Open a connection to a parsed target. */
export function connectTarget(target: RedisTarget, role: Role): RedisConnection {
  if (target.kind !== 'cluster') return new Redis({ ...target.options, ...roleOptions(role) });
  return new Cluster(target.nodes, {
    ...target.options,
    redisOptions: { ...target.options.redisOptions, ...roleOptions(role) },
    // During a failover the surviving nodes answer MOVED towards the dead master until a replica
    // is promoted, and while the queue's slot migrates BullMQ's multi-key scripts get TRYAGAIN
    // until the slot is handed over: redirections are spaced out, and the budget (300, about 30 s
    // of either) outlasts a failover with the default cluster-node-timeout (15 s) and a reshard of
    // the slot, so neither a job nor an enqueue fails on the way.
    enableOfflineQueue: true,
    retryDelayOnMoved: 100,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2_000,
    clusterRetryStrategy: (times) => Math.min(100 * times, 2_000),
    maxRedirections: CLUSTER_MAX_REDIRECTIONS,
  });
}

/** Opens connections of a role to one place: a parsed URL, or copies of a caller's ready instance. */
export type ConnectionFactory = (role: Role) => RedisConnection;

/** A factory for a target or a ready ioredis instance (duplicated, never used itself). */
export function connectionFactory(source: RedisTarget | RedisConnection): ConnectionFactory {
  if ('kind' in source) return (role) => connectTarget(source, role);
  if (isCluster(source)) return (role) => source.duplicate(undefined, { redisOptions: { ...source.options.redisOptions, ...roleOptions(role) } });
  return (role) => source.duplicate(roleOptions(role));
}

/** A connection for BullMQ workers and blocking readers (maxRetriesPerRequest: null). */
export function workerConnection(url: string, env: NodeJS.ProcessEnv = process.env): RedisConnection {
  return connectTarget(parseRedisUrl(url, env), 'worker');
}

/** A connection for producers: fails fast while Redis is down instead of queueing forever. */
export function producerConnection(url: string, env: NodeJS.ProcessEnv = process.env): RedisConnection {
  return connectTarget(parseRedisUrl(url, env), 'producer');
}

/** The database a parsed target or a ready connection works on (a cluster has only database 0). */
export function databaseOf(source: RedisTarget | RedisConnection): number {
  if ('kind' in source) return source.kind === 'cluster' ? 0 : (source.options.db ?? 0);
  return isCluster(source) ? 0 : (source.options.db ?? 0);
}

/** True for an ioredis Cluster (the library accepts ready instances of either kind). */
export function isCluster(connection: RedisConnection): connection is Cluster {
  return (connection as { isCluster?: boolean }).isCluster === true;
}

/** Resolve with `promise`, or reject with `onTimeout()` after `ms`: commands can wait forever on a dead node. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Select the URL's database explicitly: ioredis reports an index the server does not have only as
 * an 'error' event and goes on in database 0, where a worker would take another queue's jobs.
 */
export async function checkDatabase(connection: RedisConnection): Promise<void> {
  if (isCluster(connection)) return;
  const db = connection.options.db;
  if (db) await connection.select(db).catch(translateRedisError);
}
