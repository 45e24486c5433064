import type { ClusterOptions, RedisOptions } from 'ioredis';
import { InvalidInputError } from '../errors.js';
import { bareHostname } from '../tls/endpoint.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Where the queue lives, parsed from a Redis URL: one node, Sentinel, or a Redis Cluster. */
export type RedisTarget =
  | { kind: 'single'; options: RedisOptions }
  | { kind: 'sentinel'; options: RedisOptions }
  | { kind: 'cluster'; nodes: { host: string; port: number }[]; options: ClusterOptions };

const FORMS = 'redis://[user:pass@]host:port[/db][?db=N], rediss://…, redis+sentinel://[user:pass@]h:p,h:p/MASTER_NAME[?sentinelPasswordEnv=VAR&db=N], redis+cluster://[user:pass@]h:p,h:p[,…] or rediss+cluster://…';

/**
 * The URL with its userinfo masked, for messages: everything between `scheme://` and the LAST `@`,
 * so a password holding an unencoded `@`, `/` or `?` is never partly shown.
 */
export function redactRedisUrl(url: string): string {
  const at = url.lastIndexOf('@');
  const start = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0].length ?? 0;
  return at < start ? url : `${url.slice(0, start)}***${url.slice(at)}`;
}

function usage(message: string, hint: string = `use ${FORMS}`): InvalidInputError {
  return new InvalidInputError('SVCNODE_USAGE', message, { hint });
}

const ENCODE_HINT = 'percent-encode these characters in the user and password: % as %25, @ as %40, : in the user as %3A (e.g. redis://app:50%25off%40home@host:6379)';

/** Percent-decode `text` (`what` of `url`); a stray `%` is a usage error that never shows the text. */
function decoded(text: string, what: string, url: string, hint: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw usage(`the ${what} in Redis URL "${redactRedisUrl(url)}" holds a "%" that is not followed by two hex digits`, hint);
  }
}

/** One part of the userinfo, percent-decoded (undefined when empty). */
function decodePart(part: string | undefined, url: string): string | undefined {
  return part ? decoded(part, 'user or password', url, ENCODE_HINT) : undefined;
}

/**
 * `scheme://[user[:pass]@]host:port[,host:port…][/path][?query]`: the WHATWG URL parser refuses a
 * host list, so multi-host forms are split by hand. The userinfo ends at the last `@`.
 */
function split(url: string): { scheme: string; user?: string; pass?: string; hosts: { host: string; port: number }[]; path: string; query: URLSearchParams } {
  const outer = /^([a-z+]+):\/\/(.*)$/s.exec(url);
  const at = outer?.[2]?.lastIndexOf('@') ?? -1;
  const userinfo = at >= 0 ? outer?.[2]?.slice(0, at) : undefined;
  const match = outer && /^([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(outer[2]?.slice(at + 1) ?? '');
  if (!outer || !match) throw usage(`invalid Redis URL "${redactRedisUrl(url)}"`);
  if (userinfo?.includes('@')) throw usage(`the user or password in Redis URL "${redactRedisUrl(url)}" holds an unencoded "@"`, ENCODE_HINT);
  const colon = userinfo?.indexOf(':') ?? -1;
  const user = decodePart(colon >= 0 ? userinfo?.slice(0, colon) : userinfo, url);
  const pass = decodePart(colon >= 0 ? userinfo?.slice(colon + 1) : undefined, url);
  const [, hostList = '', path = '', query = ''] = match;
  const scheme = outer[1] ?? '';
  const defaultPort = scheme === 'redis+sentinel' ? 26379 : 6379;
  const list = hostList.split(',');
  const hosts = list.map((h) => {
    // An empty entry (a stray comma) would otherwise be read as 127.0.0.1:6379, a seed nobody wrote.
    if (h === '' && list.length > 1) throw usage(`empty entry in the host list of Redis URL "${redactRedisUrl(url)}"`, 'remove the stray comma: redis+cluster://h:p,h:p');
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]*)(?::(\d+))?$/.exec(h);
    const port = Number(m?.[2] ?? defaultPort);
    if (!m || !Number.isInteger(port) || port <= 0 || port > 65_535) throw usage(`invalid host:port "${h}" in Redis URL "${redactRedisUrl(url)}"`);
    return { host: bareHostname(m[1] ?? '') || '127.0.0.1', port };
  });
  return { scheme, ...(user ? { user } : {}), ...(pass ? { pass } : {}), hosts, path, query: new URLSearchParams(query) };
}

