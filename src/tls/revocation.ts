import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';
import { SvcnodeError } from '../errors.js';
import { crlStatus, describeRevocation, lookup, type LoadedCrl } from '../pki/crl.js';
import { oneLineName } from '../pki/inspect.js';
import { distributionPointUrls } from '../pki/distribution-points.js';
import { CRL_PENDING } from '../failures/revocation-failure.js';
import type { LoadedProfile } from '../pki/types.js';
import { issuedCertificates, type ConnectionProbe, type ResumedCheck } from './probe.js';

/**
 * Revocation checks of server chains against the profile's CRLs. Hard mode uses OpenSSL's own
 * CRL checking (the `crl` option checks every level of the chain); soft mode checks in
 * checkServerIdentity, so a missing or stale CRL lets the call through with a warning.
 */

/** One revocation verdict: `ok` (current CRLs list nothing), `revoked`, or `unknown` (no current CRL). */
export interface RevocationCheck {
  profile: string;
  result: 'ok' | 'revoked' | 'unknown';
  /** Subject of the certificate the verdict is about (the first unknown or revoked one). */
  subject?: string;
  message?: string;
  /** Where the verdict came from: the profile's CRLs or the server's OCSP staple. */
  source?: 'crl' | 'ocsp';
}

/** Emits 'check' with a RevocationCheck for every handshake a revocation policy applies to (full, and resumed ones judged again against the CRLs). */
export const revocationEvents = new EventEmitter();

/** Records a connection's verdicts (on its probe), besides the process-wide event. */
export type RevocationRecorder = (check: RevocationCheck) => void;

function emit(check: RevocationCheck, record: RevocationRecorder | undefined): void {
  revocationEvents.emit('check', check);
  record?.(check);
}

/**
 * The secure-context options of a profile's revocation policy. With distribution points the
 * checker judges the chain instead: CRLs learnt from handshakes are not in the prebuilt context.
 */
export function revocationContextOptions(profile: LoadedProfile): SecureContextOptions {
  const crls = profile.trust.crls ?? [];
  if (crls.length === 0 || profile.trust.revocation?.mode === 'soft' || profile.trust.distributionPoints) return {};
  return { crl: crls.map((c) => c.pem) };
}

/** Every CRL a profile's calls are judged by: trust.crl, trust.ca's CDPs, and those learnt from handshakes. */
export function revocationCrls(profile: LoadedProfile): readonly LoadedCrl[] {
  const crls = profile.trust.crls ?? [];
  const learnt = profile.trust.distributionPoints?.crls() ?? [];
  return learnt.length === 0 ? crls : [...crls, ...learnt];
}


/** Judge a chain against CRLs at `now`: the first revoked certificate, else the first without a current CRL. */
export function judgeChain(crls: readonly LoadedCrl[], chain: readonly X509Certificate[], now: Date): { result: RevocationCheck['result']; cert?: X509Certificate; message?: string } {
  let unknown: X509Certificate | undefined;
  for (const cert of chain) {
    let covered = false;
    for (const crl of crls) {
      const entry = lookup(crl, cert);
      if (entry) return { result: 'revoked', cert, message: describeRevocation(cert, entry, crl.source) };
      if (entry === null && crlStatus(crl, now) === 'current') covered = true;
    }
    if (!covered) unknown ??= cert;
  }
  return unknown ? { result: 'unknown', cert: unknown, message: `no current CRL covers "${oneLineName(unknown.subject)}"` } : { result: 'ok' };
}

type Checker = (host: string, cert: PeerCertificate) => Error | undefined;

/** A few URLs for a message: a server may name many. */
function urlList(urls: readonly string[]): string {
  return urls.length <= 3 ? urls.join(', ') : `${urls.slice(0, 3).join(', ')} and ${urls.length - 3} more`;
}

/** The CRL of `cert`'s issuer that the profile holds but is no longer current, if any. */
function staleCrlOf(cert: X509Certificate | undefined, crls: readonly LoadedCrl[], at: Date): LoadedCrl | undefined {
  return cert ? crls.find((crl) => lookup(crl, cert) !== undefined && crlStatus(crl, at) !== 'current') : undefined;
}

/** What to say about a chain no current CRL covers: the downloads under way, or what is missing. */
function unknownDetail(cert: X509Certificate | undefined, underWay: readonly string[], profile: LoadedProfile, crls: readonly LoadedCrl[], now: Date): { message: string; hint: string } {
  const stale = staleCrlOf(cert, crls, now);
  if (stale && underWay.length === 0) {
    const due = stale.nextUpdate?.toISOString() ?? '';
    return { message: `the CRL ${stale.source} was due for renewal at ${due}`, hint: `the CRL ${stale.source} of "${stale.issuerName}" is past its nextUpdate (${due}) and no newer one could be had: ask the PKI team to publish a current CRL, or set trust.revocation.mode "soft" in profile "${profile.name}"` };
  }
  if (underWay.length > 0) {
    return { message: `the CRL at ${urlList(underWay)} ${CRL_PENDING}`, hint: `the CRL at ${urlList(underWay)} (a CRL distribution point of the server chain) ${CRL_PENDING}; the call is retried within its retry.limit, and succeeds once it is there` };
  }
  const named = cert ? distributionPointUrls(cert) : [];
  if (named.length > 0) return { message: `the CRL at ${urlList(named)} cannot be had`, hint: `the CRL distribution point ${urlList(named)} of "${cert ? oneLineName(cert.subject) : ''}" cannot be downloaded or is not current (see the worker log); add a current CRL to trust.crl of profile "${profile.name}", or set trust.revocation.mode "soft"` };
  return { message: 'the certificate names no CRL distribution point', hint: `no CRL of profile "${profile.name}" covers it and it names no CRL distribution point: add its issuer's CRL to trust.crl, or set trust.revocation.mode "soft"` };
}

