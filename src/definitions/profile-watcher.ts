import { dirname, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { CrlFetcher } from '../pki/crl-fetch.js';
import { DirPoller, fileStamp, transientReadFailure, type DirectoryEvents } from './dir-poller.js';
import { loadProfile, profileLoadError, profileName } from './profiles.js';
import { dateStatus } from '../pki/inspect.js';
import type { LoadedProfile } from '../pki/types.js';
import { formatDn } from '../tls/identity.js';
import type { Registry } from './registry.js';
import { parseJsonText, readJsonText } from './validator.js';
import type { ProfileDocument } from './types.js';

/** What a ProfileWatcher reports; an unreadable profiles directory takes every profile of it out of use (`removed` follows for each file). */
export interface ProfileWatcherEvents extends DirectoryEvents {
  /** A profile was (re)loaded with new material; `previous` is undefined for a new profile. */
  reloaded(profile: LoadedProfile, previous: LoadedProfile | undefined): void;
  /** A new or changed profile failed to load; `kept`: the last good one stays in use (there was one). */
  failed(name: string, file: string, error: InvalidInputError, kept: boolean): void;
  /**
   * A profile was loaded again with the same material (a CRL refresh that failed or gave the same
   * CRL, or its files back as they were after a failed reload: `recovered`): its findings may differ.
   */
  unchanged?(profile: LoadedProfile, previous: LoadedProfile, recovered: boolean): void;
  /** A changed profile holds a client certificate not valid yet: the one in use stays until it is (then it is loaded again). */
  deferred?(name: string, file: string, why: InvalidInputError): void;
  /** A profile file disappeared: the profile is out of use; `previous` is what was in use. */
  removed?(name: string, file: string, previous: LoadedProfile | undefined): void;
}

/** Paths a profile depends on, read leniently: a broken document still yields its own path. */
async function dependencies(file: string): Promise<string[]> {
  const paths = [file];
  try {
    const doc = parseJsonText(await readJsonText(file, 'SVCNODE_INVALID_PROFILE'), file, 'SVCNODE_INVALID_PROFILE') as ProfileDocument;
    const at = (p: unknown): void => {
      if (typeof p === 'string') paths.push(resolve(dirname(file), p));
    };
    const client = doc.client as Record<string, unknown> | undefined;
    at(client?.certificate);
    at(client?.key);
    at(client?.pkcs12);
    at((client?.passphrase as { file?: unknown } | undefined)?.file);
    for (const ca of doc.trust?.ca ?? []) at(ca);
    for (const crl of doc.trust?.crl ?? []) if (!/^https?:\/\//i.test(crl)) at(crl);
  } catch {
    // The load itself will report what is wrong with the document.
  }
  return paths;
}

/** A cheap change detector: size, mtime and inode of the profile and every file it names. */
async function fingerprint(file: string): Promise<string> {
  const parts = await Promise.all(
    (await dependencies(file)).map(async (p) => `${p}:${(await fileStamp(p)) ?? 'missing'}`),
  );
  return parts.join('|');
}

/**
 * Watches a profiles directory by polling (robust to editors, atomic renames and mounted-secret
 * symlink swaps). A changed profile is loaded and validated; if valid it replaces the old one,
 * if not the last good bundle stays in use and the failure is reported.
 */
export class ProfileWatcher extends DirPoller {
  private readonly seen = new Map<string, string>();
  /** Files whose new client certificate was held back as not valid yet, and when it becomes valid. */
  private readonly heldBack = new Map<string, number>();

  constructor(
    private readonly registry: Registry,
    private readonly events: ProfileWatcherEvents,
    private readonly options: { intervalMs: number; env?: NodeJS.ProcessEnv; crlFetcher?: CrlFetcher },
  ) {
    super(options.intervalMs, 'profile', events, (kind, error) => registry.setDirectoryProblem(kind, error));
  }

  protected dir(): string {
    return this.registry.profilesDir;
  }

  /** Record the current state as the baseline, then poll every `intervalMs`. */
  async start(): Promise<void> {
    for (const file of (await this.files()) ?? []) this.seen.set(file, await fingerprint(file));
    this.startPolling();
  }

  /**
   * A downloaded CRL of the profile is due for refresh, or one that could not be downloaded may be
   * tried again: reload it (the download happens once per fleet).
   */
  private crlsDue(name: string): boolean {
    const fetcher = this.options.crlFetcher;
    const trust = this.registry.profiles.get(name)?.trust;
    return fetcher !== undefined && ((trust?.crls ?? []).some((crl) => fetcher.due(crl)) || (trust?.crlsUnavailable ?? []).some((u) => fetcher.retryDue(u.url)));
  }

  protected async round(): Promise<void> {
    const files = await this.listing();
    if (!files) return;
    const present = new Set(files);
    for (const file of [...this.seen.keys()]) {
      if (present.has(file)) continue;
      this.seen.delete(file);
      const name = profileName(file);
      const previous = this.registry.removeProfile(name, file);
      this.events.removed?.(name, file, previous);
    }
    for (const file of files) {
      const print = await fingerprint(file);
      const name = profileName(file);
      const validFrom = this.heldBack.get(file);
      if (this.seen.get(file) === print && !this.crlsDue(name) && !(validFrom !== undefined && Date.now() >= validFrom)) continue;
      this.seen.set(file, print);
      this.heldBack.delete(file);
      try {
        const profile = await loadProfile(file, { ...(this.options.env ? { env: this.options.env } : {}), ...(this.options.crlFetcher ? { crlFetcher: this.options.crlFetcher } : {}) });
        const previous = this.registry.profiles.get(profile.name);
        const outOfDate = outOfDateRenewal(profile, previous, file, Date.now());
        if (outOfDate?.validFrom !== undefined) {
          // Staged early: nothing is wrong yet, and the profile in use is not stale.
          this.heldBack.set(file, outOfDate.validFrom);
          this.events.deferred?.(name, file, outOfDate.error);
          continue;
        }
        if (outOfDate) {
          const kept = this.registry.recordProfileFailure(name, file, outOfDate.error);
          this.events.failed(name, file, outOfDate.error, kept);
          continue;
        }
        if (previous?.version === profile.version) {
          const recovered = this.registry.isStale(profile.name);
          this.registry.replaceProfile(profile);
          this.events.unchanged?.(profile, previous, recovered);
          continue;
        }
        this.registry.replaceProfile(profile);
        this.events.reloaded(profile, previous);
      } catch (error) {
        // Out of descriptors, or a hung mount: read again next round rather than when the files next change.
        if (transientReadFailure(error)) this.seen.delete(file);
        const invalid = profileLoadError(file, error);
        const kept = this.registry.recordProfileFailure(name, file, invalid);
        this.events.failed(name, file, invalid, kept);
      }
    }
  }
}

/**
 * A reload whose client certificate is out of date while the one in use is not: a renewal staged
 * before its notBefore (`validFrom`: tried again then), or an old file copied back (refused like
 * any bad bundle: the last good one stays in use).
 */
function outOfDateRenewal(profile: LoadedProfile, previous: LoadedProfile | undefined, file: string, now: number): { error: InvalidInputError; validFrom?: number } | undefined {
  const leaf = profile.client?.leaf;
  const inUse = previous?.client?.leaf;
  if (!leaf || !inUse || leaf.fingerprint256 === inUse.fingerprint256) return undefined;
  const at = new Date(now);
  if (dateStatus(leaf, at) === 'valid' || dateStatus(inUse, at) !== 'valid') return undefined;
  const notYet = dateStatus(leaf, at) === 'not_yet_valid';
  const subject = formatDn(leaf.subject);
  const when = notYet ? `is not valid before ${new Date(leaf.validFrom).toISOString()}` : `expired on ${new Date(leaf.validTo).toISOString()}`;
  const error = new InvalidInputError('SVCNODE_RENEWAL_OUT_OF_DATE', `${file}: the new client certificate "${subject}" ${when}; the one in use ("${formatDn(inUse.subject)}", valid until ${new Date(inUse.validTo).toISOString()}) stays in use`, {
    file,
    hint: notYet ? 'nothing to do if the renewal was staged early: the worker switches to it when it becomes valid; otherwise check the certificate\'s dates and this machine\'s clock' : 'the file holds an expired certificate: put the current one (or its renewal) back',
  });
  return notYet ? { error, validFrom: Date.parse(leaf.validFrom) } : { error };
}
