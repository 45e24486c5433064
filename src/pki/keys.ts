import { createPrivateKey, type KeyObject } from 'node:crypto';
import { errorCode } from '../errors.js';
import { bundleError, PASSPHRASE_HINT } from './bundle-error.js';

/** A private key as found in a file: one PEM block, or DER in a known structure. */
export type KeyInput =
  | { format: 'pem'; text: string; encrypted: boolean }
  | { format: 'der'; der: Buffer; type: 'pkcs8' | 'pkcs1' | 'sec1'; encrypted: boolean };

/** Node's decryption failures; which one appears depends on the API and the format. */
const DECRYPT_FAILURES = new Set(['ERR_OSSL_BAD_DECRYPT', 'ERR_OSSL_CRYPTO_INTERRUPTED_OR_CANCELLED', 'ERR_MISSING_PASSPHRASE']);

/**
 * Load a private key with Node crypto (PKCS#1, PKCS#8, SEC1; encrypted PKCS#8 and Proc-Type PEM),
 * turning Node's inconsistent passphrase errors into SVCNODE_MISSING_PASSPHRASE / SVCNODE_BAD_PASSPHRASE.
 */
export function loadPrivateKey(input: KeyInput, passphrase: string | undefined, file: string): KeyObject {
  if (input.encrypted && passphrase === undefined) {
    throw bundleError('SVCNODE_MISSING_PASSPHRASE', file, 'the private key is encrypted and no passphrase is configured', PASSPHRASE_HINT);
  }
  try {
    const options = input.format === 'pem' ? { key: input.text, format: 'pem' as const } : { key: input.der, format: 'der' as const, type: input.type };
    return createPrivateKey(input.encrypted && passphrase !== undefined ? { ...options, passphrase } : options);
  } catch (cause) {
    // OpenSSL 3 refuses the legacy PKCS#5 v1 / PKCS#12 ciphers (RC2, RC4, DES with MD5) before it tries any passphrase.
    if (input.encrypted && errorCode(cause) === 'ERR_OSSL_EVP_UNSUPPORTED') {
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the private key is encrypted with a legacy algorithm (such as PBE-SHA1-RC2-40 or PBE-MD5-DES) that this OpenSSL no longer enables; the passphrase was not the problem', 're-encrypt it: openssl pkcs8 -topk8 -v2 aes-256-cbc -provider legacy -provider default -in OLD.key -out NEW.key', cause);
    }
    // With a wrong passphrase, CBC padding still checks out about once in 256 tries and the garbage then
    // fails to parse as a key: any failure to open an encrypted key with a passphrase is reported as such.
    if (input.encrypted && (passphrase !== undefined || DECRYPT_FAILURES.has(errorCode(cause) ?? '') || /bad decrypt/i.test(String(cause)))) {
      throw bundleError('SVCNODE_BAD_PASSPHRASE', file, 'the private key cannot be decrypted with the configured passphrase', 'check the passphrase (spaces count, and so does a newline inside the value; a passphrase file loses one trailing newline); if it is right, the key file is corrupt', cause);
    }
    throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the private key is corrupt or in an unsupported format', 'export the key again as PKCS#8 PEM (openssl pkcs8 -topk8)', cause);
  }
}
