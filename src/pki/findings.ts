import type { X509Certificate } from 'node:crypto';
import { dateStatus, daysLeft, extKeyUsage, oneLineName, validFrom, validTo } from './inspect.js';
import { clientKeyOf, describeKey, signsTls13 } from '../tls/sigalgs.js';
import type { CertificateRole, Finding, LoadedProfile } from './types.js';

/** Stable finding codes (`certs verify`, LoadedProfile.findings); error codes of thrown errors appear without the SVCNODE_ prefix. */
export const FINDING_CODES = {
  CLIENT_CERT_EXPIRED: 'the client certificate is expired (error: it is not presented)',
  CLIENT_CERT_NOT_YET_VALID: 'the client certificate is not valid yet (error: it is not presented)',
  CERT_EXPIRED: 'a chain or trust certificate is expired',
  CERT_NOT_YET_VALID: 'a chain or trust certificate is not valid yet',
  CERT_EXPIRES_SOON: 'a certificate expires within the warning window',
  NO_CLIENT_AUTH_EKU: 'the client certificate does not allow TLS client authentication',
  TLS12_ONLY_CLIENT_KEY: 'the client key (DSA, or EC on a curve other than P-256/P-384/P-521) cannot sign a TLS 1.3 handshake here: TLS 1.3 servers get no client certificate',
  CHAIN_REORDERED: 'the intermediates were out of order and have been reordered',
  KEY_IN_TRUST_FILE: 'a trust file contains a private key, which is ignored',
  TRUST_NOT_CA: 'trust.ca holds a certificate that is not a CA (a server or client certificate): it verifies nothing',
  TRUST_NO_ROOT: 'trust.ca holds no root (self-signed) certificate and the system roots are off (error: OpenSSL ends every chain at a root in trust.ca, so every server fails as untrusted)',
  CLIENT_CHAIN_INCOMPLETE: 'the client certificate\'s issuer is neither sent with it nor in trust.ca: when that issuer is an intermediate, a server that trusts only the root refuses it',
  CLIENT_CHAIN_CRITICAL_EXTENSION: 'a certificate of the client chain has a critical extension OpenSSL does not know: servers refuse the chain (alert 46 certificate_unknown)',
  CLIENT_CHAIN_NOT_CA: 'a certificate that issued one of the client chain is not a CA (basicConstraints without CA:TRUE): servers refuse the chain (alert 48 unknown_ca)',
  CLIENT_CHAIN_WEAK_CA_KEY: 'a CA certificate of the client chain (or the trust.ca root above it) has an RSA or DSA key under 2048 bits: servers at OpenSSL security level 2 refuse the chain (alert 42 bad_certificate)',
  CLIENT_CHAIN_PATH_LENGTH: 'the client chain has more intermediate CAs below a CA than its pathlen allows: servers refuse the chain (alert 48 unknown_ca)',
  SYSTEM_ROOTS: 'no trust.ca: servers are verified against the system roots',
  CRL_STALE: 'a trust.crl CRL is past its nextUpdate (error in hard mode: revocation checking fails every call; warning in soft mode: calls go unchecked)',
  CRL_NOT_YET_VALID: 'a trust.crl CRL is not valid yet',
  CRL_EXPIRES_SOON: 'a trust.crl CRL reaches its nextUpdate within a day',
  CRL_UNAVAILABLE: 'a trust.crl URL, or the CRL distribution point of a trust.ca certificate, gives no usable CRL: unreachable, or not a CRL of trust.ca (error in hard mode: revocation checking fails calls; warning in soft mode: calls go unchecked)',
  CLIENT_CERT_REVOKED: 'our own client certificate or its chain is listed in a configured CRL',
  CRL_MISSING: 'hard revocation mode and a trust.ca CA without a CRL in trust.crl (error: every call whose chain goes through it fails)',
  TRUST_CA_REVOKED: 'a trust.ca certificate is listed in a configured CRL (error: every server chain through it fails as revoked)',
  CRL_REFRESH_FAILED: 'a CRL from a URL was due for refresh and could not be downloaded: the copy in hand stays in use until its nextUpdate, and the download is tried again every minute',
  CRL_STORED_COPY_INVALID: 'the copy of a trust.crl URL shared through Redis did not parse; it was ignored and replaced by a fresh download',
} as const;
export type FindingCode = keyof typeof FINDING_CODES;

const DAY_MS = 86_400_000;
const CLIENT_AUTH = new Set(['clientAuth', 'anyExtendedKeyUsage']);

