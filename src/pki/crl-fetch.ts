import type { X509Certificate } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidInputError, errorMessage } from '../errors.js';
import { parseCrl, type LoadedCrl } from './crl.js';
import { MemoryCrlStore, type CrlStore } from './crl-store.js';

/** Downloading CRLs from http(s) URLs; tunables in one place. */
export const CRL_FETCH_DEFAULTS = {
  /** A download slower than this fails. */
  timeoutMs: 10_000,
  /** Larger CRLs are refused. */
  maxBytes: 16 * 1024 * 1024,
  /** Refresh this long before nextUpdate (capped at a tenth of the CRL's validity). */
  refreshMarginMs: 3_600_000,
  /** Never download the same URL more often than this, whatever nextUpdate says. */
  minIntervalMs: 60_000,
  /** CRLs without nextUpdate are downloaded again after this long. */
  maxAgeMs: 86_400_000,
  /** How long a process waits for another one's download before downloading itself. */
  waitMs: 5_000,
} as const;

/** True for trust.crl entries that are URLs rather than files. */
export function isCrlUrl(entry: string): boolean {
  return /^https?:\/\//i.test(entry);
}

/** When a downloaded CRL should be downloaded again: before nextUpdate, never sooner than minIntervalMs. */
export function refreshAt(crl: LoadedCrl, fetchedAt: number): number {
  const earliest = fetchedAt + CRL_FETCH_DEFAULTS.minIntervalMs;
  if (!crl.nextUpdate) return Math.max(earliest, fetchedAt + CRL_FETCH_DEFAULTS.maxAgeMs);
  const validity = crl.nextUpdate.getTime() - crl.thisUpdate.getTime();
  return Math.max(earliest, crl.nextUpdate.getTime() - Math.min(CRL_FETCH_DEFAULTS.refreshMarginMs, validity / 10));
}

/**
 * The body of `url`, read as a stream: a Content-Length above maxBytes is refused before any body
 * byte is read, and the request is aborted as soon as the bytes read pass maxBytes, so a huge or
 * endless answer never sits in memory.
 */
