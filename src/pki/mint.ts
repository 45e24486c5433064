import 'reflect-metadata';
import { createPrivateKey, generateKeyPair, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';

/**
 * Minting of private CAs and leaf certificates with native crypto (never node-forge): test PKIs
 * and `svcnode certs init-ca` / `certs issue`.
 */

export type KeySpec = { type: 'rsa'; bits: 2048 | 3072 | 4096 | 1024 } | { type: 'ec'; curve: 'P-256' | 'P-384' };

export interface MintedCert {
  certPem: string;
  /** Unencrypted PKCS#8 PEM. */
  keyPem: string;
  cert: X509Certificate;
  key: KeyObject;
}

export interface MintCaOptions {
  /** Distinguished name, e.g. `CN=Test Root`. */
  subject: string;
  /** @defaultValue `{ type: 'rsa', bits: 2048 }` */
  key?: KeySpec;
  /** Signing CA; absent = self-signed root. */
  issuer?: MintedCert;
  /** @defaultValue now − 1 h */
  notBefore?: Date;
  /** @defaultValue now + 365 d */
  notAfter?: Date;
  pathLength?: number;
}

export type LeafUsage = 'server' | 'client' | 'both' | 'none';

export interface MintLeafOptions {
  subject: string;
  issuer: MintedCert;
  /** @defaultValue `{ type: 'rsa', bits: 2048 }` */
  key?: KeySpec;
  /** Extended key usage; `none` = codeSigning only (a certificate with the wrong EKU). */
  usage: LeafUsage;
  dnsNames?: string[];
  ipAddresses?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

export const DEFAULT_KEY: KeySpec = { type: 'rsa', bits: 2048 };
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

let providerSet = false;
function provider(): void {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as ReturnType<typeof x509.cryptoProvider.get>);
    providerSet = true;
  }
}

const generate = promisify(generateKeyPair);

async function newKeyPair(spec: KeySpec): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  if (spec.type === 'rsa') return generate('rsa', { modulusLength: spec.bits, publicExponent: 0x10001 });
  return generate('ec', { namedCurve: spec.curve });
}

/** The WebCrypto signature algorithm a key signs with. */
function signatureAlgorithm(key: KeyObject): webcrypto.RsaHashedImportParams | (webcrypto.EcKeyImportParams & { hash: string }) {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const curve = key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256';
  return { name: 'ECDSA', namedCurve: curve, hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
}

async function toCryptoKey(key: KeyObject, usage: 'sign' | 'verify'): Promise<webcrypto.CryptoKey> {
  const alg = signatureAlgorithm(key);
  const { subtle } = webcrypto;
  if (usage === 'sign') {
    return subtle.importKey('pkcs8', key.export({ format: 'der', type: 'pkcs8' }), alg, false, ['sign']);
  }
  return subtle.importKey('spki', key.export({ format: 'der', type: 'spki' }), alg, true, ['verify']);
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x01; // positive, no leading zero byte
  return bytes.toString('hex');
}

interface CertificateParams {
  subject: string;
  issuer: MintedCert | undefined;
  keySpec: KeySpec;
  notBefore: Date | undefined;
  notAfter: Date | undefined;
  extensions: x509.Extension[];
}

async function mint(p: CertificateParams): Promise<MintedCert> {
  provider();
  const pair = await newKeyPair(p.keySpec);
  const signer = p.issuer?.key ?? pair.privateKey;
  const publicKey = await toCryptoKey(pair.publicKey, 'verify');
  const extensions = [...p.extensions, await x509.SubjectKeyIdentifierExtension.create(publicKey)];
  let issuerName: x509.Name | string = p.subject;
  if (p.issuer) {
    const issuerCert = new x509.X509Certificate(p.issuer.certPem);
    issuerName = issuerCert.subjectName;
    const ski = issuerCert.getExtension(x509.SubjectKeyIdentifierExtension);
    if (ski) extensions.push(new x509.AuthorityKeyIdentifierExtension(ski.keyId));
  } else {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(publicKey));
  }
  const now = Date.now();
  const signingAlg = signatureAlgorithm(signer);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: p.subject,
    issuer: issuerName,
    notBefore: p.notBefore ?? new Date(now - HOUR_MS),
    notAfter: p.notAfter ?? new Date(now + 365 * DAY_MS),
    publicKey,
    signingKey: await toCryptoKey(signer, 'sign'),
    signingAlgorithm: signingAlg,
    extensions,
  });
  const certPem = cert.toString('pem') + '\n';
  const keyPem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return { certPem, keyPem, cert: new X509Certificate(certPem), key: createPrivateKey(keyPem) };
}

/** Mint a CA certificate: a self-signed root, or an intermediate when `issuer` is given. */
export async function mintCa(o: MintCaOptions): Promise<MintedCert> {
  const { KeyUsageFlags: K } = x509;
  return mint({
    subject: o.subject,
    issuer: o.issuer,
    keySpec: o.key ?? DEFAULT_KEY,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(true, o.pathLength, true),
      new x509.KeyUsagesExtension(K.keyCertSign | K.cRLSign | K.digitalSignature, true),
    ],
  });
}

const EKU: Record<LeafUsage, string[]> = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  none: [x509.ExtendedKeyUsage.codeSigning],
};

/** Mint an end-entity certificate signed by `issuer`, with EKU and SANs. */
export async function mintLeaf(o: MintLeafOptions): Promise<MintedCert> {
  const { KeyUsageFlags: K } = x509;
  const keySpec = o.key ?? DEFAULT_KEY;
  const usage = keySpec.type === 'rsa' ? K.digitalSignature | K.keyEncipherment : K.digitalSignature;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension(EKU[o.usage], false),
  ];
  const names = [
    ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  return mint({ subject: o.subject, issuer: o.issuer, keySpec, notBefore: o.notBefore, notAfter: o.notAfter, extensions });
}
