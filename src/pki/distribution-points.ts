import 'reflect-metadata';
import type { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as x509 from '@peculiar/x509';
import { InvalidInputError } from '../errors.js';
import { CRL_FETCH_DEFAULTS, type CrlFetcher, type FetchedCrl } from './crl-fetch.js';
import type { LoadedCrl } from './crl.js';
import { refreshFailedFinding, unavailableFinding } from './revocation-load.js';
import type { Finding } from './types.js';

/**
 * CRLs named in the CRL distribution points (CDPs) of certificates. Those of trust.ca are loaded
 * with the profile; those of server chains are learnt from handshakes and downloaded in the
 * background through the profile's CrlFetcher (memory, Redis claim), never on the call path.
 */

/** Tunables of distribution-point CRLs. */
export const CDP_DEFAULTS = {
  /** Distinct CDP URLs one profile follows (trust.ca's and learnt ones): a hostile server cannot make the worker fetch without end. */
  maxUrlsPerProfile: 32,
  /** Longer URLs are ignored. */
  maxUrlLength: 2_048,
  /** Certificates whose CDPs are remembered (by fingerprint), so a handshake parses no extension twice. */
  parsedCertificates: 1_024,
} as const;

/** Emits 'failed' and 'refused' with {profile, url, message}, for the worker's log. URLs carry no userinfo. */
export const distributionPointEvents = new EventEmitter();

/** A URL fit to follow: http(s), no userinfo (a CRL is public; credentials would end up in logs), bounded length. */
function followable(url: string): boolean {
  return url.length <= CDP_DEFAULTS.maxUrlLength && /^https?:\/\/[^/?#@\s]+(?:[/?#]\S*)?$/i.test(url);
}

const parsed = new Map<string, readonly string[]>();

/** The http(s) URIs of a certificate's CRL distribution points, in order. */
export function distributionPointUrls(cert: X509Certificate): readonly string[] {
  const known = parsed.get(cert.fingerprint256);
  if (known) return known;
  const urls: string[] = [];
  try {
    const ext = new x509.X509Certificate(cert.raw).getExtension(x509.CRLDistributionPointsExtension);
    for (const point of ext?.distributionPoints ?? []) {
      for (const name of point.distributionPoint?.fullName ?? []) {
        const uri = name.uniformResourceIdentifier;
        if (uri !== undefined && followable(uri) && !urls.includes(uri)) urls.push(uri);
      }
    }
  } catch {
    // An unreadable extension names no distribution point.
  }
  if (parsed.size >= CDP_DEFAULTS.parsedCertificates) parsed.clear();
  parsed.set(cert.fingerprint256, urls);
  return urls;
}

/** The CDP URLs of the CA certificates of trust.ca (not of self-signed roots: nothing above them issues a CRL). */
export function caDistributionPoints(trust: readonly X509Certificate[], exclude: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const cert of trust) {
    if (cert.checkIssued(cert)) continue;
    for (const url of distributionPointUrls(cert)) if (!exclude.has(url) && !out.includes(url) && out.length < CDP_DEFAULTS.maxUrlsPerProfile) out.push(url);
  }
  return out;
}

/**
 * Download the CDP CRLs of trust.ca at profile load. A URL that fails (unreachable, not a CRL,
 * not signed by trust.ca) is a CRL_UNAVAILABLE finding and counts as no data.
 */
export async function loadCaDistributionPoints(urls: readonly string[], trust: readonly X509Certificate[], fetcher: CrlFetcher, findings: Finding[], mode: 'hard' | 'soft'): Promise<{ crl: LoadedCrl; bytes: Buffer }[]> {
  // Concurrently: an unreachable URL costs one download timeout, not one per URL.
  const loaded = await Promise.all(urls.map((url) => fetcher.load(url, trust).catch((error: unknown) => error)));
  const out: { crl: LoadedCrl; bytes: Buffer }[] = [];
  loaded.forEach((entry, i) => {
    if (!(entry instanceof Error)) {
      const fetched = entry as FetchedCrl;
      if (fetched.refreshProblem) findings.push(refreshFailedFinding(urls[i] ?? '', fetched));
      return void out.push(fetched);
    }
    if (!(entry instanceof InvalidInputError)) throw entry;
    findings.push(unavailableFinding(urls[i] ?? '', `CRL distribution point of a trust.ca certificate: ${entry.message}`, entry.hint, mode));
  });
  return out;
}

type State = { crl?: LoadedCrl; downloading: boolean; failedAt?: number };

/** CDP URLs learnt per fetcher and profile name, so a reloaded profile loads them again at load time. */
const learntUrls = new WeakMap<CrlFetcher, Map<string, Set<string>>>();

/**
 * The CRLs of the distribution points that handshakes of one profile named: at most
 * maxUrlsPerProfile URLs (counting trust.ca's), each downloaded in the background once known.
 */
export class DistributionPointCrls {
  private readonly states = new Map<string, State>();
  private refusedLogged = false;

  private constructor(
    private readonly profile: string,
    private readonly trust: readonly X509Certificate[],
    private readonly fetcher: CrlFetcher,
    /** URLs the profile's own CRLs already cover (trust.crl and trust.ca's CDPs). */
    private readonly covered: ReadonlySet<string>,
    /** Places of the bound already taken by trust.ca's distribution points. */
    private readonly reserved: number,
    private readonly learnt: Set<string>,
    private readonly now: () => number,
  ) {}

  /** The profile's learner, with the URLs earlier versions of it learnt loaded now (at profile load, off the call path). */
  static async create(profile: string, trust: readonly X509Certificate[], fetcher: CrlFetcher, covered: ReadonlySet<string>, reserved: number, now: () => number = Date.now): Promise<DistributionPointCrls> {
    let byProfile = learntUrls.get(fetcher);
    if (!byProfile) learntUrls.set(fetcher, (byProfile = new Map<string, Set<string>>()));
    const learnt = byProfile.get(profile) ?? new Set<string>();
    byProfile.set(profile, learnt);
    const dp = new DistributionPointCrls(profile, trust, fetcher, covered, reserved, learnt, now);
    const loads: Promise<void>[] = [];
    for (const url of learnt) {
      if (covered.has(url) || dp.states.size >= dp.room()) continue;
      const state: State = { downloading: false };
      dp.states.set(url, state);
      loads.push(fetcher.load(url, trust).then((e) => void (state.crl = e.crl), () => void (state.failedAt = now())));
    }
    await Promise.all(loads);
    return dp;
  }

  private room(): number {
    return Math.max(0, CDP_DEFAULTS.maxUrlsPerProfile - this.reserved);
  }

  /** The learnt CRLs at hand (current or not: judging them is the caller's). */
  crls(): LoadedCrl[] {
    const out: LoadedCrl[] = [];
    for (const state of this.states.values()) if (state.crl) out.push(state.crl);
    return out;
  }

  /**
   * Learn the CDPs of a presented chain: start the download of each new URL, and the refresh of
   * each due one, in the background. Returns the chain's URLs whose download is under way.
   */
  learn(chain: readonly X509Certificate[]): string[] {
    const underWay: string[] = [];
    for (const cert of chain) {
      for (const url of distributionPointUrls(cert)) {
        if (this.covered.has(url)) continue;
        let state = this.states.get(url);
        if (!state) {
          if (this.states.size >= this.room()) {
            this.refuse(url);
            continue;
          }
          state = { downloading: false };
          this.states.set(url, state);
          this.learnt.add(url);
        }
        // The same URL may be another profile's trust.crl, refreshed by its reload: its newer copy counts here too.
        const held = this.fetcher.held(url);
        if (held && state.crl && held !== state.crl && held.thisUpdate.getTime() > state.crl.thisUpdate.getTime()) state.crl = held;
        const retry = state.failedAt !== undefined && this.now() - state.failedAt >= CRL_FETCH_DEFAULTS.minIntervalMs;
        if (!state.downloading && (state.crl ? this.fetcher.due(state.crl) : state.failedAt === undefined || retry)) this.download(url, state);
        if (state.downloading) underWay.push(url);
      }
    }
    return underWay;
  }

  private download(url: string, state: State): void {
    state.downloading = true;
    this.fetcher.load(url, this.trust).then(
      (entry) => {
        state.crl = entry.crl;
        state.failedAt = undefined;
        // The held copy stays in use (the fetcher retries once a minute); said, as a trust.crl URL's would be.
        if (entry.refreshProblem) distributionPointEvents.emit('stale', { profile: this.profile, url, message: `${entry.refreshProblem.message}; the copy downloaded at ${new Date(entry.fetchedAt).toISOString()} stays in use until its nextUpdate` });
      },
      (error: unknown) => {
        state.failedAt = this.now();
        distributionPointEvents.emit('failed', { profile: this.profile, url, message: (error as Error).message });
      },
    ).finally(() => {
      state.downloading = false;
    });
  }

  private refuse(url: string): void {
    if (this.refusedLogged) return;
    this.refusedLogged = true;
    distributionPointEvents.emit('refused', { profile: this.profile, url, message: `profile "${this.profile}" already follows ${CDP_DEFAULTS.maxUrlsPerProfile} CRL distribution points; ${url} and further ones are ignored (list the CRLs you need in trust.crl)` });
  }
}
