import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { DetailedPeerCertificate, PeerCertificate, SecureContextOptions } from 'node:tls';
import { SvcnodeError } from '../errors.js';
import { crlStatus, describeRevocation, lookup, type LoadedCrl } from '../pki/crl.js';
import { oneLineName } from '../pki/inspect.js';
import type { LoadedProfile } from '../pki/types.js';
import type { ConnectionProbe } from './probe.js';

/**
 * Revocation checks of server chains against the profile's CRLs. Hard mode uses OpenSSL's own
 * CRL checking (the `crl` option checks every level of the chain); soft mode checks in
 * checkServerIdentity, so a missing or stale CRL lets the call through with a warning.
 */

/** One revocation verdict: `ok` (current CRLs list nothing), `revoked`, or `unknown` (no current CRL). */
export interface RevocationCheck {
  profile: string;
  result: 'ok' | 'revoked' | 'unknown';
  /** Where the verdict came from. */
  source?: 'crl' | 'ocsp';
  /** Subject of the certificate the verdict is about (the first unknown or revoked one). */
  subject?: string;
  message?: string;
}

/** Emits 'check' with a RevocationCheck for every full handshake a revocation policy applies to. */
export const revocationEvents = new EventEmitter();

/** Records a connection's verdicts (on its probe), besides the process-wide event. */
export type RevocationRecorder = (check: RevocationCheck) => void;

function emit(check: RevocationCheck, record: RevocationRecorder | undefined): void {
  revocationEvents.emit('check', check);
  record?.(check);
}

/** The secure-context options of a profile's revocation policy. */
export function revocationContextOptions(profile: LoadedProfile): SecureContextOptions {
  const crls = profile.trust.crls ?? [];
  if (crls.length === 0 || profile.trust.revocation?.mode === 'soft') return {};
  return { crl: crls.map((c) => c.pem) };
}

/** The chain of a detailed peer certificate, leaf first, without the self-signed top. */
function certificatesOf(peer: PeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  let current = peer as DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    const cert = new X509Certificate(current.raw);
    if (cert.checkIssued(cert)) break;
    out.push(cert);
    current = current.issuerCertificate;
  }
  return out;
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

/**
 * Wrap the identity checker with the soft-mode revocation check, and report hard-mode passes
 * (OpenSSL already refused revoked chains before this runs).
 */
export function withRevocation(profile: LoadedProfile, inner: Checker, record?: RevocationRecorder, now: () => Date = () => new Date()): Checker {
  const crls = profile.trust.crls ?? [];
  if (crls.length === 0) return inner;
  const soft = profile.trust.revocation?.mode === 'soft';
  return (host, cert) => {
    if (!soft) {
      emit({ profile: profile.name, source: 'crl', result: 'ok' }, record);
      return inner(host, cert);
    }
    const verdict = judgeChain(crls, certificatesOf(cert), now());
    emit({ profile: profile.name, source: 'crl', result: verdict.result, ...(verdict.cert ? { subject: oneLineName(verdict.cert.subject) } : {}), ...(verdict.message ? { message: verdict.message } : {}) }, record);
    if (verdict.result === 'revoked') {
      return new SvcnodeError('SVCNODE_CERT_REVOKED', `server certificate of ${host}: ${verdict.message ?? 'revoked'}`, {
        hint: `${verdict.message ?? ''}; the backend team must replace the revoked certificate`,
      });
    }
    return inner(host, cert);
  };
}

/** The checker of one connection: its verdicts are also recorded on the connection's probe, for the Result. */
export function connectionChecker(profile: LoadedProfile, inner: Checker, probe: ConnectionProbe): Checker {
  return withRevocation(profile, inner, (check) => (probe.revocation ??= []).push(check));
}
