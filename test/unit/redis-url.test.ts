import { describe, expect, it } from 'vitest';
import { InvalidInputError, UnavailableError } from '../../src/errors.js';
import { parseRedisUrl, redactRedisUrl, redisOptions, resolvePrefix, svcnodeKeyPrefix } from '../../src/queue/connection.js';
import { knownRedisError } from '../../src/queue/redis-errors.js';

const usageError = (f: () => unknown): InvalidInputError => {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).code).toBe('SVCNODE_USAGE');
    return error as InvalidInputError;
  }
  throw new Error('expected an InvalidInputError');
};

describe('Redis URLs', () => {
  it('reads host, port, db and credentials', () => {
    expect(redisOptions('redis://bot:p%40ss@cache.internal:6380/2')).toEqual({ host: 'cache.internal', port: 6380, db: 2, username: 'bot', password: 'p@ss' });
    expect(redisOptions('redis://127.0.0.1')).toEqual({ host: '127.0.0.1', port: 6379, db: 0 });
  });

  it('turns on TLS for rediss://', () => {
    expect(redisOptions('rediss://cache:6390')).toMatchObject({ host: 'cache', port: 6390, tls: {} });
  });

  it('reads Sentinel addresses and the master name', () => {
    expect(redisOptions('redis+sentinel://:secret@s1:26379,s2:26380/queue-master')).toEqual({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'queue-master',
      failoverDetector: true,
      password: 'secret',
    });
  });

  it('requires the Sentinel master name instead of guessing one', () => {
    expect(usageError(() => parseRedisUrl('redis+sentinel://s1:26379,s2:26379')).hint).toContain('MASTER_NAME');
    usageError(() => parseRedisUrl('redis+sentinel://s1:26379/'));
  });

  it('reads the sentinels\' password from the environment variable the URL names, never inline', () => {
    const target = parseRedisUrl('redis+sentinel://s1:26379/q?sentinelPasswordEnv=SENTINEL_PASS', { SENTINEL_PASS: 'from-env' });
    expect(target).toEqual({ kind: 'sentinel', options: { sentinels: [{ host: 's1', port: 26379 }], name: 'q', failoverDetector: true, sentinelPassword: 'from-env' } });
    const unset = usageError(() => parseRedisUrl('redis+sentinel://s1:26379/q?sentinelPasswordEnv=SENTINEL_PASS', {}));
    expect(unset.message).toContain('SENTINEL_PASS');
    const inline = usageError(() => parseRedisUrl('redis+sentinel://s1:26379/q?sentinelPassword=hunter2', {}));
    expect(`${inline.message} ${inline.hint}`).not.toContain('hunter2');
    expect(inline.hint).toContain('sentinelPasswordEnv');
  });

  it('reads Redis Cluster seed lists, with credentials and TLS', () => {
    expect(parseRedisUrl('redis+cluster://a:7000,b:7001,c')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
        { host: 'c', port: 6379 },
      ],
      options: { redisOptions: {} },
    });
    expect(parseRedisUrl('rediss+cluster://bot:s%3Acret@10.0.0.1:7000')).toEqual({
      kind: 'cluster',
      nodes: [{ host: '10.0.0.1', port: 7000 }],
      options: { redisOptions: { username: 'bot', password: 's:cret', tls: {} } },
    });
  });

  it('refuses an empty entry in a host list instead of seeding 127.0.0.1:6379 nobody wrote', () => {
    for (const url of ['redis+cluster://u:topsecret@h:1,', 'redis+cluster://,h:1', 'redis+sentinel://s1:26379,,s2:26379/main']) {
      const error = usageError(() => parseRedisUrl(url));
      expect(error.message).toMatch(/^empty entry in the host list of Redis URL/);
      expect(error.message).not.toContain('topsecret');
    }
    // A lone URL without a host keeps meaning the local default.
    expect(parseRedisUrl('redis://:6380')).toMatchObject({ kind: 'single', options: { host: '127.0.0.1', port: 6380 } });
  });

  it('points a host list on redis:// to the cluster and sentinel forms', () => {
    expect(usageError(() => parseRedisUrl('redis://h1:7000,h2:7001')).hint).toContain('redis+cluster://');
  });

  it('rejects other schemes and garbage without echoing credentials', () => {
    usageError(() => parseRedisUrl('http://cache:6379'));
    for (const url of ['redis://user:topsecret@[bad', 'redis+cluster://user:topsecret@h:99999', 'redis://user:topsecret@h:1/x']) {
      const error = usageError(() => parseRedisUrl(url));
      expect(`${error.message} ${error.hint}`).not.toContain('topsecret');
    }
  });
});

