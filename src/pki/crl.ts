import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { InvalidInputError } from '../errors.js';
import { NotReadableAsFile, readBounded } from '../regular-file.js';
import { oneLineName } from './inspect.js';

/**
 * Certificate revocation lists: parsed once, their signature checked against the issuing CA in
 * trust.ca, and indexed by serial so a lookup on the call path is a map read.
 */

/** One revoked serial as a CRL lists it. */
export interface RevokedEntry {
  /** Upper-case hex without leading zeros, as `certs inspect` and Node print serials. */
  serial: string;
  revocationDate: Date;
  reason?: string;
}

export interface LoadedCrl {
  /** The file path (or URL) the CRL came from, for hints. */
  readonly source: string;
  /** PEM, for the native `crl` secure-context option. */
  readonly pem: string;
  /** The trust.ca certificate that signed this CRL. */
  readonly issuer: X509Certificate;
  /** The issuer's subject on one line. */
  readonly issuerName: string;
  readonly thisUpdate: Date;
  /** Absent when the CRL names none (then it never goes stale). */
  readonly nextUpdate: Date | undefined;
  /** Revoked serials. */
  readonly revoked: ReadonlyMap<string, RevokedEntry>;
}

let providerSet = false;
function provider(): void {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);
    providerSet = true;
  }
}

/** Serials compare as numbers: upper-case hex without leading zeros. */
export function normalSerial(hex: string): string {
  return hex.replace(/[^0-9a-fA-F]/g, '').toUpperCase().replace(/^0+(?=.)/, '');
}

/** CRL freshness at `now`: current, stale (past nextUpdate) or not yet valid (thisUpdate ahead). */
export function crlStatus(crl: LoadedCrl, now: Date): 'current' | 'stale' | 'not-yet-valid' {
  if (crl.thisUpdate.getTime() > now.getTime()) return 'not-yet-valid';
  if (crl.nextUpdate && crl.nextUpdate.getTime() <= now.getTime()) return 'stale';
  return 'current';
}

/** The CRL of `source` whose signature a trust.ca certificate verifies; throws SVCNODE_INVALID_CRL otherwise. */
export async function parseCrl(bytes: Buffer, source: string, trust: readonly X509Certificate[]): Promise<LoadedCrl> {
  provider();
  const text = bytes.toString('latin1');
  const invalid = (message: string, hint: string, cause?: unknown): InvalidInputError =>
    new InvalidInputError('SVCNODE_INVALID_CRL', `${source}: ${message}`, { file: source, field: '/trust/crl', hint, ...(cause === undefined ? {} : { cause }) });
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(text.includes('-----BEGIN X509 CRL-----') ? text.slice(text.indexOf('-----BEGIN X509 CRL-----')) : new Uint8Array(bytes));
  } catch (cause) {
    throw invalid('not a CRL (PEM "X509 CRL" or DER)', 'point trust.crl at the CRL file your PKI publishes (`openssl crl -in FILE -noout -text` must read it)', cause);
  }
  let issuer: X509Certificate | undefined;
  let named = false;
  for (const candidate of trust) {
    if (new x509.X509Certificate(candidate.raw).subject !== crl.issuer) continue;
    named = true;
    if (await crl.verify({ publicKey: new x509.X509Certificate(candidate.raw) }).catch(() => false)) {
      issuer = candidate;
      break;
    }
  }
  if (!issuer && named) {
    // The name is in trust.ca, the key is not: a CA re-keyed (or renewed with a new key) on one side only.
    throw invalid(`trust.ca has a certificate named "${crl.issuer}", but this CRL's signature does not verify with its key`, `the CA was probably re-keyed: put its current certificate in trust.ca (or take the CRL of the key trust.ca has), or check that the CRL is not corrupt`);
  }
  if (!issuer) {
    throw invalid(`no certificate in trust.ca issued this CRL ("${crl.issuer}")`, `add the CA "${crl.issuer}" to trust.ca, or check that this is the CRL of a CA you trust`);
  }
  const revoked = new Map<string, RevokedEntry>();
  for (const entry of crl.entries) {
    const serial = normalSerial(entry.serialNumber);
    revoked.set(serial, { serial, revocationDate: entry.revocationDate, ...(entry.reason === undefined ? {} : { reason: x509.X509CrlReason[entry.reason] }) });
  }
  return Object.freeze({
    source,
    pem: `-----BEGIN X509 CRL-----\n${(Buffer.from(crl.rawData).toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END X509 CRL-----\n`,
    issuer,
    issuerName: oneLineName(issuer.subject),
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    revoked,
  });
}

/** Largest CRL file read, as for a download (CRL_FETCH_DEFAULTS.maxBytes): big CAs publish CRLs of some MiB. */
export const MAX_CRL_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Read and verify a CRL file (PEM or DER), through the bounded reader: what is not a regular file
 * (a FIFO, a /proc file) is refused before it is read, and at most MAX_CRL_FILE_BYTES + 1 bytes are read.
 */
export async function readCrlFile(file: string, trust: readonly X509Certificate[]): Promise<{ crl: LoadedCrl; bytes: Buffer }> {
  let bytes: Buffer;
  try {
    bytes = await readBounded(file, MAX_CRL_FILE_BYTES);
  } catch (cause) {
    if (cause instanceof NotReadableAsFile) throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${file}: the CRL file ${cause.message}`, { cause, file, field: '/trust/crl', hint: cause.reason === 'timeout' ? 'its filesystem did not answer: check the mount' : 'point trust.crl at the CRL file itself (PEM or DER)' });
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${file}: cannot read the CRL file`, { cause, file, field: '/trust/crl', hint: 'check the path in trust.crl (relative paths resolve against the profile file)' });
  }
  return { crl: await parseCrl(bytes, file, trust), bytes };
}

/** What a CRL says about one certificate: listed, or not listed; undefined when the CRL is not its issuer's. */
export function lookup(crl: LoadedCrl, cert: X509Certificate): RevokedEntry | null | undefined {
  if (!cert.checkIssued(crl.issuer) || !cert.verify(crl.issuer.publicKey)) return undefined;
  return crl.revoked.get(normalSerial(cert.serialNumber)) ?? null;
}

/** The revocation of the first certificate of `chain` (leaf first) that a CRL lists. */
export function findRevoked(crls: readonly LoadedCrl[], chain: readonly X509Certificate[]): { cert: X509Certificate; entry: RevokedEntry; crl: LoadedCrl } | undefined {
  for (const cert of chain) {
    for (const crl of crls) {
      const entry = lookup(crl, cert);
      if (entry) return { cert, entry, crl };
    }
  }
  return undefined;
}

/** "certificate "CN=x" (serial 1A2B) was revoked on DATE (keyCompromise) according to SOURCE" */
export function describeRevocation(cert: X509Certificate, entry: RevokedEntry, source: string): string {
  return `certificate "${oneLineName(cert.subject)}" (serial ${entry.serial}) was revoked on ${entry.revocationDate.toISOString()}${entry.reason ? ` (${entry.reason})` : ''} according to ${source}`;
}
