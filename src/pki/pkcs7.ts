import { X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { bundleError } from './bundle-error.js';

/** The context-specific tag [0] of SignedData's `certificates` field. */
const CERTIFICATES_TAG = 0 as forge.asn1.Type;

/**
 * The certificates of a PKCS#7 SignedData bundle (.p7b/.p7c, DER or PEM `PKCS7`), as Windows and
 * many CAs deliver chains. Only the ASN.1 is read by forge; each certificate goes to Node as DER
 * (forge cannot read EC certificates). Load time only.
 */
export function pkcs7Certificates(der: Buffer, file: string): X509Certificate[] {
  const unreadable = (cause?: unknown): Error => bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#7 bundle is corrupt or truncated', 'get an intact copy, or convert it: openssl pkcs7 -print_certs -in FILE -out chain.pem', cause);
  try {
    const contentInfo = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')), false);
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
    const explicit = (contentInfo.value as forge.asn1.Asn1[])[1];
    const signedData = (explicit?.value as forge.asn1.Asn1[] | undefined)?.[0];
    const fields = signedData?.value;
    if (!Array.isArray(fields)) throw unreadable();
    const certificates = fields.find((f) => f.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && f.type === CERTIFICATES_TAG);
    return ((certificates?.value ?? []) as forge.asn1.Asn1[]).map((cert) => new X509Certificate(Buffer.from(forge.asn1.toDer(cert).getBytes(), 'binary')));
  } catch (cause) {
    throw cause instanceof Error && 'code' in cause ? cause : unreadable(cause);
  }
}
