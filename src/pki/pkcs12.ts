import { createHmac, createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BundleError, errorMessage, type ErrorCode } from '../errors.js';
import { bundleError, PASSPHRASE_HINT } from './bundle-error.js';
import { KdfIterationsRefused, MAX_KDF_ITERATIONS } from './forge-kdf.js';

/**
 * PKCS#12/PFX reading. Node 20 cannot load legacy RC2-40/3DES files natively, so
 * node-forge parses them — once per (bytes, passphrase): forge blocks the event loop (its key
 * derivation is corrected, made native where it can be and bounded in forge-kdf.ts). Forge only decodes; keys and certificates go through DER to Node crypto, which
 * also covers EC material that forge leaves as raw ASN.1.
 */

export interface Pkcs12Contents {
  /** Every private key, in bag order (a profile takes a file with one; `certs inspect` lists them all). */
  keys: KeyObject[];
  /** The certificate paired with the first key (by localKeyId, else by public key). */
  leaf: X509Certificate | undefined;
  /** Every certificate in the file, leaf included, in bag order. */
  certificates: X509Certificate[];
  /** Each key's and certificate's friendlyName (the alias keytool lists), in the same orders; undefined where a bag has none. */
  aliases: { keys: (string | undefined)[]; certificates: (string | undefined)[] };
}

/** The normalised, forge-free form kept in the cache. */
export interface Normalised {
  keyPems: string[];
  leafIndex: number | undefined;
  certificatesDer: Buffer[];
  keyAliases: (string | undefined)[];
  certificateAliases: (string | undefined)[];
}

const CACHE_LIMIT = 64;
const cache = new Map<string, Normalised>();
/** Per-process key so cache keys do not let anyone test passphrase guesses offline. */
const cacheSecret = randomBytes(32);
let forgeParses = 0;

/** How many times forge has parsed a PKCS#12 file in this process (for tests). */
export function pkcs12ForgeParseCount(): number {
  return forgeParses;
}

/** Drop the normalised PKCS#12 cache (for tests). */
export function clearPkcs12Cache(): void {
  cache.clear();
}

function cacheKey(bytes: Buffer, passphrase: string | undefined): string {
  const h = createHmac('sha256', cacheSecret).update(bytes);
  h.update(passphrase === undefined ? '\u0000none' : `\u0001${passphrase}`);
  return h.digest('hex');
}

function remember(key: string, normalised: Normalised): void {
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(key, normalised);
}

/** Parse (or fetch from cache) a PKCS#12 file; no passphrase means the empty password. */
export function readPkcs12(bytes: Buffer, passphrase: string | undefined, file: string): Pkcs12Contents {
  const key = cacheKey(bytes, passphrase);
  let normalised = cache.get(key);
  if (!normalised) {
    normalised = parseWithForge(bytes, passphrase, file);
    remember(key, normalised);
  }
  const certificates = normalised.certificatesDer.map((der) => new X509Certificate(der));
  return {
    keys: normalised.keyPems.map((pem) => createPrivateKey(pem)),
    leaf: normalised.leafIndex === undefined ? undefined : certificates[normalised.leafIndex],
    certificates,
    aliases: { keys: normalised.keyAliases, certificates: normalised.certificateAliases },
  };
}

/** Algorithms OpenSSL writes into PKCS#12 files that forge cannot read, by OID. */
const ALGORITHM_NAMES: Readonly<Record<string, string>> = {
  '1.2.392.200011.61.1.1.1.2': 'camellia-128-cbc',
  '1.2.392.200011.61.1.1.1.3': 'camellia-192-cbc',
  '1.2.392.200011.61.1.1.1.4': 'camellia-256-cbc',
  '1.2.410.200046.1.1.2': 'aria-128-cbc',
  '1.2.410.200046.1.1.7': 'aria-192-cbc',
  '1.2.410.200046.1.1.12': 'aria-256-cbc',
  '2.16.840.1.101.3.4.2.7': 'a sha3-224 MAC',
  '2.16.840.1.101.3.4.2.8': 'a sha3-256 MAC',
  '2.16.840.1.101.3.4.2.9': 'a sha3-384 MAC',
  '2.16.840.1.101.3.4.2.10': 'a sha3-512 MAC',
};

