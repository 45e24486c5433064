import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { LoadedProfile } from '../pki/types.js';

/**
 * Where certificate-session tokens are kept between calls. Keys name (profile version, endpoint, reuse time);
 * implementations never store a token in clear text outside the process.
 */
export interface TokenCache {
  get(key: string, profile: LoadedProfile): Promise<string | undefined>;
  set(key: string, token: string, ttlMs: number, profile: LoadedProfile): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * Take the right to fetch the token of `key` for `ttlMs`: a release function, or undefined when
   * another process holds it. Only shared caches need it (one token request across processes).
   */
  lock?(key: string, ttlMs: number): Promise<(() => Promise<void>) | undefined>;
}

/** The cache key of a profile's token at one endpoint; changes when the profile's material does. */
export function tokenKey(profile: LoadedProfile, url: string): string {
  return createHash('sha256').update(`${profile.name}\0${profile.version}\0${url}`).digest('hex');
}

const sealingKeys = new WeakMap<LoadedProfile, Buffer>();

/** A key only holders of the profile's private key can derive, so a shared store sees ciphertext only. */
function sealingKey(profile: LoadedProfile): Buffer {
  let key = sealingKeys.get(profile);
  if (!key) {
    const secret = profile.client?.key.export({ type: 'pkcs8', format: 'der' });
    if (!secret) throw new Error('certificate-session tokens need a client certificate');
    key = Buffer.from(hkdfSync('sha256', secret, 'svcnode token cache v1', profile.version, 32));
    sealingKeys.set(profile, key);
  }
  return key;
}

/** AES-256-GCM seal of a token: base64(iv | tag | ciphertext). */
export function sealToken(profile: LoadedProfile, key: string, token: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', sealingKey(profile), iv).setAAD(Buffer.from(key));
  const data = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), data]).toString('base64');
}

/** Open a sealed token; undefined when it was sealed for other material or tampered with. */
export function openToken(profile: LoadedProfile, key: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', sealingKey(profile), raw.subarray(0, 12)).setAAD(Buffer.from(key));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** In-process token cache (dry-run, single worker without Redis). */
export class MemoryTokenCache implements TokenCache {
  private readonly entries = new Map<string, { token: string; expires: number }>();

  get(key: string): Promise<string | undefined> {
    const entry = this.entries.get(key);
    if (entry && entry.expires > Date.now()) return Promise.resolve(entry.token);
    this.entries.delete(key);
    return Promise.resolve(undefined);
  }

  set(key: string, token: string, ttlMs: number): Promise<void> {
    this.entries.set(key, { token, expires: Date.now() + ttlMs });
    return Promise.resolve();
  }

  delete(key: string): Promise<void> {
    this.entries.delete(key);
    return Promise.resolve();
  }
}