/** What to say when CRLs of the profile could not be downloaded and none it has covers the chain. */
function unavailableDetail(profile: LoadedProfile): { message: string; hint: string } | undefined {
  const unavailable = profile.trust.crlsUnavailable ?? [];
  if (unavailable.length === 0) return undefined;
  const none = (profile.trust.crls ?? []).length === 0;
  return {
    message: none ? `no CRL of profile "${profile.name}" could be had from its URLs` : `the CRL at ${urlList(unavailable.map((u) => u.url))} could not be had (unreachable, or its answer is not a usable CRL)`,
    hint: `profile "${profile.name}" could not download ${unavailable.map((u) => u.message).join('; ')}: make the URL reachable from this machine (the worker tries again every minute; svcnode certs verify tells when it works), or set trust.revocation.mode "soft"`,
  };
}

/** Whether revocation is checked for the profile's calls at all. */
function hasPolicy(profile: LoadedProfile): boolean {
  return (profile.trust.crls ?? []).length > 0 || profile.trust.distributionPoints !== undefined || (profile.trust.crlsUnavailable ?? []).length > 0;
}

/**
 * Judge a server chain against the profile's CRLs now: the error that fails the connection
 * (revoked; or, in hard mode, no current CRL), or undefined. Verdicts go to revocationEvents
 * (metrics, log) and to `record` (the connection's probe).
 */
function judge(profile: LoadedProfile, chain: readonly X509Certificate[], record: RevocationRecorder | undefined, at: Date): Error | undefined {
  const points = profile.trust.distributionPoints;
  const soft = profile.trust.revocation?.mode === 'soft';
  const underWay = points?.learn(chain) ?? [];
  const crls = revocationCrls(profile);
  const verdict = judgeChain(crls, chain, at);
  const detail = verdict.result !== 'unknown' ? undefined : points ? unknownDetail(verdict.cert, underWay, profile, crls, at) : unavailableDetail(profile) ?? staleDetail(verdict.cert, profile, crls, at);
  const message = detail ? `${verdict.message ?? ''}: ${detail.message}` : verdict.message;
  const check: RevocationCheck = { profile: profile.name, source: 'crl', result: verdict.result, ...(verdict.cert ? { subject: oneLineName(verdict.cert.subject) } : {}), ...(message ? { message } : {}) };
  // The messages name the certificate (the leaf or a CA of the chain); the classifier names the host.
  if (verdict.result === 'revoked') {
    emit(check, record);
    return new SvcnodeError('SVCNODE_CERT_REVOKED', verdict.message ?? 'revoked', {
      hint: `${verdict.message ?? ''}; the backend team must replace the revoked certificate`,
    });
  }
  if (verdict.result === 'unknown' && !soft) {
    // The failed attempt is counted as server_cert_revocation_unknown by the attempt metrics.
    record?.(check);
    return new SvcnodeError('SVCNODE_REVOCATION_UNKNOWN', message ?? 'revocation status unknown', { hint: detail?.hint ?? '' });
  }
  emit(check, record);
  return undefined;
}

/** A trust.crl CRL (hard mode, checked by OpenSSL at full handshakes) that went past its nextUpdate since. */
function staleDetail(cert: X509Certificate | undefined, profile: LoadedProfile, crls: readonly LoadedCrl[], at: Date): { message: string; hint: string } | undefined {
  const stale = staleCrlOf(cert, crls, at);
  if (!stale) return undefined;
  const due = stale.nextUpdate?.toISOString() ?? '';
  return { message: `the CRL ${stale.source} was due for renewal at ${due}`, hint: `the CRL ${stale.source} of "${stale.issuerName}" is past its nextUpdate (${due}): replace it with a current one (or make its URL serve one), or set trust.revocation.mode "soft" in profile "${profile.name}"` };
}

/**
 * Wrap the identity checker with the revocation check done after the handshake: soft mode, hard
 * mode with distribution points, and hard mode whose trust.crl gave no CRL at all (OpenSSL
 * checks other hard-mode chains before this runs; without a CRL it would check nothing).
 */
export function withRevocation(profile: LoadedProfile, inner: Checker, record?: RevocationRecorder, now: () => Date = () => new Date()): Checker {
  if (!hasPolicy(profile)) return inner;
  const opensslChecks = profile.trust.revocation?.mode !== 'soft' && !profile.trust.distributionPoints && (profile.trust.crls ?? []).length > 0;
  return (host, cert) => {
    // OpenSSL checked the chain against trust.crl; with none of them loaded it checked nothing.
    if (opensslChecks) {
      emit({ profile: profile.name, source: 'crl', result: 'ok' }, record);
      return inner(host, cert);
    }
    return judge(profile, issuedCertificates(cert), record, now()) ?? inner(host, cert);
  };
}

/**
 * The check of a resumed session, when a revocation policy applies: the chain of the full
 * handshake judged against the CRLs as they are now (a certificate revoked since, a CRL gone past
 * its nextUpdate in hard mode), which also starts the refresh of a learnt CRL that is due. A
 * resumed session skips certificate verification, OpenSSL's CRL check and checkServerIdentity.
 */
export function resumedRevocationCheck(profile: LoadedProfile, now: () => Date = () => new Date()): ResumedCheck | undefined {
  if (!hasPolicy(profile)) return undefined;
  return (chain, probe) => judge(profile, chain, (check) => (probe.revocation ??= []).push(check), now());
}

/** The checker of one connection: its verdicts are also recorded on the connection's probe, for the Result. */
export function connectionChecker(profile: LoadedProfile, inner: Checker, probe: ConnectionProbe): Checker {
  return withRevocation(profile, inner, (check) => (probe.revocation ??= []).push(check));
}
