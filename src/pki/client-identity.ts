import type { KeyObject, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { BundleError, errorCode, errorMessage } from '../errors.js';
import { bundleError } from './bundle-error.js';
import { orderChain } from './chain.js';
import { clientAuthFinding, dateFindings, tls13KeyFinding } from './findings.js';
import { oneLineName, weakSignatureDigest } from './inspect.js';
import { derShape } from './der.js';
import { parseMaterial, readLimited, readMaterial, type Material } from './material.js';
import { assertOneIdentity } from './pkcs12.js';
import type { ClientIdentity, Finding } from './types.js';

/** Loading and checking the client identity of a profile (certificate + key, or PKCS#12). */

export type ClientSource =
  | { kind: 'pem'; certificate: string; key: string }
  | { kind: 'pkcs12'; pkcs12: string };

export interface ClientPolicy {
  minKeyBits: number;
  expiryWarningDays: number;
  now: Date;
}

export interface LoadedClient {
  identity: ClientIdentity;
  findings: Finding[];
  /** Every file read, for the profile version. */
  materials: Material[];
}

export async function loadClientIdentity(source: ClientSource, passphrase: string | undefined, policy: ClientPolicy): Promise<LoadedClient> {
  let key: KeyObject;
  let leaf: X509Certificate;
  let others: X509Certificate[];
  let certFile: string;
  let keyFile: string;
  let materials: Material[];
  let warnOnOrder: boolean;

  if (source.kind === 'pkcs12') {
    const p12 = await readMaterial(source.pkcs12, { passphrase });
    if (p12.form !== 'pkcs12') {
      throw bundleError('SVCNODE_INVALID_BUNDLE', p12.file, `"pkcs12" names a ${p12.form} file, not a PKCS#12 bundle`, 'use "client": {"certificate": …, "key": …} for PEM or DER files');
    }
    assertOneIdentity(p12.file, p12.keys, p12.certificates);
    const k = p12.keys[0];
    if (!k) throw bundleError('SVCNODE_NO_PRIVATE_KEY', p12.file, 'the PKCS#12 file contains no private key', 'export the PKCS#12 file again including the private key');
    if (!p12.pairedLeaf) {
      throw p12.certificates.length === 0
        ? bundleError('SVCNODE_NO_CERTIFICATE', p12.file, 'the PKCS#12 file holds a private key but no certificate', 'export it again with the client certificate and its intermediates (openssl pkcs12 -export -in CERT -inkey KEY -certfile CHAIN)')
        : bundleError('SVCNODE_KEY_MISMATCH', p12.file, 'no certificate in the PKCS#12 file matches its private key', 'export the key together with its own certificate');
    }
    key = k;
    leaf = p12.pairedLeaf;
    others = p12.certificates;
    certFile = keyFile = p12.file;
    materials = [p12];
    warnOnOrder = false; // PKCS#12 bag order carries no meaning
  } else {
    // Recognised before parsing: opening a PKCS#12 without its passphrase would fail with a
    // passphrase message that a profile with "passphrase" set cannot act on.
    const certBytes = await readLimited(source.certificate);
    if (!certBytes.includes('-----BEGIN ') && derShape(certBytes) === 'pkcs12') throw pkcs12InPemFields(source.certificate, 'certificate');
    const certs = parseMaterial(certBytes, source.certificate, { keys: 'ignore' });
    if (certs.certificates.length === 0) {
      // The request sent to the CA, kept by mistake instead of what the CA sent back.
      if (certBytes.includes('-----BEGIN CERTIFICATE REQUEST-----') || certBytes.includes('-----BEGIN NEW CERTIFICATE REQUEST-----')) {
        throw bundleError('SVCNODE_NO_CERTIFICATE', certs.file, 'the file holds a certificate signing request (CSR), not a certificate', 'use the certificate the CA issued for this request (the PKI team or the registration portal returns it)');
      }
      throw bundleError('SVCNODE_NO_CERTIFICATE', certs.file, 'the file contains no certificate', 'point "certificate" at the PEM or DER client certificate (with its intermediates)');
    }
    const keys = await readMaterial(source.key, { passphrase }).catch((error: unknown) => {
      // An empty file read for "key" lacks a key, not a certificate.
      throw error instanceof BundleError && error.code === 'SVCNODE_NO_CERTIFICATE' ? bundleError('SVCNODE_NO_PRIVATE_KEY', source.key, 'the key file is empty', 'point "key" at the private key file your PKI team issued with the certificate', error) : error;
    });
    if (keys.keys.length === 0) {
      throw bundleError('SVCNODE_NO_PRIVATE_KEY', keys.file, 'the file contains no private key', 'point "key" at the private key file (PEM or DER, PKCS#1, PKCS#8 or SEC1)');
    }
    // A file may hold several keys (an old one left above the new): the one that matches is used.
    const pair = keys.keys.map((candidate) => ({ candidate, cert: certs.certificates.find((c) => c.checkPrivateKey(candidate)) })).find((p) => p.cert !== undefined);
    if (!pair?.cert) {
      throw bundleError('SVCNODE_KEY_MISMATCH', keys.file, `the private key${keys.keys.length > 1 ? ` (any of the ${keys.keys.length} in the file)` : ''} does not belong to the certificate ${oneLineName(certs.certificates[0]?.subject ?? '')} in ${certs.file}`, 'use the key that was generated with this certificate request, or the certificate issued for this key');
    }
    key = pair.candidate;
    leaf = pair.cert;
    others = certs.certificates;
    certFile = certs.file;
    keyFile = keys.file;
    materials = [certs, keys];
    warnOnOrder = true;
  }

  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType === 'rsa' && bits !== undefined && bits < policy.minKeyBits) {
    throw bundleError('SVCNODE_WEAK_KEY', keyFile, `the RSA client key has ${bits} bits; at least ${policy.minKeyBits} are required`, `issue a new client certificate with an RSA key of ${policy.minKeyBits} bits or more, or an EC P-256 key`);
  }

  const ordered = orderChain(leaf, others);
  if (ordered.unlinked.length > 0) {
    // An old and a renewed copy of the same CA (same name): one links, the other reads as a stranger.
    const twin = ordered.unlinked.map((u) => ({ u, linked: ordered.chain.find((c) => c.subject === u.subject) })).find((p) => p.linked);
    if (twin?.linked) {
      const copy = (c: X509Certificate): string => `serial ${c.serialNumber}, valid until ${new Date(c.validTo).toISOString().slice(0, 10)}`;
      throw bundleError('SVCNODE_CHAIN_BROKEN', certFile, `the file holds two certificates for "${oneLineName(twin.u.subject)}" (${copy(twin.linked)}; ${copy(twin.u)}), as after a CA renewal`, 'keep only the current one (the newer, not expired) and remove the other from the file');
    }
    // Named and signed as the issuer, yet not one to OpenSSL: its keyUsage forbids signing certificates.
    const top = ordered.chain[ordered.chain.length - 1] ?? leaf;
    const signer = ordered.unlinked.find((u) => top.issuer === u.subject && top.verify(u.publicKey));
    if (signer) {
      throw bundleError('SVCNODE_CHAIN_BROKEN', certFile, `"${oneLineName(signer.subject)}" signed "${oneLineName(top.subject)}" but may not sign certificates (its keyUsage lacks keyCertSign): OpenSSL, here and on every server, does not take it as the issuer`, 'ask the PKI team for a client certificate issued by a CA whose keyUsage includes keyCertSign, with that CA\'s chain');
    }
    const names = ordered.unlinked.map((c) => oneLineName(c.subject)).join('; ');
    throw bundleError('SVCNODE_CHAIN_BROKEN', certFile, `certificates that do not link to the client certificate ${oneLineName(leaf.subject)}: ${names}`, 'include only the client certificate and the intermediates that issued it (each issuing the one before)');
  }

  const findings: Finding[] = [];
  if (ordered.reordered && warnOnOrder) {
    findings.push({ severity: 'warning', code: 'CHAIN_REORDERED', file: certFile, message: `the certificates in ${certFile} are not in leaf-then-issuer order; they are sent reordered`, hint: 'put the client certificate first, then its issuer, then that issuer\'s issuer' });
  }
  const keyPem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
  assertUsableInTls(keyPem, [leaf, ...ordered.chain], keyFile, certFile);

  findings.push(...dateFindings(leaf, 'client', certFile, policy.now, policy.expiryWarningDays));
  findings.push(...clientAuthFinding(leaf, certFile, policy.now));
  findings.push(...tls13KeyFinding(leaf, certFile, policy.now));
  for (const cert of ordered.chain) findings.push(...dateFindings(cert, 'chain', certFile, policy.now, policy.expiryWarningDays));

  const identity = { leaf, chain: ordered.chain, sources: [...new Set([certFile, keyFile])] } as unknown as ClientIdentity;
  Object.defineProperty(identity, 'key', { value: key, enumerable: false });
  Object.defineProperty(identity, 'keyPem', { value: keyPem, enumerable: false });
  return { identity: Object.freeze(identity), findings, materials };
}