function about(cert: X509Certificate, role: CertificateRole, file: string, now: Date): Pick<Finding, 'file' | 'role' | 'subject' | 'validTo' | 'daysLeft'> {
  return { file, role, subject: oneLineName(cert.subject), validTo: validTo(cert).toISOString(), daysLeft: daysLeft(cert, now) };
}

/** Validity findings for one certificate: expired / not yet valid / expiring within `warningDays`. */
export function dateFindings(cert: X509Certificate, role: CertificateRole, file: string, now: Date, warningDays: number): Finding[] {
  const facts = about(cert, role, file, now);
  const subject = facts.subject ?? '';
  const status = dateStatus(cert, now);
  if (status === 'expired') {
    return [role === 'client'
      ? { severity: 'error', code: 'CLIENT_CERT_EXPIRED', message: `client certificate ${subject} expired on ${facts.validTo}`, hint: 'renew the client certificate with your PKI team; it will not be presented until then', ...facts }
      : { severity: 'warning', code: 'CERT_EXPIRED', message: `${role} certificate ${subject} expired on ${facts.validTo}`, hint: 'replace it with the current certificate from the issuing CA', ...facts }];
  }
  if (status === 'not_yet_valid') {
    const from = validFrom(cert).toISOString();
    return [role === 'client'
      ? { severity: 'error', code: 'CLIENT_CERT_NOT_YET_VALID', message: `client certificate ${subject} is not valid before ${from}`, hint: 'check the system clock, or wait until the certificate becomes valid', ...facts }
      : { severity: 'warning', code: 'CERT_NOT_YET_VALID', message: `${role} certificate ${subject} is not valid before ${from}`, hint: 'check the system clock', ...facts }];
  }
  const days = facts.daysLeft ?? 0;
  if (validTo(cert).getTime() - now.getTime() <= warningDays * DAY_MS) {
    return [{ severity: 'warning', code: 'CERT_EXPIRES_SOON', message: `${role} certificate ${subject} expires on ${facts.validTo} (${days} days left)`, hint: 'renew it before it expires', ...facts }];
  }
  return [];
}

/** Findings about the client certificate's dates: judged again as the clock moves (errorFindingsAt). */
const CLIENT_DATE_CODES = new Set<string>(['CLIENT_CERT_EXPIRED', 'CLIENT_CERT_NOT_YET_VALID']);

/**
 * A loaded profile's error findings judged at `now`: those about the files stay as loaded, the
 * client certificate's validity is judged again. A certificate that expires while the worker runs
 * is an error from that moment (its calls fail as client_cert_expired), not from the next reload.
 */
export function errorFindingsAt(profile: LoadedProfile, now: Date): Finding[] {
  const loaded = profile.findings.filter((f) => f.severity === 'error' && !CLIENT_DATE_CODES.has(f.code));
  const leaf = profile.client?.leaf;
  const file = profile.findings.find((f) => CLIENT_DATE_CODES.has(f.code))?.file ?? profile.file;
  return [...loaded, ...(leaf ? dateFindings(leaf, 'client', file, now, 0).filter((f) => f.severity === 'error') : [])];
}

/** Warn when the client certificate's EKU does not include clientAuth (servers may reject it). */
export function clientAuthFinding(cert: X509Certificate, file: string, now: Date): Finding[] {
  const usages = extKeyUsage(cert);
  if (usages.length === 0 || usages.some((u) => CLIENT_AUTH.has(u))) return [];
  return [{
    severity: 'warning',
    code: 'NO_CLIENT_AUTH_EKU',
    message: `client certificate ${oneLineName(cert.subject)} allows only ${usages.join(', ')}, not clientAuth`,
    hint: 'ask your PKI team for a certificate with the TLS client authentication extended key usage',
    ...about(cert, 'client', file, now),
  }];
}

/** Warn when TLS 1.3 cannot sign with the client key: OpenSSL then sends no certificate to a TLS 1.3 server. */
export function tls13KeyFinding(cert: X509Certificate, file: string, now: Date): Finding[] {
  const key = clientKeyOf(cert);
  if (signsTls13(key)) return [];
  const what = describeKey(key);
  return [{
    severity: 'warning',
    code: 'TLS12_ONLY_CLIENT_KEY',
    message: `the key of client certificate ${oneLineName(cert.subject)} is ${what}, which this runtime cannot sign a TLS 1.3 handshake with: a TLS 1.3 server gets no client certificate`,
    hint: 'set tls.maxVersion: "TLSv1.2" on the nodes that use this profile, or ask your PKI team for a certificate with an EC P-256/P-384 or RSA key',
    ...about(cert, 'client', file, now),
  }];
}
