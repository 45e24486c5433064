import { createHash, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { isSelfSigned } from './chain.js';
import { signatureAlgorithmOid } from './der.js';

/** Plain-data views of certificates and keys, for CLI output, findings and pin checks. */

export interface CertificateDescription {
  subject: string;
  issuer: string;
  serial: string;
  /** ISO 8601. */
  validFrom: string;
  /** ISO 8601. */
  validTo: string;
  /** Whole days until validTo (negative once expired). */
  daysLeft: number;
  keyType: string;
  keyBits?: number;
  curve?: string;
  subjectAltNames: string[];
  /** EKU names (clientAuth, serverAuth, …) or OIDs for unknown purposes. */
  extKeyUsage: string[];
  isCa: boolean;
  selfSigned: boolean;
  fingerprint256: string;
  /** curl --pinnedpubkey form: `sha256//` + base64 of sha256 over the SPKI DER. */
  spkiPin: string;
}

export interface KeyDescription {
  keyType: string;
  keyBits?: number;
  curve?: string;
  /** Pin of the matching public key, to find its certificate. */
  spkiPin: string;
}

const DAY_MS = 86_400_000;

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** sha256 SPKI pin (curl's --pinnedpubkey form) of a certificate or public key. */
export function spkiPin(subject: X509Certificate | KeyObject): string {
  const key = 'publicKey' in subject ? subject.publicKey : subject;
  const der = key.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(der).digest('base64')}`;
}

/** A DN on one line, in certificate order: `CN=bot, O=Bank`. */
export function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ');
}

export function validFrom(cert: X509Certificate): Date {
  return new Date(cert.validFrom);
}

export function validTo(cert: X509Certificate): Date {
  return new Date(cert.validTo);
}

/** Whole days from `now` until the certificate expires (negative once expired). */
export function daysLeft(cert: X509Certificate, now: Date): number {
  return Math.floor((validTo(cert).getTime() - now.getTime()) / DAY_MS);
}

export type DateStatus = 'valid' | 'expired' | 'not_yet_valid';

/** Whether `now` lies inside the certificate's validity period. */
export function dateStatus(cert: X509Certificate, now: Date): DateStatus {
  if (now.getTime() > validTo(cert).getTime()) return 'expired';
  if (now.getTime() < validFrom(cert).getTime()) return 'not_yet_valid';
  return 'valid';
}

/** Extended key usages by name; empty when the extension is absent (any purpose). */
export function extKeyUsage(cert: X509Certificate): string[] {
  return (cert.keyUsage ?? []).map((oid) => EKU_NAMES[oid] ?? oid);
}

/** Split Node's subjectAltName string ("DNS:a, IP Address:1.2.3.4"), honouring quoted entries. */
export function subjectAltNames(cert: X509Certificate): string[] {
  const text = cert.subjectAltName;
  if (!text) return [];
  const names: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    if (!quoted && ch === ',' && text[i + 1] === ' ') {
      names.push(current);
      current = '';
      i += 1;
    } else {
      current += ch;
    }
  }
  if (current) names.push(current);
  return names;
}

/** Type and size of a key (public or private). */
export function describeKey(key: KeyObject): KeyDescription {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const details = key.asymmetricKeyDetails ?? {};
  const description: KeyDescription = { keyType: key.asymmetricKeyType ?? 'unknown', spkiPin: spkiPin(publicKey) };
  if (details.modulusLength !== undefined) description.keyBits = details.modulusLength;
  if (details.namedCurve !== undefined) description.curve = CURVE_NAMES[details.namedCurve] ?? details.namedCurve;
  return description;
}

/** Everything an operator needs to recognise a certificate; dates relative to `now`. */
export function describeCertificate(cert: X509Certificate, now: Date): CertificateDescription {
  const key = describeKey(cert.publicKey);
  const description: CertificateDescription = {
    subject: oneLineName(cert.subject),
    issuer: oneLineName(cert.issuer),
    serial: cert.serialNumber,
    validFrom: validFrom(cert).toISOString(),
    validTo: validTo(cert).toISOString(),
    daysLeft: daysLeft(cert, now),
    keyType: key.keyType,
    subjectAltNames: subjectAltNames(cert),
    extKeyUsage: extKeyUsage(cert),
    isCa: cert.ca,
    selfSigned: isSelfSigned(cert),
    fingerprint256: cert.fingerprint256,
    spkiPin: key.spkiPin,
  };
  if (key.keyBits !== undefined) description.keyBits = key.keyBits;
  if (key.curve !== undefined) description.curve = key.curve;
  return description;
}

/**
 * Signature algorithms refused for their digest (OpenSSL 3 at its default security level for
 * certificates, svcnode for OCSP responses), by OID: the digest and the algorithm's name.
 */
export const WEAK_SIGNATURES: Readonly<Record<string, { digest: string; name: string }>> = {
  '1.2.840.113549.1.1.5': { digest: 'SHA-1', name: 'SHA-1 with RSA' },
  '1.2.840.10045.4.1': { digest: 'SHA-1', name: 'SHA-1 with ECDSA' },
  '1.2.840.10040.4.3': { digest: 'SHA-1', name: 'SHA-1 with DSA' },
  '1.2.840.113549.1.1.4': { digest: 'MD5', name: 'MD5 with RSA' },
  '1.2.840.113549.1.1.2': { digest: 'MD2', name: 'MD2 with RSA' },
};

/**
 * The digest of the certificate's own signature (made by its issuer) when OpenSSL 3 refuses it
 * for TLS ("ca md too weak"): SHA-1, MD5 or MD2; undefined for any other.
 */
export function weakSignatureDigest(cert: X509Certificate): string | undefined {
  const oid = signatureAlgorithmOid(cert.raw);
  return oid === undefined ? undefined : WEAK_SIGNATURES[oid]?.digest;
}