export async function download(url: string, maxBytes: number = CRL_FETCH_DEFAULTS.maxBytes, stop?: AbortSignal, timeoutMs: number = CRL_FETCH_DEFAULTS.timeoutMs): Promise<Buffer> {
  // One controller with a plain timer: on Node 20 a signal made by AbortSignal.any can be garbage
  // collected while fetch waits, and then its timeout never fires (a silent server held
  // `certs status` for undici's 300 s header timeout).
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no complete answer within ${timeoutMs / 1000} s`)), timeoutMs);
  const onStop = (): void => controller.abort(stop?.reason);
  if (stop?.aborted) onStop();
  stop?.addEventListener('abort', onStop, { once: true });
  try {
    return await read(url, maxBytes, controller);
  } catch (error) {
    // An abort surfaces as fetch's AbortError; the reason says which limit it was.
    throw controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : error;
  } finally {
    clearTimeout(timer);
    stop?.removeEventListener('abort', onStop);
  }
}

async function read(url: string, maxBytes: number, controller: AbortController): Promise<Buffer> {
  const response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
  const refuse = (message: string): Error => {
    const error = new Error(message);
    controller.abort(error);
    return error;
  };
  if (!response.ok) throw refuse(`HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length') ?? '');
  if (declared > maxBytes) throw refuse(`larger than ${maxBytes} bytes (Content-Length ${declared})`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      const error = refuse(`larger than ${maxBytes} bytes`);
      await reader.cancel().catch(() => undefined);
      throw error;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

/** A CRL from a URL, with when it was downloaded. */
export interface FetchedCrl {
  crl: LoadedCrl;
  bytes: Buffer;
  fetchedAt: number;
  /** Set when the shared copy could not be used (corrupt, foreign or mistimed) and was replaced by a download. */
  storedCopyProblem?: string;
  /** Set when this copy was due for refresh and the refresh failed: why (SVCNODE_CRL_UNAVAILABLE); the copy stays in use. */
  refreshProblem?: InvalidInputError;
}

/**
 * CRLs from URLs, downloaded at profile load (never on the call path), kept in memory and shared
 * through a CrlStore: the first process to claim a URL downloads it, the others take its copy.
 * A shared copy that does not parse is ignored and overwritten: it is never blamed on the URL.
 */
export class CrlFetcher {
  private readonly memory = new Map<string, FetchedCrl>();
  /** When each URL last failed to give a CRL (none known before either), until one is had. */
  private readonly failedAt = new Map<string, number>();
  /** Downloads made by this process, per URL (for tests and logs). */
  readonly downloads = new Map<string, number>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly store: CrlStore = new MemoryCrlStore(),
    private readonly now: () => number = Date.now,
  ) {}

  /** Abort downloads in flight and refuse new ones: the process is stopping (a signal during start-up, shutdown). */
  stop(): void {
    this.stopping.abort();
  }

  /** The CRL of `url` this process holds now (the latest download, whichever profile made it). */
  held(url: string): LoadedCrl | undefined {
    return this.memory.get(url)?.crl;
  }

  /** Whether a loaded URL CRL is due for refresh: past its refresh point, and not tried in vain within minIntervalMs. */
  due(crl: LoadedCrl): boolean {
    const known = this.memory.get(crl.source);
    return known !== undefined && this.now() >= refreshAt(known.crl, known.fetchedAt) && this.retryDue(crl.source);
  }

  /** Whether a URL that gave no CRL may be tried again: once per minIntervalMs, so a fleet does not hammer a down server. */
  retryDue(url: string): boolean {
    const failed = this.failedAt.get(url);
    return failed === undefined || this.now() >= failed + CRL_FETCH_DEFAULTS.minIntervalMs;
  }

  /** The current CRL of `url`, verified against `trust`; throws SVCNODE_CRL_UNAVAILABLE when none can be had. */
  async load(url: string, trust: readonly X509Certificate[]): Promise<FetchedCrl> {
    const known = this.memory.get(url);
    if (known && this.now() < refreshAt(known.crl, known.fetchedAt)) return known;
    const problems = new Set<string>();
    let claimed = false;
    try {
      const shared = await this.fromStore(url, trust, known?.fetchedAt, problems);
      if (shared) return shared;
      claimed = await this.store.claim(url, CRL_FETCH_DEFAULTS.timeoutMs + 1_000);
      if (claimed) {
        // Another process may have stored its download and released the claim since we looked.
        const stored = await this.fromStore(url, trust, known?.fetchedAt, problems);
        if (stored) return stored;
      } else {
        const deadline = Date.now() + CRL_FETCH_DEFAULTS.waitMs;
        while (Date.now() < deadline) {
          await sleep(50);
          const theirs = await this.fromStore(url, trust, known?.fetchedAt, problems);
          if (theirs) return theirs;
        }
      }
      const bytes = await download(url, CRL_FETCH_DEFAULTS.maxBytes, this.stopping.signal);
      this.downloads.set(url, (this.downloads.get(url) ?? 0) + 1);
      const fetchedAt = this.now();
      const crl = await parseCrl(bytes, url, trust);
      this.memory.set(url, { crl, bytes, fetchedAt });
      await this.store.put(url, { bytes, fetchedAt }, Math.max(refreshAt(crl, fetchedAt) - fetchedAt, CRL_FETCH_DEFAULTS.minIntervalMs));
      const problem = [...problems][0];
      this.failedAt.delete(url);
      return { crl, bytes, fetchedAt, ...(problem ? { storedCopyProblem: problem } : {}) };
    } catch (cause) {
      // Tried in vain: not again within minIntervalMs, whether a copy is held or not.
      this.failedAt.set(url, this.now());
      const unavailable = unavailableError(url, cause);
      // A copy in hand stays in use until its nextUpdate (CRL_STALE from then on); the caller says why it was not refreshed.
      if (known) return this.stopping.signal.aborted ? known : { ...known, refreshProblem: unavailable };
      throw unavailable;
    } finally {
      if (claimed) await this.store.release(url);
    }
  }

  /** A usable shared copy newer than `after` that is not yet due, or undefined; an unusable one is noted in `problems`. */
  private async fromStore(url: string, trust: readonly X509Certificate[], after: number | undefined, problems: Set<string>): Promise<FetchedCrl | undefined> {
    const stored = await this.store.get(url);
    if (!stored) return undefined;
    const unusable = (why: string): undefined => {
      problems.add(`the shared copy of ${url} in the CRL store is unusable (${why}); it was ignored and replaced by a fresh download`);
      return undefined;
    };
    if (!Number.isFinite(stored.fetchedAt) || stored.fetchedAt > this.now() + CRL_FETCH_DEFAULTS.minIntervalMs) return unusable('its download time is not a valid past time');
    if (after !== undefined && stored.fetchedAt <= after) return undefined;
    let crl: LoadedCrl;
    try {
      crl = await parseCrl(stored.bytes, url, trust);
    } catch (error) {
      const message = errorMessage(error);
      return unusable(message.startsWith(`${url}: `) ? message.slice(url.length + 2) : message);
    }
    if (this.now() >= refreshAt(crl, stored.fetchedAt)) return undefined;
    const entry = { crl, bytes: stored.bytes, fetchedAt: stored.fetchedAt };
    this.memory.set(url, entry);
    this.failedAt.delete(url);
    return entry;
  }
}

/** The fetcher of processes that do not share CRLs (dry-run, certs). */
export const processCrlFetcher = new CrlFetcher();

/** Why `url` gave no CRL, as SVCNODE_CRL_UNAVAILABLE naming the URL. */
function unavailableError(url: string, cause: unknown): InvalidInputError {
  if (cause instanceof InvalidInputError) {
    // An answer that is not a CRL of trust.ca (an error page with status 200, a captive portal,
    // a proxy) is a failed download like a 503: reported, retried, never the end of the profile.
    const said = cause.message.startsWith(`${url}: `) ? cause.message.slice(url.length + 2) : cause.message;
    return new InvalidInputError('SVCNODE_CRL_UNAVAILABLE', `${url}: the answer is not a usable CRL: ${said}`, {
      cause,
      file: url,
      field: '/trust/crl',
      hint: `check what the URL serves from this machine (a proxy or login page answering in its place looks the same); ${cause.hint ?? 'it must serve the CRL your PKI publishes'}; it is tried again every minute`,
    });
  }
  // fetch says only "fetch failed"; the network error (ECONNREFUSED, ENOTFOUND, …) is its cause.
  const why = (cause as { cause?: unknown }).cause instanceof Error ? errorMessage((cause as { cause: Error }).cause) : errorMessage(cause);
  return new InvalidInputError('SVCNODE_CRL_UNAVAILABLE', `${url}: the CRL cannot be downloaded (${why})`, {
    cause,
    file: url,
    field: '/trust/crl',
    hint: 'check that the CRL URL is reachable from this machine; it is tried again every minute',
  });
}