/**
 * PKCS#12 encryptions OpenSSL 3 reads only with -legacy and forge not at all (RFC 7292 appendix C):
 * re-encrypting the file with AES-256 makes it readable.
 */
const LEGACY_CIPHERS: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.12.1.1': 'RC4-128 (pbeWithSHAAnd128BitRC4)',
  '1.2.840.113549.1.12.1.2': 'RC4-40 (pbeWithSHAAnd40BitRC4)',
  '1.2.840.113549.1.12.1.4': '2-key 3DES (pbeWithSHAAnd2-KeyTripleDES-CBC)',
  '1.2.840.113549.1.12.1.5': 'RC2-128 (pbeWithSHAAnd128BitRC2-CBC)',
};

/** secretBag: a Java keystore's SecretKeyEntry (a symmetric key), which is neither a certificate nor a private key. */
const SECRET_BAG = '1.2.840.113549.1.12.10.1.5';

/** The OID forge names when it refused the file's algorithm or bag type, not its bytes or passphrase. */
function unsupportedOid(error: unknown): string | undefined {
  const message = errorMessage(error);
  if (!/unsupported/i.test(message)) return undefined;
  const oid = (error as { oid?: unknown }).oid ?? /algorithm: ([\d.]+)/.exec(message)?.[1];
  return typeof oid === 'string' ? oid : undefined;
}

/** What forge cannot read, said so that the installer can act on it. */
function unsupportedContent(oid: string, file: string, cause: unknown): Error {
  const name = basename(file);
  const stem = name.replace(/\.(p12|pfx)$/i, '');
  if (oid === SECRET_BAG) {
    return bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#12 file holds a secret-key entry (a Java SecretKeyEntry: a symmetric key, not a certificate or private key), which svcnode cannot read', `export the store without it: keytool -importkeystore -srckeystore ${name} -destkeystore ${stem}-client.p12 -deststoretype PKCS12 -srcalias ALIAS, with ALIAS the PrivateKeyEntry that keytool -list -keystore ${name} shows, then use ${stem}-client.p12`, cause);
  }
  const cipher = LEGACY_CIPHERS[oid];
  if (cipher) {
    return bundleError('SVCNODE_INVALID_BUNDLE', file, `the PKCS#12 file is encrypted with ${cipher}, which svcnode cannot read (AES, 3-key 3DES and RC2-40 are supported)`, `re-encrypt it with AES-256: openssl pkcs12 -legacy -in ${name} -nodes -out ${stem}.pem, then openssl pkcs12 -export -in ${stem}.pem -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 -out ${stem}-aes.p12, and delete ${stem}.pem (it holds the key unencrypted)`, cause);
  }
  const algorithm = Object.hasOwn(ALGORITHM_NAMES, oid) ? ALGORITHM_NAMES[oid] : `the algorithm OID ${oid}`;
  return bundleError('SVCNODE_INVALID_BUNDLE', file, `the PKCS#12 file uses ${algorithm}, which svcnode cannot read (AES, 3-key 3DES and RC2-40 encryption with SHA-1/SHA-2 MACs are supported)`, 're-export it: openssl pkcs12 -export -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 …, or convert it to PEM', cause);
}

function isPasswordFailure(error: unknown): boolean {
  return /MAC could not be verified|wrong password|Invalid password/i.test(errorMessage(error));
}

interface ForgeBag {
  key?: forge.pki.PrivateKey | null;
  cert?: forge.pki.Certificate | null;
  asn1?: forge.asn1.Asn1;
  attributes?: { localKeyId?: string[]; friendlyName?: string[] };
}

