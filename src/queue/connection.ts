import { Redis, type RedisOptions } from 'ioredis';
import { InvalidInputError } from '../errors.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * ioredis options from a URL: `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS), or
 * `redis+sentinel://host:port[,host:port…]/masterName` for Redis Sentinel.
 */
export function redisOptions(url: string): RedisOptions {
  if (url.startsWith('redis+sentinel://')) return sentinelOptions(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_USAGE', `invalid Redis URL "${url.replace(/\/\/[^@]*@/, '//***@')}"`, { cause, hint: 'use redis://host:port, rediss://host:port or redis+sentinel://h1:26379,h2:26379/master' });
  }
  const auth = {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
  };
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new InvalidInputError('SVCNODE_USAGE', `unsupported Redis URL scheme "${parsed.protocol}"`, { hint: 'use redis://, rediss:// or redis+sentinel://' });
  }
  const db = Number(parsed.pathname.slice(1) || 0);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    db,
    ...auth,
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * `redis+sentinel://[user:pass@]host:port[,host:port…]/masterName`: the WHATWG URL parser refuses
 * a host list, so it is split by hand. Credentials are those of the master.
 */
function sentinelOptions(url: string): RedisOptions {
  const match = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]+)(?:\/([^/?#]*))?$/.exec(url);
  const hosts = match?.[3];
  if (!match || !hosts) {
    throw new InvalidInputError('SVCNODE_USAGE', 'invalid Redis Sentinel URL', { hint: 'use redis+sentinel://host1:26379,host2:26379/masterName' });
  }
  const sentinels = hosts.split(',').map((h) => {
    const [host, port] = h.split(':');
    return { host: host || '127.0.0.1', port: Number(port ?? 26379) };
  });
  if (sentinels.some((s) => !Number.isInteger(s.port) || s.port <= 0)) {
    throw new InvalidInputError('SVCNODE_USAGE', 'invalid port in the Redis Sentinel URL', { hint: 'use redis+sentinel://host1:26379,host2:26379/masterName' });
  }
  return {
    sentinels,
    name: decodeURIComponent(match[4] ?? '') || 'mymaster',
    ...(match[1] ? { username: decodeURIComponent(match[1]) } : {}),
    ...(match[2] ? { password: decodeURIComponent(match[2]) } : {}),
  };
}

/** A Redis connection for BullMQ workers and blocking readers (maxRetriesPerRequest: null). */
export function workerConnection(url: string): Redis {
  return new Redis({ ...redisOptions(url), maxRetriesPerRequest: null, disconnectTimeout: 200 });
}

/** A Redis connection for producers: fails fast while Redis is down instead of queueing forever. */
export function producerConnection(url: string): Redis {
  return new Redis({ ...redisOptions(url), maxRetriesPerRequest: 1, enableOfflineQueue: true, disconnectTimeout: 200 });
}
