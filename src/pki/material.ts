import { basename } from 'node:path';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { NotReadableAsFile, READ_TIMEOUT_MS, readBounded } from '../regular-file.js';
import { bundleError } from './bundle-error.js';
import { derShape, firstElementLength } from './der.js';
import { loadPrivateKey, type KeyInput } from './keys.js';
import { preparePkcs12, readPkcs12 } from './pkcs12.js';
import { pkcs7Certificates } from './pkcs7.js';

/**
 * Reading one bundle file, whatever its form: PEM (any number of blocks; ASCII, UTF-8 or UTF-16
 * text), DER certificate, DER key, PKCS#7 chain (.p7b) or PKCS#12, DER also as base64 text. The
 * form is detected by content, never by extension. Bundles are untrusted input, so files are
 * size-limited.
 */

export type MaterialForm = 'pem' | 'der-certificate' | 'der-key' | 'pkcs12' | 'pkcs7';

export interface Material {
  file: string;
  /** The raw bytes (hashed into the profile version; never printed). */
  bytes: Buffer;
  form: MaterialForm;
  /** Certificates in file order. */
  certificates: X509Certificate[];
  /** Decrypted private keys (empty when `keys: 'ignore'`). */
  keys: KeyObject[];
  /** Private keys present but not decrypted (`keys: 'ignore'`). */
  ignoredKeys: number;
  /** PKCS#12 only: the certificate paired with the key. */
  pairedLeaf?: X509Certificate;
  /** PKCS#12 only: each certificate's and key's friendlyName (alias), in the orders above. */
  aliases?: { keys: (string | undefined)[]; certificates: (string | undefined)[] };
}

export interface ReadMaterialOptions {
  passphrase?: string | undefined;
  /** What to do when the file cannot be read. @defaultValue PROFILE_FILE_HINTS */
  hints?: FileHints;
  /** `ignore`: count keys without decrypting them (certificate and trust files). @defaultValue 'decrypt' */
  keys?: 'decrypt' | 'ignore';
  /** @defaultValue MATERIAL_DEFAULTS.maxBytes */
  maxBytes?: number;
}

export const MATERIAL_DEFAULTS = {
  /** Largest bundle file accepted; real bundles are a few KiB. */
  maxBytes: 1024 * 1024,
} as const;