/** The query parameters each scheme reads; any other is refused rather than ignored (redis-py, for one, reads `?db=`). */
const QUERY_PARAMETERS: Record<string, readonly string[]> = {
  redis: ['db'],
  rediss: ['db'],
  'redis+sentinel': ['sentinelPasswordEnv', 'sentinelUsernameEnv', 'db'],
  'redis+cluster': ['db'],
  'rediss+cluster': ['db'],
};

/** A parameter name as a message shows it: quoted (control characters escaped) and cut short. */
function shown(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

/** Refuse a query parameter the scheme does not read, naming it (never its value, which may be a secret). */
function checkQuery(scheme: string, query: URLSearchParams): void {
  const supported = QUERY_PARAMETERS[scheme] ?? [];
  for (const name of new Set(query.keys())) {
    if (supported.includes(name)) continue;
    throw usage(`the Redis URL has a query parameter svcnode does not support: ${shown(name)}`, `drop it: ${scheme}:// takes only ${supported.map((p) => `?${p}=`).join(', ')}`);
  }
}

/** Largest database number a Redis server can have (its 'databases' setting is an int). */
const MAX_DB = 2_147_483_647;

/** A database number of the URL, digits only as Redis's SELECT takes them. */
function databaseNumber(text: string, where: string): number {
  const db = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(db <= MAX_DB)) throw usage(`invalid database number ${shown(text)} in the ${where} of the Redis URL`, "write the database as digits, /N or ?db=N (0 to 15 on a default server), or leave it out for database 0");
  return db;
}

/**
 * The database a URL selects: `/N` or `?db=N` (as redis-py reads it), 0 when neither is given.
 * Two numbers that disagree are refused: redis-py would take `?db=`, another client the path.
 */
function database(path: string | undefined, query: URLSearchParams): number {
  const fromPath = path ? databaseNumber(path, 'path') : undefined;
  const values = [...new Set(query.getAll('db'))].map((v) => databaseNumber(v, '?db= parameter'));
  const all = [...new Set([...(fromPath === undefined ? [] : [fromPath]), ...values])];
  if (all.length > 1) throw usage(`the Redis URL selects two databases (${fromPath === undefined ? '' : `/${fromPath} and `}${values.map((v) => `?db=${v}`).join(' and ')})`, 'write the database once, as /N or as ?db=N');
  return all[0] ?? 0;
}

/** Read a secret from the variable a URL names (secrets are never written inline in a URL). */
function fromEnv(env: NodeJS.ProcessEnv, variable: string, what: string): string {
  const value = env[variable];
  if (!value) throw usage(`${what}: environment variable ${variable} is not set`, `export ${variable}, or drop the parameter if the sentinels need no password`);
  return value;
}

/**
 * Parse a Redis URL (see the README's "Redis URLs"). `env` supplies secrets named by query
 * parameters such as `?sentinelPasswordEnv=VAR`.
 */
