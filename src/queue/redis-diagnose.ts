import net from 'node:net';
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import { UnavailableError, type SvcnodeError } from '../errors.js';
import { isCluster, withTimeout, type RedisConnection } from './connection.js';

/** How long the raw look at a port may take in all. */
const DIAGNOSE_MS = 1_500;
/** Redis sends its refusal of a client over `maxclients` as soon as it accepts the connection. */
const GREETING_MS = 150;

type Seen = { kind: 'data'; bytes: Buffer } | { kind: 'closed' } | { kind: 'nothing' };

/**
 * Why ioredis gets no answer from a single Redis endpoint, found by a raw look at its port: over
 * `maxclients` (Redis says so and closes, ioredis only sees the close), or a URL scheme that does not
 * match the port (rediss:// on a plain port never completes TLS; redis:// on a TLS port is reset).
 * Undefined when the port shows nothing conclusive (down, filtered, or a healthy Redis).
 */
export async function diagnoseRedisPort(host: string, port: number, tls: boolean): Promise<SvcnodeError | undefined> {
  const first = await look(host, port, false);
  if (first.kind === 'data' && /max number of clients reached/i.test(first.bytes.toString('latin1'))) {
    return new UnavailableError('SVCNODE_REDIS_MAXCLIENTS', `Redis at ${host}:${port} refuses new connections: max number of clients reached`, {
      hint: "raise the server's maxclients or find what holds its connections (redis-cli CLIENT LIST); every worker holds a few",
    });
  }
  if (first.kind !== 'nothing') return undefined;
  const answer = await look(host, port, true);
  const resp = answer.kind === 'data' && /^[+-]/.test(answer.bytes.toString('latin1', 0, 1));
  if (tls && resp) {
    return new UnavailableError('SVCNODE_REDIS_TLS_MISMATCH', `Redis at ${host}:${port} speaks plain Redis, not TLS: the rediss:// URL waits for a TLS handshake that never comes`, {
      hint: 'use redis:// for this port, or the port of its tls-port setting with rediss://',
    });
  }
  // A TLS port answers plain bytes with a TLS alert (first byte 0x15) or by closing the connection.
  if (!tls && ((answer.kind === 'data' && answer.bytes[0] === 0x15) || answer.kind === 'closed')) {
    return new UnavailableError('SVCNODE_REDIS_TLS_MISMATCH', `Redis at ${host}:${port} expects TLS: it closes plain redis:// connections`, {
      hint: 'use rediss:// for this port (with the CA in NODE_EXTRA_CA_CERTS when it is a private one)',
    });
  }
  return undefined;
}

/** Connect, optionally send PING, and report the first bytes, a close, or nothing within the time. */
function look(host: string, port: number, ping: boolean): Promise<Seen> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (seen: Seen): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(seen);
    };
    const timer = setTimeout(() => finish({ kind: 'nothing' }), ping ? DIAGNOSE_MS - GREETING_MS : GREETING_MS);
    socket.once('data', (bytes: Buffer) => finish({ kind: 'data', bytes }));
    socket.once('close', () => finish({ kind: 'closed' }));
    socket.once('error', () => undefined);
    if (ping) socket.once('connect', () => socket.write('PING\r\n'));
  });
}

/**
 * The diagnosis of a connection that does not get through: a single node's port, or a Cluster's
 * state asked of its startup nodes (a ready Cluster given to the library has no URL to read them
 * from). Sentinel: none.
 */
export function diagnose(connection: RedisConnection): Promise<SvcnodeError | undefined> {
  if (isCluster(connection)) return diagnoseCluster(startupSeeds(connection), connection.options.redisOptions);
  if (connection.options.sentinels) return Promise.resolve(undefined);
  const { host, port, tls } = connection.options;
  return host !== undefined && port !== undefined ? diagnoseRedisPort(host, port, tls !== undefined) : Promise.resolve(undefined);
}

/** A Cluster's startup nodes as ioredis accepts them (a port, "host:port", a redis:// URL, or {host, port}), as host and port. */
function startupSeeds(cluster: Cluster): { host: string; port: number }[] {
  const nodes = (cluster as unknown as { startupNodes?: unknown[] }).startupNodes ?? [];
  return nodes.flatMap((node) => {
    if (typeof node === 'number') return [{ host: '127.0.0.1', port: node }];
    if (typeof node === 'string') {
      if (/^\d+$/.test(node)) return [{ host: '127.0.0.1', port: Number(node) }];
      try {
        const url = new URL(node.includes('://') ? node : `redis://${node}`);
        return [{ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) }];
      } catch {
        return [];
      }
    }
    const { host, port } = (node ?? {}) as { host?: string; port?: number };
    return [{ host: host ?? '127.0.0.1', port: port ?? 6379 }];
  });
}

/**
 * Why a Redis Cluster never becomes ready although its nodes answer: they report cluster_state:fail
 * (slots no master serves), and ioredis only retries, silently. Asks the seeds one by one; undefined
 * when none answers or one reports the cluster ok.
 */
export async function diagnoseCluster(seeds: { host: string; port: number }[], redisOptions: RedisOptions = {}): Promise<SvcnodeError | undefined> {
  for (const { host, port } of seeds) {
    const node = new Redis({ ...redisOptions, host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: DIAGNOSE_MS });
    node.on('error', () => undefined);
    try {
      const info = String(await withTimeout(node.connect().then(() => node.call('CLUSTER', 'INFO')), DIAGNOSE_MS, () => new Error('CLUSTER INFO timed out')));
      if (!/^cluster_state:fail\b/m.test(info)) return undefined;
      const ok = Number(/^cluster_slots_ok:(\d+)/m.exec(info)?.[1] ?? 0);
      return new UnavailableError('SVCNODE_REDIS_CLUSTER_DOWN', `the Redis Cluster is down: ${host}:${port} answers, but reports cluster_state:fail (${16_384 - ok} of 16384 slots have no working master)`, {
        hint: 'every slot needs a master that is up: bring back the failed master (or let its replica take over), or assign the uncovered slots (redis-cli --cluster check HOST:PORT shows them, redis-cli --cluster fix assigns them); the worker starts once the cluster reports cluster_state:ok',
      });
    } catch {
      // this seed does not answer: ask the next one
    } finally {
      node.disconnect();
    }
  }
  return undefined;
}
