/** A CRL downloaded from a URL, as shared between processes. CRLs are public: no secret here. */
export interface StoredCrl {
  bytes: Buffer;
  /** Epoch ms of the download. */
  fetchedAt: number;
}

/**
 * Where downloaded CRLs are shared. The worker uses Redis, so a fleet downloads each CRL once
 * per refresh; the dry-run keeps them in memory.
 */
export interface CrlStore {
  get(url: string): Promise<StoredCrl | undefined>;
  /** Share a download for `ttlMs` (until it is due for refresh): a stale or corrupt copy does not outlive it. */
  put(url: string, crl: StoredCrl, ttlMs: number): Promise<void>;
  /** Take the right to download `url` for `ms`; false when another process holds it. */
  claim(url: string, ms: number): Promise<boolean>;
  /** Give the claim back once the download is stored (or failed). */
  release(url: string): Promise<void>;
}

/** A store within one process. */
export class MemoryCrlStore implements CrlStore {
  private readonly crls = new Map<string, StoredCrl>();
  private readonly claims = new Map<string, number>();

  get(url: string): Promise<StoredCrl | undefined> {
    return Promise.resolve(this.crls.get(url));
  }

  put(url: string, crl: StoredCrl, _ttlMs: number): Promise<void> {
    this.crls.set(url, crl);
    return Promise.resolve();
  }

  claim(url: string, ms: number): Promise<boolean> {
    const until = this.claims.get(url) ?? 0;
    if (until > Date.now()) return Promise.resolve(false);
    this.claims.set(url, Date.now() + ms);
    return Promise.resolve(true);
  }

  release(url: string): Promise<void> {
    this.claims.delete(url);
    return Promise.resolve();
  }
}
