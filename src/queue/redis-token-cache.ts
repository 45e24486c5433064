import { randomUUID } from 'node:crypto';
import type { RedisConnection } from './connection.js';
import { openToken, sealToken, type TokenCache } from '../invoke/token-cache.js';
import type { LoadedProfile } from '../pki/types.js';

/** Delete the lock only while it is still ours (it may have expired and been taken by another process). */
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

/**
 * Certificate-session and OAuth 2.0 tokens shared by every worker process through Redis. Values are sealed
 * with a key derived from the profile's private key: Redis only ever holds ciphertext.
 */
export class RedisTokenCache implements TokenCache {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix = 'svcnode',
  ) {}

  private key(key: string): string {
    return `${this.prefix}:tokens:${key}`;
  }

  async get(key: string, profile: LoadedProfile): Promise<string | undefined> {
    const sealed = await this.redis.get(this.key(key));
    return sealed === null ? undefined : openToken(profile, key, sealed);
  }

  async set(key: string, token: string, ttlMs: number, profile: LoadedProfile): Promise<void> {
    await this.redis.set(this.key(key), sealToken(profile, key, token), 'PX', boundedTtl(ttlMs));
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.key(key));
  }

  async lock(key: string, ttlMs: number): Promise<(() => Promise<void>) | undefined> {
    const name = `${this.key(key)}:lock`;
    const owner = randomUUID();
    if ((await this.redis.set(name, owner, 'PX', boundedTtl(ttlMs), 'NX')) !== 'OK') return undefined;
    return async () => {
      await this.redis.eval(RELEASE, 1, name, owner);
    };
  }
}

/** Longest a cached token lives in Redis: a lifetime beyond Redis' range must never fail a job. */
const MAX_TTL_MS = 7 * 86_400_000;

/** A PX value Redis takes: 1 ms to a week, whole milliseconds (NaN and Infinity included). */
function boundedTtl(ttlMs: number): number {
  return Number.isFinite(ttlMs) ? Math.min(MAX_TTL_MS, Math.max(1, Math.round(ttlMs))) : MAX_TTL_MS;
}
