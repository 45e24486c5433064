import { createHash, verify, X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, id_kp_OCSPSigning, id_pkix_ocsp_basic, OCSPResponse, OCSPResponseStatus, type CertID, type SingleResponse } from '@peculiar/asn1-ocsp';
import { normalSerial } from './crl.js';
import { oneLineName, WEAK_SIGNATURES } from './inspect.js';

/**
 * Verification of a stapled OCSP response (RFC 6960) for one server certificate: ASN.1 by
 * @peculiar/asn1-ocsp, signatures by node:crypto (OpenSSL). Pure: the time is passed in.
 */

/** Clock difference tolerated between this machine and the responder. */
export const OCSP_SKEW_MS = 5 * 60_000;
/** A response without nextUpdate is accepted this long after its thisUpdate. */
export const OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS = 7 * 86_400_000;

/** What a verified staple says about the certificate. */
export interface StapleStatus {
  ok: true;
  status: 'good' | 'revoked' | 'unknown';
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  revocationTime?: Date;
  reason?: string;
  /** Subject of the certificate that signed the response (the issuer or its delegated responder). */
  signer: string;
}

/** Why a staple cannot be used: unusable or untrusted (`invalid`), about another certificate (`mismatch`), outside its validity (`stale`). */
export interface StapleProblem {
  ok: false;
  problem: 'invalid' | 'mismatch' | 'stale';
  reason: string;
}

const HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Signature algorithms accepted on responses; SHA-1 signatures are refused. `null`: the key type decides (Ed25519). */
const SIGNATURES: Record<string, string | null> = {
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
};

const CRL_REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', '', 'removeFromCRL', 'privilegeWithdrawn', 'aACompromise'];

function problem(kind: StapleProblem['problem'], reason: string): StapleProblem {
  return { ok: false, problem: kind, reason };
}

/** Hex of raw bytes, or of an OctetString's contents (an ArrayBufferView by shape, not a typed array). */
function hex(bytes: ArrayBuffer | OctetString): string {
  return (bytes instanceof OctetString ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.from(bytes)).toString('hex');
}

/** Issuer name and key hashes of a certificate's issuer, as a CertID with `hashAlgorithm` carries them. */
function issuerHashes(issuer: X509Certificate, algorithm: string): { name: string; key: string } {
  const parsed = AsnConvert.parse(issuer.raw, Certificate).tbsCertificate;
  return {
    name: createHash(algorithm).update(Buffer.from(AsnConvert.serialize(parsed.subject))).digest('hex'),
    key: createHash(algorithm).update(new Uint8Array(parsed.subjectPublicKeyInfo.subjectPublicKey)).digest('hex'),
  };
}

/** Whether a CertID names `leaf` as issued by `issuer`: serial, issuer name hash and issuer key hash. */
function matches(id: CertID, leaf: X509Certificate, issuer: X509Certificate): boolean {
  const algorithm = HASHES[id.hashAlgorithm.algorithm];
  if (!algorithm || normalSerial(hex(id.serialNumber)) !== normalSerial(leaf.serialNumber)) return false;
  const expected = issuerHashes(issuer, algorithm);
  return hex(id.issuerNameHash) === expected.name && hex(id.issuerKeyHash) === expected.key;
}

/** Whether the responder ID names `cert` (by subject, or by the SHA-1 of its public key). */
function isResponder(basic: BasicOCSPResponse, cert: X509Certificate): boolean {
  const id = basic.tbsResponseData.responderID;
  const parsed = AsnConvert.parse(cert.raw, Certificate).tbsCertificate;
  if (id.byName) return Buffer.from(AsnConvert.serialize(id.byName)).equals(Buffer.from(AsnConvert.serialize(parsed.subject)));
  if (id.byKey) return hex(id.byKey) === createHash('sha1').update(new Uint8Array(parsed.subjectPublicKeyInfo.subjectPublicKey)).digest('hex');
  return false;
}

function extendedKeyUsage(cert: X509Certificate): readonly string[] {
  return (cert as X509Certificate & { extKeyUsage?: string[] }).extKeyUsage ?? cert.keyUsage ?? [];
}

/**
 * The certificate that signed the response: the issuer itself, or a delegated responder
 * included in the response, issued by that issuer, with the id-kp-OCSPSigning EKU, valid at `now`.
 */
