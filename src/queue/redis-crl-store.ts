import { createHash } from 'node:crypto';
import type { RedisConnection } from './connection.js';
import type { CrlStore, StoredCrl } from '../pki/crl-store.js';

/** Redis answers slower than this are treated as "not shared": the worker then downloads alone. */
const REDIS_BUDGET_MS = 2_000;

function within<T>(promise: Promise<T>, fallback: T): Promise<T> {
  return Promise.race([promise.catch(() => fallback), new Promise<T>((resolve) => setTimeout(() => resolve(fallback), REDIS_BUDGET_MS).unref())]);
}

/**
 * Downloaded CRLs shared by every worker process through Redis, with a short download claim
 * (SET NX PX) so one process of the fleet downloads while the others wait for its copy.
 */
export class RedisCrlStore implements CrlStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix = 'svcnode',
  ) {}

  private key(url: string): string {
    return `${this.prefix}:crl:${createHash('sha256').update(url).digest('hex').slice(0, 32)}`;
  }

  async get(url: string): Promise<StoredCrl | undefined> {
    const fields = await within(this.redis.hgetall(this.key(url)), {});
    if (!fields.bytes || !fields.fetchedAt) return undefined;
    return { bytes: Buffer.from(fields.bytes, 'base64'), fetchedAt: Number(fields.fetchedAt) };
  }

  async put(url: string, crl: StoredCrl, ttlMs: number): Promise<void> {
    const key = this.key(url);
    const written = this.redis.multi().hset(key, { url, bytes: crl.bytes.toString('base64'), fetchedAt: String(crl.fetchedAt) }).pexpire(key, Math.max(1, Math.ceil(ttlMs))).exec();
    await within(written, null);
  }

  async claim(url: string, ms: number): Promise<boolean> {
    return (await within(this.redis.set(`${this.key(url)}:claim`, String(process.pid), 'PX', ms, 'NX'), 'OK')) === 'OK';
  }

  async release(url: string): Promise<void> {
    await within(this.redis.del(`${this.key(url)}:claim`), 0);
  }
}
