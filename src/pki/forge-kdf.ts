import { pbkdf2Sync } from 'node:crypto';
import forge from 'node-forge';

/**
 * node-forge's key derivation for PKCS#12, corrected where it differs from OpenSSL and bounded:
 *
 * - PBES2 (the format of OpenSSL 3 and of current Windows exports) derives its key from the
 *   passphrase's UTF-8 bytes, as OpenSSL does; forge took one byte per UTF-16 unit, so a
 *   passphrase with "ü" could not open a file that OpenSSL opens.
 * - PBKDF2 runs in Node's native crypto (forge's own runs in JavaScript, 20-40× slower: a file
 *   exported with 2,000,000 iterations blocked a worker for about 40 s).
 * - Iteration counts above MAX_KDF_ITERATIONS are refused before any work: the count comes
 *   from the file, and forge's PKCS#12 derivation (MAC, legacy PBE) has no native form.
 *
 * Installed once, when this module is imported (only the PKCS#12 reader imports it).
 */

/** Highest key-derivation iteration count a PKCS#12 file may ask for (OpenSSL's default is 2,048). */
export const MAX_KDF_ITERATIONS = 2_500_000;

/** A PKCS#12 file asked for more key-derivation iterations than svcnode does on the event loop. */
export class KdfIterationsRefused extends Error {
  constructor(readonly iterations: number) {
    super(`the file asks for ${iterations} key-derivation iterations, more than the ${MAX_KDF_ITERATIONS} accepted`);
  }
}

/** forge's message digest names that node:crypto computes natively. */
const NATIVE_DIGESTS = new Set(['sha1', 'sha224', 'sha256', 'sha384', 'sha512']);

type Pbkdf2 = (password: string, salt: string, iterations: number, keyLength: number, md?: unknown, callback?: unknown) => string;
type Pkcs12Kdf = (password: string, salt: unknown, id: number, iterations: number, n: number, md?: unknown) => forge.util.ByteStringBuffer;
type Pbes2Cipher = (oid: string, params: unknown, password: string) => unknown;

interface ForgeInternals {
  pkcs5: { pbkdf2: Pbkdf2 };
  pkcs12: { generateKey: Pkcs12Kdf };
  pki: { pbe: { generatePkcs12Key: Pkcs12Kdf; getCipherForPBES2: Pbes2Cipher } };
}

function bounded(iterations: number): void {
  if (!(iterations <= MAX_KDF_ITERATIONS)) throw new KdfIterationsRefused(iterations);
}

const internals = forge as unknown as ForgeInternals;
const forgePbkdf2 = internals.pkcs5.pbkdf2;
const forgePkcs12Kdf = internals.pki.pbe.generatePkcs12Key;
const forgePbes2Cipher = internals.pki.pbe.getCipherForPBES2;

internals.pkcs5.pbkdf2 = (password, salt, iterations, keyLength, md, callback) => {
  bounded(iterations);
  const digest = (md as { algorithm?: string } | undefined)?.algorithm;
  if (callback === undefined && digest !== undefined && NATIVE_DIGESTS.has(digest)) {
    return pbkdf2Sync(Buffer.from(password, 'binary'), Buffer.from(salt, 'binary'), iterations, keyLength, digest).toString('binary');
  }
  return forgePbkdf2(password, salt, iterations, keyLength, md, callback);
};

const pkcs12Kdf: Pkcs12Kdf = (password, salt, id, iterations, n, md) => {
  bounded(iterations);
  return forgePkcs12Kdf(password, salt, id, iterations, n, md);
};
internals.pki.pbe.generatePkcs12Key = pkcs12Kdf;
internals.pkcs12.generateKey = pkcs12Kdf;

// forge hands PBKDF2 the passphrase as a binary string: give it the UTF-8 bytes, as OpenSSL uses.
internals.pki.pbe.getCipherForPBES2 = (oid, params, password) => forgePbes2Cipher(oid, params, forge.util.encodeUtf8(password));