function toBuffer(asn1: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/**
 * Parse a PKCS#12 file into the cache on a worker thread, so that its key derivation (seconds for
 * a file with a high iteration count) never holds the event loop: a worker keeps renewing job
 * locks and answering /healthz while a profile loads. Throws what readPkcs12 would. Where the
 * module does not run as built JavaScript (a TypeScript loader), readPkcs12 parses in place.
 */
export async function preparePkcs12(bytes: Buffer, passphrase: string | undefined, file: string): Promise<void> {
  const key = cacheKey(bytes, passphrase);
  if (cache.has(key) || !THREADED) return;
  const normalised = await parseOnThread(bytes, passphrase, file);
  if (normalised) remember(key, normalised);
}

const WORKER_URL = new URL('./pkcs12-thread.js', import.meta.url);
const THREADED = import.meta.url.endsWith('.js');

/** What the thread answers: the normalised contents, or the BundleError's fields. */
export type ThreadAnswer = { normalised: Normalised } | { error: { code: ErrorCode; message: string; hint: string | undefined; file: string | undefined } } | { failed: true };

function parseOnThread(bytes: Buffer, passphrase: string | undefined, file: string): Promise<Normalised | undefined> {
  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL, { workerData: { bytes, passphrase, file } });
    } catch {
      resolve(undefined);
      return;
    }
    // Anything but an answer (the thread could not start, crashed): readPkcs12 parses in place.
    worker.once('error', () => resolve(undefined));
    worker.once('exit', () => resolve(undefined));
    worker.once('message', (answer: ThreadAnswer) => {
      if ('normalised' in answer) resolve({ ...answer.normalised, certificatesDer: answer.normalised.certificatesDer.map((der) => Buffer.from(der)) });
      else if ('error' in answer) reject(new BundleError(answer.error.code, answer.error.message, { ...(answer.error.file ? { file: answer.error.file } : {}), ...(answer.error.hint ? { hint: answer.error.hint } : {}) }));
      else resolve(undefined);
    });
  });
}

function corrupt(file: string, cause: unknown): Error {
  return bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#12 file is corrupt, truncated or uses an unsupported encryption', 're-export it (openssl pkcs12 -export) or convert it to PEM', cause);
}

/** The parse itself, for the worker thread. */
export function parseWithForge(bytes: Buffer, passphrase: string | undefined, file: string): Normalised {
  forgeParses += 1;
  let p12: forge.pkcs12.Pkcs12Pfx;
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')), false);
  } catch (cause) {
    throw corrupt(file, cause);
  }
  // PFX ::= SEQUENCE { version, authSafe, macData OPTIONAL } (RFC 7292 §4). Without a MAC nothing
  // tells a wrong passphrase from damage: the decryption's padding check passes for about one wrong
  // passphrase in 250, and the garbage it yields then fails to parse.
  const withoutMac = Array.isArray(asn1.value) && asn1.value.length < 3;
  const wrongPassphrase = (cause: unknown): Error =>
    passphrase === undefined
      ? bundleError('SVCNODE_MISSING_PASSPHRASE', file, 'the PKCS#12 file is protected by a passphrase and none is configured', PASSPHRASE_HINT, cause)
      : bundleError(
          'SVCNODE_BAD_PASSPHRASE',
          file,
          `the PKCS#12 file cannot be opened with the configured passphrase${withoutMac ? ' (the file has no integrity check (MAC), so a wrong passphrase and a damaged file look alike)' : ''}`,
          `check the passphrase (spaces count, and so does a newline inside the value; a passphrase file loses one trailing newline)${withoutMac ? '; if it is right, the file is damaged: re-export it (openssl pkcs12 -export, which adds a MAC by default)' : ''}`,
          cause,
        );
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, passphrase ?? '');
  } catch (cause) {
    if (cause instanceof KdfIterationsRefused) {
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, `the PKCS#12 file asks for ${cause.iterations} key-derivation iterations, more than the ${MAX_KDF_ITERATIONS} svcnode accepts (deriving them would block the worker)`, 're-export it with a usual count (openssl pkcs12 -export -iter 10000 …) or convert it to PEM', cause);
    }
    const unsupported = unsupportedOid(cause);
    if (unsupported) throw unsupportedContent(unsupported, file, cause);
    if (isPasswordFailure(cause) || withoutMac) throw wrongPassphrase(cause);
    throw corrupt(file, cause);
  }

  const bagsOf = (bagType: string): ForgeBag[] => (p12.getBags({ bagType })[bagType] ?? []);
  const keyBags = [...bagsOf(forge.pki.oids.pkcs8ShroudedKeyBag ?? ''), ...bagsOf(forge.pki.oids.keyBag ?? '')];
  const certBags = bagsOf(forge.pki.oids.certBag ?? '');

  const unreadable = (cause?: unknown): Error =>
    bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#12 file holds a key or certificate that cannot be read', 're-export it (openssl pkcs12 -export) or convert it to PEM', cause);
  let certificates: { der: Buffer; cert: X509Certificate; localKeyId: string | undefined; alias: string | undefined }[];
  let keys: { key: KeyObject; localKeyId: string | undefined; alias: string | undefined }[];
  try {
    certificates = certBags.map((bag) => {
      const der = bag.cert ? toBuffer(forge.pki.certificateToAsn1(bag.cert)) : bag.asn1 ? toBuffer(bag.asn1) : undefined;
      if (!der) throw unreadable();
      return { der, cert: new X509Certificate(der), localKeyId: bag.attributes?.localKeyId?.[0], alias: bag.attributes?.friendlyName?.[0] };
    });
    keys = keyBags.map((bag) => {
      const der = bag.key ? toBuffer(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))) : bag.asn1 ? toBuffer(bag.asn1) : undefined;
      if (!der) throw unreadable();
      return { key: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }), localKeyId: bag.attributes?.localKeyId?.[0], alias: bag.attributes?.friendlyName?.[0] };
    });
  } catch (cause) {
    throw cause instanceof BundleError ? cause : unreadable(cause);
  }

  // forge reads an RSA-PSS key as a plain RSA one and writes it back so: an RSA-PSS certificate then
  // matches no key. The same key numbers, labelled RSA-PSS again, match it.
  if (certificates.some((c) => c.cert.publicKey.asymmetricKeyType === 'rsa-pss')) {
    keys = keys.map((k) => (k.key.asymmetricKeyType === 'rsa' && !certificates.some((c) => c.cert.checkPrivateKey(k.key)) ? { ...k, key: asRsaPss(k.key) } : k));
  }
  // Pair the first key by localKeyId first, then by public key; the pairing is always confirmed by the key itself.
  const first = keys[0];
  const byId = certificates.findIndex((c) => first?.localKeyId !== undefined && c.localKeyId === first.localKeyId && c.cert.checkPrivateKey(first.key));
  const certIndex = !first ? -1 : byId >= 0 ? byId : certificates.findIndex((c) => c.cert.checkPrivateKey(first.key));
  return {
    keyPems: keys.map((k) => k.key.export({ format: 'pem', type: 'pkcs8' }).toString()),
    leafIndex: certIndex >= 0 ? certIndex : undefined,
    certificatesDer: certificates.map((c) => c.der),
    keyAliases: keys.map((k) => k.alias),
    certificateAliases: certificates.map((c) => c.alias),
  };
}

