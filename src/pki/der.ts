/**
 * Just enough DER reading to tell a certificate, a PKCS#12 PFX and the key formats apart by
 * content, before handing the bytes to the parser that owns them.
 */

export type DerShape = 'certificate' | 'pkcs12' | 'pkcs7' | 'pkcs8' | 'encrypted-pkcs8' | 'pkcs1' | 'sec1' | 'unknown' | 'truncated';

interface Tlv {
  tag: number;
  /** Offset of the value. */
  start: number;
  /** Offset after the value. */
  end: number;
}

/** One tag-length-value at `offset`, or undefined when the header is malformed or runs past `limit`. */
function readTlv(buf: Buffer, offset: number, limit: number): Tlv | 'truncated' | undefined {
  const tag = buf[offset];
  const first = buf[offset + 1];
  if (tag === undefined || first === undefined) return 'truncated';
  let length = first;
  let start = offset + 2;
  if (first === 0x80) return undefined; // indefinite length (BER): only PKCS#12 may use it, see below
  if (first > 0x80) {
    const n = first & 0x7f;
    if (n > 4) return undefined;
    if (start + n > limit) return 'truncated';
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[start + i] ?? 0);
    start += n;
  }
  const end = start + length;
  if (end > limit) return 'truncated';
  return { tag, start, end };
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OCTET_STRING = 0x04;
const OID = 0x06;
/** 1.2.840.113549.1.7.2, PKCS#7 signedData: the .p7b/.p7c chains Windows and many CAs deliver. */
const SIGNED_DATA = Buffer.from('2a864886f70d010702', 'hex');

/** The length of the first DER element of `buf` (header and value), or undefined when it is not whole. */
export function firstElementLength(buf: Buffer): number | undefined {
  const tlv = readTlv(buf, 0, buf.length);
  return tlv === undefined || tlv === 'truncated' ? undefined : tlv.end;
}

/** Classify binary material by the shape of its outer ASN.1 structure. */
export function derShape(buf: Buffer): DerShape {
  if (buf[0] !== SEQUENCE) return 'unknown';
  // Windows exports PFX files in BER with indefinite lengths: SEQUENCE(80) INTEGER 3.
  if (buf[1] === 0x80) return buf[2] === INTEGER && buf[3] === 1 && buf[4] === 3 ? 'pkcs12' : 'unknown';
  const outer = readTlv(buf, 0, buf.length);
  if (outer === 'truncated') return 'truncated';
  if (!outer) return 'unknown';
  const a = readTlv(buf, outer.start, outer.end);
  if (a === 'truncated') return 'truncated';
  if (!a) return 'unknown';
  const b = readTlv(buf, a.end, outer.end);
  if (b === 'truncated') return 'truncated';
  if (!b) return 'unknown';
  if (a.tag === OID) return buf.subarray(a.start, a.end).equals(SIGNED_DATA) ? 'pkcs7' : 'unknown';
  if (a.tag === SEQUENCE) {
    if (b.tag === SEQUENCE) return 'certificate';
    if (b.tag === OCTET_STRING) return 'encrypted-pkcs8';
    return 'unknown';
  }
  if (a.tag !== INTEGER || a.end - a.start !== 1) return 'unknown';
  const version = buf[a.start];
  if (b.tag === SEQUENCE) return version === 3 ? 'pkcs12' : version === 0 || version === 1 ? 'pkcs8' : 'unknown';
  if (b.tag === INTEGER && version === 0) return 'pkcs1';
  if (b.tag === OCTET_STRING && version === 1) return 'sec1';
  return 'unknown';
}

/** A DER OBJECT IDENTIFIER's content in dotted form (first two arcs packed in the first byte). */
function dottedOid(content: Buffer): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if (byte & 0x80) continue;
    if (arcs.length === 0) arcs.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
    else arcs.push(value);
    value = 0;
  }
  return arcs.join('.');
}

/** A certificate's outer SEQUENCE and its first element, tbsCertificate; undefined when malformed. */
function certificateTbs(der: Buffer): { outer: Tlv; tbs: Tlv } | undefined {
  const outer = readTlv(der, 0, der.length);
  if (!outer || outer === 'truncated') return undefined;
  const tbs = readTlv(der, outer.start, outer.end);
  return !tbs || tbs === 'truncated' ? undefined : { outer, tbs };
}

/**
 * The OID of a certificate's signatureAlgorithm (the issuer's signature), dotted, or undefined
 * when the DER does not have that shape: Certificate ::= SEQUENCE { tbsCertificate,
 * signatureAlgorithm AlgorithmIdentifier ::= SEQUENCE { algorithm OID, … }, signature }.
 */
export function signatureAlgorithmOid(der: Buffer): string | undefined {
  const parts = certificateTbs(der);
  if (!parts) return undefined;
  const algorithm = readTlv(der, parts.tbs.end, parts.outer.end);
  if (!algorithm || algorithm === 'truncated' || algorithm.tag !== SEQUENCE) return undefined;
  const oid = readTlv(der, algorithm.start, algorithm.end);
  if (!oid || oid === 'truncated' || oid.tag !== OID) return undefined;
  return dottedOid(der.subarray(oid.start, oid.end));
}

/** One extension of a certificate: its OID (dotted), criticality and extnValue's content. */
export interface CertificateExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

const BOOLEAN = 0x01;
/** tbsCertificate's `extensions [3] EXPLICIT`. */
const EXTENSIONS = 0xa3;

/** The children of the constructed element `parent`, or undefined when one is malformed. */
function children(der: Buffer, parent: Tlv): Tlv[] | undefined {
  const out: Tlv[] = [];
  for (let offset = parent.start; offset < parent.end;) {
    const child = readTlv(der, offset, parent.end);
    if (!child || child === 'truncated') return undefined;
    out.push(child);
    offset = child.end;
  }
  return out;
}

/**
 * A certificate's extensions, in order, or undefined when the DER does not have the shape
 * tbsCertificate { …, extensions [3] EXPLICIT SEQUENCE OF Extension } with
 * Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
 */
export function certificateExtensions(der: Buffer): CertificateExtension[] | undefined {
  const tbs = certificateTbs(der)?.tbs;
  if (tbs?.tag !== SEQUENCE) return undefined;
  const wrapper = children(der, tbs)?.find((c) => c.tag === EXTENSIONS);
  if (!wrapper) return [];
  const list = readTlv(der, wrapper.start, wrapper.end);
  if (!list || list === 'truncated' || list.tag !== SEQUENCE) return undefined;
  const extensions: CertificateExtension[] = [];
  for (const extension of children(der, list) ?? []) {
    const [id, second, third] = children(der, extension) ?? [];
    if (id?.tag !== OID || !second) return undefined;
    const critical = second.tag === BOOLEAN && der[second.start] !== 0;
    const value = second.tag === BOOLEAN ? third : second;
    if (value?.tag !== OCTET_STRING) return undefined;
    extensions.push({ oid: dottedOid(der.subarray(id.start, id.end)), critical, value: der.subarray(value.start, value.end) });
  }
  return extensions;
}

/**
 * The pathLenConstraint of a basicConstraints extension value
 * (SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }), undefined when absent.
 */
export function pathLenConstraint(value: Buffer): number | undefined {
  const outer = readTlv(value, 0, value.length);
  if (!outer || outer === 'truncated' || outer.tag !== SEQUENCE) return undefined;
  const integer = children(value, outer)?.find((c) => c.tag === INTEGER);
  if (!integer || integer.end - integer.start > 4) return undefined;
  let n = 0;
  for (let i = integer.start; i < integer.end; i++) n = n * 256 + (value[i] ?? 0);
  return n;
}