function signerOf(basic: BasicOCSPResponse, issuer: X509Certificate, now: Date): X509Certificate | StapleProblem {
  if (isResponder(basic, issuer)) return issuer;
  for (const asn of basic.certs ?? []) {
    const cert = new X509Certificate(Buffer.from(AsnConvert.serialize(asn)));
    if (!isResponder(basic, cert)) continue;
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      return problem('invalid', `the responder certificate "${oneLineName(cert.subject)}" was not issued by "${oneLineName(issuer.subject)}", the issuer of the server certificate`);
    }
    if (!extendedKeyUsage(cert).includes(id_kp_OCSPSigning)) {
      return problem('invalid', `the responder certificate "${oneLineName(cert.subject)}" lacks the OCSPSigning extended key usage`);
    }
    if (Date.parse(cert.validTo) < now.getTime() || Date.parse(cert.validFrom) > now.getTime()) {
      return problem('invalid', `the responder certificate "${oneLineName(cert.subject)}" is not valid now (valid ${cert.validFrom} to ${cert.validTo})`);
    }
    return cert;
  }
  return problem('invalid', `the response is signed by neither "${oneLineName(issuer.subject)}" nor a responder certificate included in it`);
}

function statusOf(single: SingleResponse): Pick<StapleStatus, 'status' | 'revocationTime' | 'reason'> {
  const s = single.certStatus;
  if (s.revoked) {
    const reason = s.revoked.revocationReason === undefined ? undefined : CRL_REASONS[s.revoked.revocationReason.reason];
    return { status: 'revoked', revocationTime: s.revoked.revocationTime, ...(reason ? { reason } : {}) };
  }
  return { status: s.good !== undefined ? 'good' : 'unknown' };
}

/**
 * Verify a stapled OCSP response (DER OCSPResponse) for `leaf`, issued by `issuer`, at `now`:
 * a successful BasicOCSPResponse, signed by the issuer or its delegated responder, with a
 * single response for the leaf's CertID that is current (thisUpdate/nextUpdate, skew allowed).
 */
export function verifyStaple(der: Uint8Array, leaf: X509Certificate, issuer: X509Certificate, now: Date): StapleStatus | StapleProblem {
  let basic: BasicOCSPResponse;
  try {
    const response = AsnConvert.parse(der, OCSPResponse);
    if (response.responseStatus !== OCSPResponseStatus.successful) {
      return problem('invalid', `the responder answered "${OCSPResponseStatus[response.responseStatus] ?? response.responseStatus}" instead of a status`);
    }
    if (!response.responseBytes || response.responseBytes.responseType !== id_pkix_ocsp_basic) return problem('invalid', 'the response is not a BasicOCSPResponse');
    basic = AsnConvert.parse(response.responseBytes.response, BasicOCSPResponse);
  } catch (cause) {
    return problem('invalid', `the staple is not a DER OCSP response (${cause instanceof Error ? cause.message : String(cause)})`);
  }
  const signer = signerOf(basic, issuer, now);
  if (!(signer instanceof X509Certificate)) return signer;
  const algorithm = SIGNATURES[basic.signatureAlgorithm.algorithm];
  if (algorithm === undefined || !basic.tbsResponseDataRaw) {
    const weak = WEAK_SIGNATURES[basic.signatureAlgorithm.algorithm]?.name;
    return problem('invalid', weak ? `the response is signed with ${weak}, which svcnode refuses (SHA-256 or better is required)` : `the response is signed with an unsupported algorithm (${basic.signatureAlgorithm.algorithm})`);
  }
  let valid: boolean;
  try {
    valid = verify(algorithm, new Uint8Array(basic.tbsResponseDataRaw), signer.publicKey, new Uint8Array(basic.signature));
  } catch {
    valid = false;
  }
  if (!valid) return problem('invalid', `the signature of the response does not verify with the key of "${oneLineName(signer.subject)}"`);
  const single = basic.tbsResponseData.responses.find((r) => matches(r.certID, leaf, issuer));
  if (!single) {
    const serials = basic.tbsResponseData.responses.map((r) => normalSerial(hex(r.certID.serialNumber))).join(', ');
    const sameSerial = basic.tbsResponseData.responses.some((r) => normalSerial(hex(r.certID.serialNumber)) === normalSerial(leaf.serialNumber));
    return problem('mismatch', sameSerial
      ? `the staple is about serial ${normalSerial(leaf.serialNumber)} of another issuer (its issuer name and key hashes are not those of "${oneLineName(issuer.subject)}"), not the server certificate "${oneLineName(leaf.subject)}"`
      : `the staple is about serial ${serials || '(none)'}, not the server certificate "${oneLineName(leaf.subject)}" (serial ${normalSerial(leaf.serialNumber)})`);
  }
  const t = now.getTime();
  if (single.thisUpdate.getTime() > t + OCSP_SKEW_MS) return problem('stale', `the staple is valid only from ${single.thisUpdate.toISOString()}`);
  const expiry = single.nextUpdate?.getTime() ?? single.thisUpdate.getTime() + OCSP_MAX_AGE_WITHOUT_NEXT_UPDATE_MS;
  if (expiry + OCSP_SKEW_MS < t) return problem('stale', `the staple was due for renewal at ${new Date(expiry).toISOString()}`);
  return { ok: true, ...statusOf(single), thisUpdate: single.thisUpdate, nextUpdate: single.nextUpdate, signer: oneLineName(signer.subject) };
}