const CERT_LABELS = new Set(['CERTIFICATE', 'X509 CERTIFICATE']);
/** `openssl x509 -trustout`: a certificate followed by trust settings; the certificate is its first DER element. */
const TRUSTED_CERT_LABEL = 'TRUSTED CERTIFICATE';
/** A PKCS#7 chain in PEM (`openssl crl2pkcs7`, Windows' "Base-64 encoded PKCS #7"). */
const PKCS7_LABELS = new Set(['PKCS7', 'PKCS #7 SIGNED DATA']);
const KEY_LABELS = new Set(['PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY']);
// Spaces after a BEGIN line (and at line ends) are what e-mail and web consoles leave; OpenSSL reads them.
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 #]+)-----[ \t]*\r?\n([\s\S]*?)-----END ([A-Z0-9 #]+)-----/g;
const PEM_BEGIN = /-----BEGIN [A-Z0-9 #]+-----/g;
/** A BEGIN line followed by a backslash and "n" rather than a line break. */
const LITERAL_NEWLINE_BEGIN = /-----BEGIN [A-Z0-9 #]+-----(?:\\r)?\\n/;
/** "-----BEGIN " in UTF-16 (little-endian; the big-endian form is its byte swap): Notepad's "Unicode" encoding. */
const UTF16_BEGIN = Buffer.from('-----BEGIN ', 'utf16le');
const UTF16BE_BEGIN = Buffer.from(UTF16_BEGIN).swap16();

/** What a read error says to do, by the caller: a profile's files, a command-line argument, a passphrase file. */
export interface FileHints {
  /** What the file should hold, for the size limit ("certificate material"). */
  what: string;
  /** The path is not a regular file (a FIFO, a directory, a device) or is too large. */
  notAFile: string;
  /** The path cannot be opened. */
  missing: string;
}

/** The files a profile names. */
export const PROFILE_FILE_HINTS: FileHints = {
  what: 'certificate material',
  notAFile: 'point the profile at the certificate, key or PKCS#12 file itself',
  missing: 'check the path and its permissions; paths in a profile resolve against the profile file',
};

/** Files named on the command line (`certs inspect FILE…`). */
export const ARGUMENT_FILE_HINTS: FileHints = {
  what: 'certificate material',
  notAFile: 'name the certificate, key or PKCS#12 file itself',
  missing: 'check the path and its permissions (a relative path resolves against the current directory)',
};

/**
 * Read a file with a size limit through the bounded reader (a FIFO, device or /proc file is refused
 * before it is read; a filesystem that does not answer is given up after READ_TIMEOUT_MS); errors
 * name the file and say what to check (`hints`).
 */
export async function readLimited(file: string, maxBytes: number = MATERIAL_DEFAULTS.maxBytes, hints: FileHints = PROFILE_FILE_HINTS, timeoutMs: number = READ_TIMEOUT_MS): Promise<Buffer> {
  try {
    return await readBounded(file, maxBytes, timeoutMs);
  } catch (cause) {
    if (!(cause instanceof NotReadableAsFile)) throw bundleError('SVCNODE_FILE_NOT_FOUND', file, 'cannot read file', hints.missing, cause);
    if (cause.reason === 'too-large') throw bundleError('SVCNODE_BUNDLE_TOO_LARGE', file, `file ${cause.message} for ${hints.what}`, hints.notAFile);
    if (cause.reason === 'timeout') throw bundleError('SVCNODE_FILE_NOT_FOUND', file, `the file ${cause.message}`, 'its filesystem did not answer: check the mount', cause);
    throw bundleError('SVCNODE_FILE_NOT_FOUND', file, cause.message, hints.notAFile);
  }
}

/** Read and parse one bundle file. */
export async function readMaterial(file: string, options: ReadMaterialOptions = {}): Promise<Material> {
  const bytes = await readLimited(file, options.maxBytes, options.hints);
  // A PKCS#12 file is parsed on a worker thread first; parseMaterial then finds it cached.
  if (derShape(bytes) === 'pkcs12') await preparePkcs12(pfxBytes(bytes), options.passphrase, file);
  return parseMaterial(bytes, file, options);
}

/** The PFX itself: bytes after it (a text-mode transfer adds a line end) are not part of it; OpenSSL ignores them too. */
function pfxBytes(bytes: Buffer): Buffer {
  return bytes.subarray(0, firstElementLength(bytes) ?? bytes.length);
}

/** Parse bundle bytes already read; `file` is used in messages only. */
export function parseMaterial(bytes: Buffer, file: string, options: ReadMaterialOptions = {}): Material {
  if (bytes.length === 0) {
    throw bundleError('SVCNODE_NO_CERTIFICATE', file, 'the file is empty', 'supply the PEM, DER or PKCS#12 file your PKI team issued');
  }
  return readable(parseBytes(bytes, file, options));
}

function parseBytes(bytes: Buffer, file: string, options: ReadMaterialOptions): Material {
  if (bytes.includes('-----BEGIN ')) return parsePem(bytes, file, options, bytes.toString('latin1'));
  const utf16 = utf16Text(bytes);
  if (utf16 !== undefined) return parsePem(bytes, file, options, utf16);
  const decoded = base64Der(bytes);
  if (decoded !== undefined) return { ...parseDer(decoded, file, options), bytes };
  return parseDer(bytes, file, options);
}

/**
 * OpenSSL parses a certificate whose dates or public key are damaged (a flipped bit, a bad copy)
 * and fails only when they are read: at the handshake, or in a report. Refused here instead,
 * naming the file and the certificate, the same way for every command and the worker.
 */
function readable(material: Material): Material {
  for (const [i, cert] of material.certificates.entries()) {
    let damaged: string | undefined;
    if (Number.isNaN(Date.parse(cert.validFrom)) || Number.isNaN(Date.parse(cert.validTo))) damaged = 'its validity dates cannot be read';
    else {
      try {
        void cert.publicKey;
      } catch {
        damaged = 'its public key cannot be read';
      }
    }
    if (damaged) {
      throw bundleError('SVCNODE_INVALID_BUNDLE', material.file, `certificate #${i + 1} (${cert.subject.replace(/\n/g, ', ')}) is damaged: ${damaged}`, 'get an intact copy of the certificate from your PKI team (a file damaged in transfer reads like this)');
    }
  }
  return material;
}

/** A DER file saved as base64 text (a registration payload written to disk as it came): its bytes, or undefined. */
function base64Der(bytes: Buffer): Buffer | undefined {
  if (bytes[0] !== 0x4d /* 'M', the base64 of a SEQUENCE */ || !/^[A-Za-z0-9+/=\s]+$/.test(bytes.toString('latin1'))) return undefined;
  const der = Buffer.from(bytes.toString('latin1'), 'base64');
  return derShape(der) === 'unknown' ? undefined : der;
}

/** The text of a PEM file saved as UTF-16 (with or without a byte-order mark), or undefined. */
function utf16Text(bytes: Buffer): string | undefined {
  if (bytes.length % 2 !== 0) return undefined;
  // Each pattern also occurs one byte into text of the other byte order: only an even offset counts.
  const even = (pattern: Buffer): boolean => {
    for (let at = bytes.indexOf(pattern); at !== -1; at = bytes.indexOf(pattern, at + 1)) if (at % 2 === 0) return true;
    return false;
  };
  if (even(UTF16_BEGIN)) return bytes.toString('utf16le').replace(/^\uFEFF/, '');
  if (even(UTF16BE_BEGIN)) return Buffer.from(bytes).swap16().toString('utf16le').replace(/^\uFEFF/, '');
  return undefined;
}

/** A PEM block rebuilt without trailing whitespace on its lines. */
function cleanBlock(label: string, body: string): string {
  return `-----BEGIN ${label}-----\n${body.split(/\r?\n/).map((line) => line.trimEnd()).join('\n')}-----END ${label}-----\n`;
}

function parsePem(bytes: Buffer, file: string, options: ReadMaterialOptions, original: string): Material {
  const material: Material = { file, bytes, form: 'pem', certificates: [], keys: [], ignoredKeys: 0 };
  // Lines ended by CR alone (classic Mac OS line ends) read as ended by LF; OpenSSL finds no line in them.
  const text = original.includes('\n') ? original : original.replace(/\r/g, '\n');
  const begins = text.match(PEM_BEGIN)?.length ?? 0;
  let blocks = 0;
  for (const match of text.matchAll(PEM_BLOCK)) {
    blocks += 1;
    const [, label = '', body = '', endLabel] = match;
    if (label !== endLabel) break; // counted as truncated below
    const block = cleanBlock(label, body);
    if (CERT_LABELS.has(label) || label === TRUSTED_CERT_LABEL) {
      try {
        material.certificates.push(label === TRUSTED_CERT_LABEL ? trustedCertificate(body) : new X509Certificate(block));
      } catch (cause) {
        throw bundleError('SVCNODE_INVALID_BUNDLE', file, `PEM certificate #${material.certificates.length + 1} is corrupt`, 'get an intact copy of the certificate from your PKI team', cause);
      }
    } else if (PKCS7_LABELS.has(label)) {
      material.certificates.push(...pkcs7Certificates(Buffer.from(body.replace(/\s+/g, ''), 'base64'), file));
    } else if (KEY_LABELS.has(label)) {
      if (options.keys === 'ignore') {
        material.ignoredKeys += 1;
        continue;
      }
      const encrypted = label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,\s*ENCRYPTED/.test(body);
      material.keys.push(loadPrivateKey({ format: 'pem', text: block, encrypted }, options.passphrase, file));
    }
  }
  if (blocks !== begins) {
    // A PEM copied out of a JSON string: "\n" escapes where its line breaks belong.
    if (LITERAL_NEWLINE_BEGIN.test(text)) {
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PEM text has literal "\\n" escapes instead of line breaks (as copied from a JSON string)', 'save it with real line breaks (jq -r prints a JSON string that way, or replace each \\n in an editor), then use that file');
    }
    throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'a PEM block has no matching END line (truncated file?)', 'get an intact copy of the file; each -----BEGIN line needs its -----END line');
  }
  return material;
}

/** The certificate of a TRUSTED CERTIFICATE block (its trust settings follow it and are not used). */
function trustedCertificate(body: string): X509Certificate {
  const der = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  return new X509Certificate(der.subarray(0, firstElementLength(der) ?? der.length));
}

function parseDer(bytes: Buffer, file: string, options: ReadMaterialOptions): Material {
  const shape = derShape(bytes);
  const material = (form: MaterialForm): Material => ({ file, bytes, form, certificates: [], keys: [], ignoredKeys: 0 });
  switch (shape) {
    case 'certificate': {
      const m = material('der-certificate');
      try {
        m.certificates.push(new X509Certificate(bytes));
      } catch (cause) {
        throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the DER certificate is corrupt', 'get an intact copy of the certificate from your PKI team', cause);
      }
      return m;
    }
    case 'pkcs12': {
      const m = material('pkcs12');
      const p12 = readPkcs12(pfxBytes(bytes), options.passphrase, file);
      m.certificates = p12.certificates;
      if (p12.leaf) m.pairedLeaf = p12.leaf;
      m.aliases = p12.aliases;
      if (options.keys === 'ignore') m.ignoredKeys = p12.keys.length;
      else m.keys.push(...p12.keys);
      return m;
    }
    case 'pkcs7': {
      const m = material('pkcs7');
      m.certificates = pkcs7Certificates(bytes, file);
      return m;
    }
    case 'pkcs8':
    case 'encrypted-pkcs8':
    case 'pkcs1':
    case 'sec1': {
      const m = material('der-key');
      if (options.keys === 'ignore') {
        m.ignoredKeys = 1;
        return m;
      }
      const input: KeyInput = shape === 'encrypted-pkcs8'
        ? { format: 'der', der: bytes, type: 'pkcs8', encrypted: true }
        : { format: 'der', der: bytes, type: shape, encrypted: false };
      m.keys.push(loadPrivateKey(input, options.passphrase, file));
      return m;
    }
    case 'truncated':
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the DER data ends before its declared length (truncated file?)', 'get an intact copy of the file');
    case 'unknown':
      // A Java KeyStore (magic FEEDFEED; JCEKS: CECECECE), as Java-based installers hand them over.
      if (bytes.length >= 4 && (bytes.readUInt32BE(0) === 0xfeedfeed || bytes.readUInt32BE(0) === 0xcececece)) {
        throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'a Java KeyStore (JKS/JCEKS), which svcnode does not read', `convert it to PKCS#12: keytool -importkeystore -srckeystore ${basename(file)} -destkeystore ${basename(file).replace(/\.(jks|jceks|keystore)$/i, '')}.p12 -deststoretype PKCS12, then use the .p12`);
      }
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'not a PEM, DER or PKCS#12 certificate or key file', 'supply a PEM, DER (.cer/.der) or PKCS#12 (.p12/.pfx) file');
  }
}