/**
 * A profile presents one identity: a PKCS#12 file with several must not have one picked for the
 * operator. Throws, naming each key's certificate, when `keys` holds more than one.
 */
export function assertOneIdentity(file: string, keys: readonly KeyObject[], certificates: readonly X509Certificate[]): void {
  if (keys.length <= 1) return;
  const owners = keys.map((k) => certificates.find((c) => c.checkPrivateKey(k))?.subject.replace(/\n/g, ', ') ?? 'no certificate in the file');
  throw bundleError('SVCNODE_INVALID_BUNDLE', file, `the PKCS#12 file holds ${keys.length} private keys (client identities: ${owners.join('; ')}); a profile uses one`, 'export the identity this profile should use into a file of its own (openssl pkcs12 -export with that key and certificate; svcnode certs inspect lists each key with its certificate)');
}

/** id-RSASSA-PSS (1.2.840.113549.1.1.10) in DER, without parameters: any hash, as the certificate allows. */
const RSA_PSS_ALGORITHM = Buffer.from('300b06092a864886f70d01010a', 'hex');

/** A DER length field. */
function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const der = (tag: number, ...parts: Buffer[]): Buffer => {
  const value = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), derLength(value.length), value]);
};

/** The same RSA key as an RSA-PSS one: PKCS#8 with the RSASSA-PSS algorithm around its PKCS#1 form. */
function asRsaPss(key: KeyObject): KeyObject {
  const pkcs1 = key.export({ type: 'pkcs1', format: 'der' });
  try {
    return createPrivateKey({ key: der(0x30, Buffer.from([0x02, 0x01, 0x00]), RSA_PSS_ALGORITHM, der(0x04, pkcs1)), format: 'der', type: 'pkcs8' });
  } catch {
    return key;
  }
}