describe('the database in the query, as redis-py reads it', () => {
  it('reads ?db=N as /N (before, it was served from database 0)', () => {
    expect(redisOptions('redis://127.0.0.1:6379?db=8')).toMatchObject({ host: '127.0.0.1', port: 6379, db: 8 });
    expect(redisOptions('rediss://cache:6390/?db=3')).toMatchObject({ db: 3, tls: {} });
    expect(redisOptions('redis://cache:6379/3?db=3')).toMatchObject({ db: 3 });
    expect(redisOptions('redis://cache:6379/03')).toMatchObject({ db: 3 });
    expect(redisOptions('redis+sentinel://s1:26379/q?db=2')).toMatchObject({ name: 'q', db: 2 });
    expect(parseRedisUrl('redis+cluster://a:7000?db=0')).toMatchObject({ kind: 'cluster' });
  });

  it('refuses a path and a ?db= that disagree, naming both', () => {
    const error = usageError(() => parseRedisUrl('redis://cache:6379/3?db=5'));
    expect(error.message).toContain('/3');
    expect(error.message).toContain('?db=5');
    usageError(() => parseRedisUrl('redis://cache:6379?db=1&db=2'));
  });

  it('checks ?db= as it checks /N: digits only, within what a server can have', () => {
    for (const url of ['redis://h?db=', 'redis://h?db=-1', 'redis://h?db=abc', 'redis://h?db=1e1', 'redis://h?db=4294967296', 'redis://h/1e1', 'redis://h/+3', 'redis://h/99999999999']) {
      usageError(() => parseRedisUrl(url));
    }
    // A number the server may lack is for the server to refuse (SVCNODE_REDIS_DB), as /99 is.
    expect(redisOptions('redis://h?db=99')).toMatchObject({ db: 99 });
  });

  it('refuses ?db= other than 0 on a cluster, which has only database 0', () => {
    expect(usageError(() => parseRedisUrl('redis+cluster://a:7000,b:7001?db=3')).hint).toContain('only database 0');
  });

  it('refuses a query parameter it does not read, naming it and listing the supported ones, never showing its value', () => {
    const cases: [string, string, string[]][] = [
      ['redis://h:6379?password=hunter2', 'password', ['?db=']],
      ['rediss://h:6379/1?ssl_cert_reqs=none', 'ssl_cert_reqs', ['?db=']],
      ['redis+cluster://a:7000?readFrom=replica', 'readFrom', ['?db=']],
      ['redis+sentinel://s1:26379/q?sentinelPasswordEnv=X&role=slave', 'role', ['?sentinelPasswordEnv=', '?sentinelUsernameEnv=', '?db=']],
    ];
    for (const [url, name, supported] of cases) {
      const error = usageError(() => parseRedisUrl(url, { X: 'x' }));
      expect(error.message).toContain(`"${name}"`);
      for (const p of supported) expect(error.hint).toContain(p);
      expect(`${error.message} ${error.hint}`).not.toContain('hunter2');
    }
  });
});