export function parseRedisUrl(url: string, env: NodeJS.ProcessEnv = process.env): RedisTarget {
  const parts = split(url.trim());
  const auth = { ...(parts.user ? { username: parts.user } : {}), ...(parts.pass ? { password: parts.pass } : {}) };
  const [first] = parts.hosts;
  switch (parts.scheme) {
    case 'redis':
    case 'rediss': {
      checkQuery(parts.scheme, parts.query);
      if (parts.hosts.length !== 1 || !first) throw usage(`Redis URL "${redactRedisUrl(url)}" lists several hosts`, 'use redis+cluster://h:p,h:p for a Redis Cluster or redis+sentinel://h:p,h:p/MASTER_NAME for Sentinel');
      const db = database(parts.path.slice(1), parts.query);
      return { kind: 'single', options: { host: first.host, port: first.port, db, ...auth, ...(parts.scheme === 'rediss' ? { tls: {} } : {}) } };
    }
    case 'redis+sentinel': {
      const name = decoded(parts.path.slice(1), 'master name', url, 'write % in the master name as %25');
      if (!name) throw usage('the Redis Sentinel URL names no master', 'add the master name the sentinels monitor: redis+sentinel://h:26379,h:26380/MASTER_NAME');
      if (parts.query.has('sentinelPassword')) throw usage('a sentinel password is never written in the URL', 'put it in an environment variable and name it: ?sentinelPasswordEnv=VAR');
      checkQuery(parts.scheme, parts.query);
      const passwordEnv = parts.query.get('sentinelPasswordEnv');
      const usernameEnv = parts.query.get('sentinelUsernameEnv');
      const db = database(undefined, parts.query);
      return {
        kind: 'sentinel',
        options: {
          sentinels: parts.hosts,
          name,
          ...(db ? { db } : {}),
          // Follow a promotion at once (the sentinels' +switch-master): a planned failover leaves the
          // old master up and writable until the sentinels demote it, and every write it takes in
          // between (enqueued jobs, their Results) is erased by the resync that follows.
          failoverDetector: true,
          ...auth,
          ...(passwordEnv ? { sentinelPassword: fromEnv(env, passwordEnv, 'sentinelPasswordEnv') } : {}),
          ...(usernameEnv ? { sentinelUsername: fromEnv(env, usernameEnv, 'sentinelUsernameEnv') } : {}),
        },
      };
    }
    case 'redis+cluster':
    case 'rediss+cluster': {
      checkQuery(parts.scheme, parts.query);
      if (parts.path && parts.path !== '/') throw usage('a Redis Cluster URL has no database or path', 'Redis Cluster has only database 0: drop the /… part');
      if (database(undefined, parts.query) !== 0) throw usage('a Redis Cluster URL selects a database other than 0 (?db=)', 'Redis Cluster has only database 0: drop ?db=');
      const redisOptions: RedisOptions = { ...auth, ...(parts.scheme === 'rediss+cluster' ? { tls: {} } : {}) };
      return { kind: 'cluster', nodes: parts.hosts, options: { redisOptions } };
    }
    default:
      throw usage(`unsupported Redis URL scheme "${parts.scheme}:"`);
  }
}

/** A hash tag: `{…}` with at least one character inside, which pins every queue key to one slot. */
export function hasHashTag(prefix: string): boolean {
  return /\{[^}]+\}/.test(prefix);
}

/** Default BullMQ prefix on a Redis Cluster. */
export const CLUSTER_PREFIX = '{svcnode}';

/** BullMQ's own default prefix, used off a cluster when none is given. */
export const BULLMQ_PREFIX = 'bull';

/**
 * Where svcnode keeps its own keys (failure records, the token cache, CRL copies) beside a queue
 * prefix: `svcnode` under BullMQ's default, given (`--prefix bull`) or not, so both write the same
 * keys; `PREFIX:svcnode` under any other (`{svcnode}:svcnode` with the cluster default).
 */
export function svcnodeKeyPrefix(prefix: string | undefined): string {
  return prefix === undefined || prefix === '' || prefix === BULLMQ_PREFIX ? 'svcnode' : `${prefix}:svcnode`;
}

/**
 * The queue prefix to use: the given one, else `{svcnode}` on a cluster and BullMQ's own elsewhere
 * (undefined). On a cluster a prefix without a hash tag is refused: BullMQ's scripts touch several
 * keys at once and fail with CROSSSLOT unless they share a slot.
 */
export function resolvePrefix(cluster: boolean, prefix: string | undefined): string | undefined {
  if (!cluster) return prefix;
  if (prefix === undefined) return CLUSTER_PREFIX;
  if (!hasHashTag(prefix)) {
    throw new InvalidInputError('SVCNODE_USAGE', `prefix "${prefix}" has no hash tag, which Redis Cluster needs (the queue's keys must share one slot)`, {
      hint: `use --prefix '{${prefix}}' (or leave --prefix out for the default '${CLUSTER_PREFIX}'), the same on workers and producers`,
    });
  }
  return prefix;
}