function pkcs12InPemFields(file: string, field: 'certificate' | 'key'): Error {
  return bundleError('SVCNODE_INVALID_BUNDLE', file, `"${field}" names a PKCS#12 bundle`, 'use "client": {"pkcs12": "…", "passphrase": …} for .p12/.pfx files, instead of "certificate" and "key"');
}

/** Build the secure context the call path will build, so bad material fails at load. */
function assertUsableInTls(keyPem: string, certs: X509Certificate[], file: string, certFile: string): void {
  try {
    createSecureContext({ key: keyPem, cert: certs.map((c) => c.toString()).join('\n') });
  } catch (cause) {
    const code = errorCode(cause);
    if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
      throw bundleError('SVCNODE_KEY_MISMATCH', file, 'the private key does not belong to the client certificate', 'use the key that was generated with this certificate', cause);
    }
    // The certificates, not the key: one of them is signed with a digest OpenSSL 3 no longer accepts.
    const weak = code === 'ERR_SSL_CA_MD_TOO_WEAK' ? certs.find((c) => weakSignatureDigest(c) !== undefined) : undefined;
    if (weak) {
      throw bundleError('SVCNODE_INVALID_BUNDLE', certFile, `the certificate ${oneLineName(weak.subject)} is signed with ${weakSignatureDigest(weak) ?? ''} by its issuer, which OpenSSL 3 refuses for TLS ("ca md too weak")`, 'ask the PKI team to reissue it signed with SHA-256 or better (the key is fine and can stay)', cause);
    }
    throw bundleError('SVCNODE_INVALID_BUNDLE', file, `OpenSSL refuses this key and certificate (${code ?? errorMessage(cause)})`, 'check the key type and size (RSA ≥ 2048 or EC P-256/P-384)', cause);
  }
}