describe('Redis URL passwords with reserved characters', () => {
  it('masks everything up to the last @ and refuses an unencoded @ without showing any part of the password', () => {
    const url = 'redis://app:Tr0ub4dor@Horse99@127.0.0.1:24617';
    expect(redactRedisUrl(url)).toBe('redis://***@127.0.0.1:24617');
    const error = usageError(() => parseRedisUrl(url));
    expect(`${error.message} ${error.hint}`).not.toMatch(/Tr0ub4dor|Horse99/);
    expect(error.message).toContain('redis://***@127.0.0.1:24617');
    expect(error.hint).toContain('@ as %40');
  });

  it('refuses a % not followed by two hex digits as a usage error naming the URL, never "URI malformed"', () => {
    const error = usageError(() => parseRedisUrl('redis://app:50%off@127.0.0.1:6379'));
    expect(error.message).toContain('redis://***@127.0.0.1:6379');
    expect(`${error.message} ${error.hint}`).not.toContain('50%off');
    expect(error.hint).toContain('% as %25');
    usageError(() => parseRedisUrl('redis+sentinel://s1:26379/master%zz'));
  });

  it('reads percent-encoded @ and %, and a / in the password', () => {
    expect(redisOptions('redis://app:50%25off%40home@cache:6379')).toMatchObject({ username: 'app', password: '50%off@home' });
    expect(redisOptions('redis://app:pa/ss?x@cache:6379/1')).toMatchObject({ host: 'cache', db: 1, password: 'pa/ss?x' });
    expect(redactRedisUrl('redis://app:pa/ss?x@cache:6379/1')).toBe('redis://***@cache:6379/1');
  });
});

describe('queue prefix', () => {
  it('defaults to {svcnode} on a cluster and to BullMQ\'s own elsewhere', () => {
    expect(resolvePrefix(true, undefined)).toBe('{svcnode}');
    expect(resolvePrefix(false, undefined)).toBeUndefined();
    expect(resolvePrefix(true, 'app:{q1}')).toBe('app:{q1}');
    expect(resolvePrefix(false, 'plain')).toBe('plain');
  });

  it('keeps svcnode\'s own keys at svcnode:* under BullMQ\'s default prefix, given or not, and beside any other prefix', () => {
    expect(svcnodeKeyPrefix(undefined)).toBe('svcnode');
    expect(svcnodeKeyPrefix('bull')).toBe('svcnode');
    expect(svcnodeKeyPrefix('myp')).toBe('myp:svcnode');
    // The cluster default and the same prefix given explicitly agree.
    expect(svcnodeKeyPrefix(resolvePrefix(true, undefined))).toBe('{svcnode}:svcnode');
    expect(svcnodeKeyPrefix(resolvePrefix(true, '{svcnode}'))).toBe('{svcnode}:svcnode');
  });

  it('refuses a cluster prefix without a hash tag, with the fix in the hint', () => {
    for (const prefix of ['svcnode', 'bull', '{}x']) expect(usageError(() => resolvePrefix(true, prefix)).hint).toContain(`'{`);
  });
});

describe('Redis replies that are configuration mistakes', () => {
  it.each([
    ['WRONGPASS invalid username-password pair or user is disabled.', 'SVCNODE_REDIS_AUTH', UnavailableError, 'password'],
    ['NOAUTH Authentication required.', 'SVCNODE_REDIS_AUTH', UnavailableError, 'password'],
    ['MOVED 5000 127.0.0.1:7001', 'SVCNODE_REDIS_WRONG_NODE', UnavailableError, 'redis+cluster://'],
    ["CROSSSLOT Keys in request don't hash to the same slot", 'SVCNODE_REDIS_CROSSSLOT', InvalidInputError, "--prefix '{svcnode}'"],
  ])('%s → %s', (reply, code, kind, hint) => {
    const error = knownRedisError(new Error(reply));
    expect(error).toBeInstanceOf(kind);
    expect(error?.code).toBe(code);
    expect(error?.hint).toContain(hint);
  });

  it('leaves outages alone', () => {
    expect(knownRedisError(new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toBeUndefined();
  });
});
