import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SvcnodeError } from '../../src/errors.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { PROFILE_FILE_HINTS, readLimited, readMaterial } from '../../src/pki/material.js';
import { stuckReads } from '../../src/regular-file.js';
import { MAX_KDF_ITERATIONS } from '../../src/pki/forge-kdf.js';
import { mintLeaf } from '../../src/pki/mint.js';
import { clearPkcs12Cache, parseWithForge, pkcs12ForgeParseCount } from '../../src/pki/pkcs12.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, multiIdentityPkcs12, opensslPkcs12, type MintedCert, type TestPki } from '../helpers/pki.js';
import { holdThreadPool } from '../helpers/thread-pool.js';

const PASS = 'corr3ct horse';

let pki: TestPki;
let ec: MintedCert;

/** Await a rejection and return its stable code. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SvcnodeError);
    const e = error as SvcnodeError;
    expect(e.message).not.toContain('PRIVATE KEY');
    expect(e.message).not.toContain(PASS);
    expect(e.file).toBeDefined();
    expect(e.hint).toBeTruthy();
    return e.code;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  pki = await createTestPki();
  ec = await mintLeaf({ subject: 'CN=ec-bot', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-256' } });
});
afterAll(() => pki.cleanup());

describe('chains as banks and Windows CAs hand them over', () => {
  /** `openssl …` with the output file returned. */
  const openssl = (out: string, ...args: string[]): string => {
    execFileSync('openssl', [...args, '-out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    return out;
  };
  const chainFile = (): string => pki.write('p7-chain.pem', ec.certPem + pki.intermediate.certPem);

  it.each(['PEM', 'DER'])('a PKCS#7 (.p7b) chain in %s: its certificates in order, EC included', async (form) => {
    const file = openssl(join(pki.dir, `chain-${form}.p7b`), 'crl2pkcs7', '-nocrl', '-certfile', chainFile(), '-outform', form);
    const m = await readMaterial(file);
    expect(m.certificates.map((c) => c.fingerprint256)).toEqual([ec.cert.fingerprint256, pki.intermediate.cert.fingerprint256]);
    expect(m.form).toBe(form === 'DER' ? 'pkcs7' : 'pem');
  });

  it('a TRUSTED CERTIFICATE block (openssl x509 -trustout): the certificate, its trust settings left aside', async () => {
    const file = openssl(join(pki.dir, 'trusted.pem'), 'x509', '-in', pki.files.clientCert, '-trustout', '-addtrust', 'clientAuth');
    expect((await readMaterial(file)).certificates.map((c) => c.fingerprint256)).toEqual([pki.client.cert.fingerprint256]);
  });

  it('spaces at line ends (as e-mail and web consoles leave them), in certificates and keys', async () => {
    const spaced = (pem: string): string => pem.replace(/\n/g, '  \n');
    const file = pki.write('spaced.pem', spaced(pki.client.certPem) + spaced(pki.client.keyPem));
    const m = await readMaterial(file);
    expect(m.certificates.map((c) => c.fingerprint256)).toEqual([pki.client.cert.fingerprint256]);
    expect(pki.client.cert.checkPrivateKey(m.keys[0]!)).toBe(true);
  });

  it.each([
    ['UTF-16LE with a byte-order mark (Notepad "Unicode")', (t: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(t, 'utf16le')])],
    ['UTF-16LE without a mark', (t: string) => Buffer.from(t, 'utf16le')],
    ['UTF-16BE with a byte-order mark', (t: string) => Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(t, 'utf16le').swap16()])],
  ])('a PEM file saved as %s', async (_label, encode) => {
    const file = join(pki.dir, 'utf16.pem');
    writeFileSync(file, encode(pki.client.certPem + pki.intermediate.certPem));
    expect((await readMaterial(file)).certificates.map((c) => c.fingerprint256)).toEqual([pki.client.cert.fingerprint256, pki.intermediate.cert.fingerprint256]);
  });
});

describe('certificates by content', () => {
  it('reads a single PEM certificate', async () => {
    const m = await readMaterial(pki.files.clientCert);
    expect(m.form).toBe('pem');
    expect(m.certificates.map((c) => c.fingerprint256)).toEqual([pki.client.cert.fingerprint256]);
  });

  it('reads several PEM blocks in file order, ignoring text around them', async () => {
    const file = pki.write('bag.txt', 'Bag Attributes\n    friendlyName: bot\n', pki.client.certPem, 'subject=CN = x\n', pki.intermediate.certPem, pki.root.certPem);
    const m = await readMaterial(file);
    expect(m.certificates.map((c) => c.subject)).toEqual([pki.client.cert.subject, pki.intermediate.cert.subject, pki.root.cert.subject]);
  });

  it('reads a DER certificate whatever the extension', async () => {
    const file = join(pki.dir, 'root.pem.txt');
    writeFileSync(file, pki.root.cert.raw);
    const m = await readMaterial(file);
    expect(m.form).toBe('der-certificate');
    expect(m.certificates[0]?.fingerprint256).toBe(pki.root.cert.fingerprint256);
  });

  it('rejects corrupt and truncated PEM and DER with SVCNODE_INVALID_BUNDLE', async () => {
    const pem = pki.client.certPem;
    const corrupt = pki.write('corrupt.pem', pem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!!!!!!!!!!!!!!!!!'));
    const truncated = pki.write('truncated.pem', pem.slice(0, pem.length / 2));
    const der = pki.client.cert.raw;
    const truncatedDer = join(pki.dir, 'truncated.cer');
    writeFileSync(truncatedDer, der.subarray(0, der.length - 40));
    const garbage = join(pki.dir, 'garbage.bin');
    writeFileSync(garbage, Buffer.from('this is not a certificate at all'));
    for (const file of [corrupt, truncated, truncatedDer, garbage]) {
      expect(await codeOf(readMaterial(file)), file).toBe('SVCNODE_INVALID_BUNDLE');
    }
  });

  it('reports missing files, empty files and oversized files with their own codes', async () => {
    expect(await codeOf(readMaterial(join(pki.dir, 'nope.pem')))).toBe('SVCNODE_FILE_NOT_FOUND');
    expect(await codeOf(readMaterial(pki.write('empty.pem')))).toBe('SVCNODE_NO_CERTIFICATE');
    const big = join(pki.dir, 'big.pem');
    writeFileSync(big, Buffer.alloc(1024 * 1024 + 1, 0x41));
    expect(await codeOf(readMaterial(big))).toBe('SVCNODE_BUNDLE_TOO_LARGE');
  });

  it('a read that does not answer in time (a hung mount) is given up, naming the file and the mount', async () => {
    const file = pki.files.clientChain;
    // Every libuv thread busy, as reads stuck on a hung NFS or FUSE mount leave them: the read waits for a thread.
    const busy = holdThreadPool();
    const error = await readLimited(file, 1024 * 1024, PROFILE_FILE_HINTS, 50).then(
      () => undefined,
      (e: unknown) => e as SvcnodeError,
    );
    await busy;
    expect(error?.code).toBe('SVCNODE_FILE_NOT_FOUND');
    expect(error?.message).toBe(`${file}: the file did not answer a read within 50 ms`);
    expect(error?.hint).toContain('check the mount');
    // Once the threads are free the file reads again.
    await waitFor(() => stuckReads().length === 0 || undefined, 10_000, 20, 'the given-up read to end');
    expect((await readMaterial(file)).certificates.length).toBeGreaterThan(0);
  }, 30_000);
});

describe('files that are not PEM, DER or PKCS#12', () => {
  it('a Java KeyStore (JKS magic FEEDFEED): named as such, with the keytool command that converts it', async () => {
    const file = pki.write('bot.jks', '');
    writeFileSync(file, Buffer.concat([Buffer.from('feedfeed00000002', 'hex'), Buffer.alloc(64, 1)]));
    const error = await readMaterial(file).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error?.code).toBe('SVCNODE_INVALID_BUNDLE');
    // Before: "not a PEM, DER or PKCS#12 certificate or key file".
    expect(error?.message).toContain('a Java KeyStore (JKS/JCEKS)');
    expect(error?.hint).toBe('convert it to PKCS#12: keytool -importkeystore -srckeystore bot.jks -destkeystore bot.p12 -deststoretype PKCS12, then use the .p12');
  });
});

describe('PEM line endings', () => {
  it('reads a PEM chain and key whose lines end with CR alone (before: "a PEM block has no matching END line")', async () => {
    const chain = pki.write('cr-only.pem', pki.client.certPem, pki.intermediate.certPem);
    writeFileSync(chain, readFileSync(chain, 'latin1').replace(/\n/g, '\r'), 'latin1');
    const key = pki.write('cr-only.key', pki.client.keyPem);
    writeFileSync(key, readFileSync(key, 'latin1').replace(/\n/g, '\r'), 'latin1');
    const m = await readMaterial(chain);
    expect(m.certificates.map((c) => c.fingerprint256)).toEqual([pki.client.cert.fingerprint256, pki.intermediate.cert.fingerprint256]);
    const k = await readMaterial(key);
    expect(pki.client.cert.checkPrivateKey(k.keys[0]!)).toBe(true);
  });

  it('a PEM saved with literal \\n escapes (copied from a JSON string) is named as such, with what to do', async () => {
    const file = pki.write('escaped.pem', JSON.stringify(pki.client.certPem + pki.client.keyPem));
    const error = await readMaterial(file).then(() => undefined, (e: unknown) => e as SvcnodeError);
    // Before: "a PEM block has no matching END line (truncated file?)".
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE', file });
    expect(error?.message).toContain('the PEM text has literal "\\n" escapes instead of line breaks (as copied from a JSON string)');
    expect(error?.hint).toContain('save it with real line breaks');
    expect(`${error?.message ?? ''}${error?.hint ?? ''}`).not.toContain(pki.client.keyPem.split('\n')[1]);
  });
});

describe('private keys by content', () => {
  const rsa = () => pki.client.key;
  const forms: [string, () => string | Buffer][] = [
    ['PKCS#8 PEM', () => rsa().export({ type: 'pkcs8', format: 'pem' })],
    ['PKCS#1 PEM', () => rsa().export({ type: 'pkcs1', format: 'pem' })],
    ['SEC1 PEM (EC)', () => ec.key.export({ type: 'sec1', format: 'pem' })],
    ['PKCS#8 DER', () => rsa().export({ type: 'pkcs8', format: 'der' })],
    ['PKCS#1 DER', () => rsa().export({ type: 'pkcs1', format: 'der' })],
    ['SEC1 DER (EC)', () => ec.key.export({ type: 'sec1', format: 'der' })],
  ];
  it.each(forms)('reads an unencrypted %s key', async (label, make) => {
    const file = join(pki.dir, `key-${label.replace(/\W+/g, '_')}`);
    writeFileSync(file, make(), { mode: 0o600 });
    const m = await readMaterial(file);
    expect(m.keys).toHaveLength(1);
    const expected = label.includes('EC') ? ec.cert : pki.client.cert;
    expect(expected.checkPrivateKey(m.keys[0]!)).toBe(true);
  });

  const encrypted: [string, () => string | Buffer][] = [
    ['encrypted PKCS#8 PEM', () => rsa().export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS })],
    ['encrypted PKCS#8 DER', () => rsa().export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: PASS })],
    ['Proc-Type PKCS#1 PEM', () => rsa().export({ type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: PASS })],
    ['Proc-Type SEC1 PEM (EC)', () => ec.key.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS })],
  ];
  it.each(encrypted)('reads an %s key with its passphrase and normalises passphrase errors', async (label, make) => {
    const file = join(pki.dir, `enc-${label.replace(/\W+/g, '_')}`);
    writeFileSync(file, make(), { mode: 0o600 });
    const m = await readMaterial(file, { passphrase: PASS });
    const expected = label.includes('EC') ? ec.cert : pki.client.cert;
    expect(expected.checkPrivateKey(m.keys[0]!)).toBe(true);
    expect(await codeOf(readMaterial(file))).toBe('SVCNODE_MISSING_PASSPHRASE');
    expect(await codeOf(readMaterial(file, { passphrase: 'wrong' }))).toBe('SVCNODE_BAD_PASSPHRASE');
  });

  it('a key under a legacy cipher OpenSSL 3 no longer enables (PBE-SHA1-RC2-40) is named as such, not as a wrong passphrase', async () => {
    const keyFile = pki.write('plain-for-rc2.key', pki.client.keyPem);
    const file = join(pki.dir, 'rc2-40.key');
    execFileSync('openssl', ['pkcs8', '-topk8', '-v1', 'PBE-SHA1-RC2-40', '-provider', 'legacy', '-provider', 'default', '-in', keyFile, '-out', file, '-passout', 'env:SVCNODE_TEST_KEY_PASS'], { env: { ...process.env, SVCNODE_TEST_KEY_PASS: PASS }, stdio: ['ignore', 'ignore', 'pipe'] });
    const error = await readMaterial(file, { passphrase: PASS }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE' });
    expect(error?.message).toContain('legacy algorithm');
    expect(error?.hint).toContain('openssl pkcs8 -topk8 -v2 aes-256-cbc');
  });

  it('reads a traditional DSA PRIVATE KEY block', async () => {
    const file = join(pki.dir, 'dsa.key');
    execFileSync('sh', ['-c', `openssl dsaparam -genkey -noout 2048 2>/dev/null | openssl pkey -traditional -out ${file}`]);
    expect(readFileSync(file, 'utf8')).toContain('BEGIN DSA PRIVATE KEY');
    expect((await readMaterial(file)).keys[0]?.asymmetricKeyType).toBe('dsa');
  });

  it('can leave keys alone (certificate and trust files)', async () => {
    const file = pki.write('mixed.pem', pki.client.certPem, pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const m = await readMaterial(file, { keys: 'ignore' });
    expect(m.keys).toEqual([]);
    expect(m.ignoredKeys).toBe(1);
    expect(m.certificates).toHaveLength(1);
  });
});

describe('PKCS#12', () => {
  const p12 = (name: string, cert: MintedCert, opts: { legacy?: boolean; passphrase?: string } = {}): string => {
    const certFile = pki.write(`${name}.crt`, cert.certPem);
    const keyFile = pki.write(`${name}.key`, cert.keyPem);
    return opensslPkcs12({ certFiles: [certFile, pki.files.intermediate, pki.files.root], keyFile, out: join(pki.dir, `${name}.p12`), passphrase: opts.passphrase ?? PASS, ...(opts.legacy ? { legacy: true } : {}) });
  };

  it.each([
    ['modern (AES-256, PBKDF2)', false],
    ['legacy (RC2-40, 3DES: openssl -legacy)', true],
  ])('reads a %s file and pairs key and leaf', async (_label, legacy) => {
    const file = p12(legacy ? 'legacy' : 'modern', pki.client, { legacy });
    const m = await readMaterial(file, { passphrase: PASS });
    expect(m.form).toBe('pkcs12');
    expect(m.pairedLeaf?.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(m.certificates).toHaveLength(3);
    expect(pki.client.cert.checkPrivateKey(m.keys[0]!)).toBe(true);
    // The normalised key is plain PKCS#8 that Node loads without forge.
    expect(createPrivateKey(m.keys[0]!.export({ type: 'pkcs8', format: 'pem' })).asymmetricKeyType).toBe('rsa');
  });

  it('reads an EC key and certificate (forge leaves them as raw ASN.1)', async () => {
    const file = p12('ec', ec);
    const m = await readMaterial(file, { passphrase: PASS });
    expect(m.pairedLeaf?.fingerprint256).toBe(ec.cert.fingerprint256);
    expect(m.keys[0]?.asymmetricKeyType).toBe('ec');
  });

  it('pairs key and leaf by public key when the bags carry no localKeyId', async () => {
    // forge writes CA-first bag order without localKeyId when asked; openssl always sets it.
    const asn1 = forge.pkcs12.toPkcs12Asn1(
      forge.pki.privateKeyFromPem(pki.client.keyPem),
      [forge.pki.certificateFromPem(pki.intermediate.certPem), forge.pki.certificateFromPem(pki.client.certPem)],
      PASS,
      { algorithm: '3des', generateLocalKeyId: false },
    );
    const file = join(pki.dir, 'no-local-key-id.p12');
    writeFileSync(file, Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary'));
    const m = await readMaterial(file, { passphrase: PASS });
    expect(m.pairedLeaf?.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(m.certificates.map((c) => c.fingerprint256)).toContain(pki.intermediate.cert.fingerprint256);
  });

  it.each([
    ['modern (PBES2: the UTF-8 bytes of the passphrase, as OpenSSL derives them)', false],
    ['legacy (the passphrase as a BMPString)', true],
  ])('opens a %s file whose passphrase is not ASCII', async (_label, legacy) => {
    const passphrase = 'Grüße 2026 €';
    const file = p12(legacy ? 'utf8-legacy' : 'utf8-modern', pki.client, { legacy, passphrase });
    const m = await readMaterial(file, { passphrase });
    expect(m.pairedLeaf?.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(await codeOf(readMaterial(file, { passphrase: 'Grusse 2026 €' }))).toBe('SVCNODE_BAD_PASSPHRASE');
  });

  it(`refuses a file that asks for more than ${MAX_KDF_ITERATIONS} key-derivation iterations, before deriving any`, async () => {
    const certFile = pki.write('iter.crt', pki.client.certPem);
    const keyFile = pki.write('iter.key', pki.client.keyPem);
    const file = opensslPkcs12({ certFiles: [certFile], keyFile, out: join(pki.dir, 'iter.p12'), passphrase: PASS, iterations: MAX_KDF_ITERATIONS + 1 });
    const error = await readMaterial(file, { passphrase: PASS }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE' });
    expect(error?.message).toContain(`asks for ${MAX_KDF_ITERATIONS + 1} key-derivation iterations, more than the ${MAX_KDF_ITERATIONS} svcnode accepts`);
    expect(error?.hint).toContain('-iter 10000');
  });

  it('reads a file with bytes after the PFX (a text-mode transfer) and one saved as base64 text', async () => {
    const bytes = readFileSync(p12('transferred', pki.client));
    const trailing = join(pki.dir, 'trailing.p12');
    writeFileSync(trailing, Buffer.concat([bytes, Buffer.from('\r\n')]));
    const base64 = join(pki.dir, 'base64.p12');
    writeFileSync(base64, `${bytes.toString('base64').replace(/.{64}/g, '$&\n')}\n`);
    for (const file of [trailing, base64]) {
      const m = await readMaterial(file, { passphrase: PASS });
      expect(m.form, file).toBe('pkcs12');
      expect(m.pairedLeaf?.fingerprint256, file).toBe(pki.client.cert.fingerprint256);
    }
  });

  it('pairs an RSA-PSS key with its RSA-PSS certificate (no false key mismatch)', async () => {
    const key = join(pki.dir, 'pss.key');
    const cert = join(pki.dir, 'pss.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-subj', '/CN=pss-bot', '-days', '30', '-out', cert], { stdio: ['ignore', 'ignore', 'pipe'] });
    const file = opensslPkcs12({ certFiles: [cert], keyFile: key, out: join(pki.dir, 'pss.p12'), passphrase: PASS });
    const m = await readMaterial(file, { passphrase: PASS });
    expect(m.pairedLeaf?.subject).toBe('CN=pss-bot');
    expect(m.keys[0]?.asymmetricKeyType).toBe('rsa-pss');
    expect(m.pairedLeaf?.checkPrivateKey(m.keys[0]!)).toBe(true);
  });

  it('a file with two identities (two keys, two certificates): both read, for certs inspect; a profile refuses it naming both', async () => {
    const second = await mintLeaf({ subject: 'CN=second-bot', issuer: pki.intermediate, usage: 'client' });
    const file = multiIdentityPkcs12(join(pki.dir, 'two-identities.p12'), [pki.client, second], PASS);
    // Before: readMaterial refused the file, so certs inspect could not show which identity to export.
    const m = await readMaterial(file, { passphrase: PASS });
    expect(m.certificates.map((c) => c.subject)).toEqual([pki.client.cert.subject, second.cert.subject]);
    expect(m.keys.map((k) => [pki.client.cert, second.cert].findIndex((c) => c.checkPrivateKey(k)))).toEqual([0, 1]);
    const profile = pki.profile('two-identities', { client: { pkcs12: file, passphrase: { env: 'TWO_PASS' } }, trust: { ca: [pki.files.root] } });
    const error = await loadProfile(profile, { env: { TWO_PASS: PASS } }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE', file });
    expect(error?.message).toContain('holds 2 private keys (client identities: CN=svcnode-bot, O=svcnode tests; CN=second-bot)');
  });

  it.each([
    ['RC2-128', 'PBE-SHA1-RC2-128', 'RC2-128 (pbeWithSHAAnd128BitRC2-CBC)'],
    ['2-key 3DES', 'PBE-SHA1-2DES', '2-key 3DES (pbeWithSHAAnd2-KeyTripleDES-CBC)'],
    ['RC4-128', 'PBE-SHA1-RC4-128', 'RC4-128 (pbeWithSHAAnd128BitRC4)'],
    ['RC4-40', 'PBE-SHA1-RC4-40', 'RC4-40 (pbeWithSHAAnd40BitRC4)'],
  ])('a file encrypted with %s names the cipher and the openssl commands that re-encrypt it with AES-256', async (_label, pbe, named) => {
    const certFile = pki.write('legacy-cipher.crt', pki.client.certPem);
    const keyFile = pki.write('legacy-cipher.key', pki.client.keyPem);
    const file = opensslPkcs12({ certFiles: [certFile], keyFile, out: join(pki.dir, `${pbe}.p12`), passphrase: PASS, legacy: true, extraArgs: ['-keypbe', pbe, '-certpbe', pbe] });
    const error = await readMaterial(file, { passphrase: PASS }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    // Before: "uses the algorithm OID 1.2.840.113549.1.12.1.x, which svcnode cannot read (AES, 3DES and RC2 … are supported)".
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE', file });
    expect(error?.message).toContain(`is encrypted with ${named}, which svcnode cannot read`);
    expect(error?.hint).toContain(`openssl pkcs12 -legacy -in ${pbe}.p12 -nodes -out ${pbe}.pem, then openssl pkcs12 -export -in ${pbe}.pem -keypbe AES-256-CBC -certpbe AES-256-CBC`);
    expect(`${error?.message ?? ''}${error?.hint ?? ''}`).not.toContain(PASS);
  });

  it('a file with a Java secret-key entry (secretBag) is named as such, with the keytool command that exports the store without it', async () => {
    const file = multiIdentityPkcs12(join(pki.dir, 'with-secret.pfx'), [pki.client], PASS, { secretKey: true });
    const error = await readMaterial(file, { passphrase: PASS }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    // Before: "uses the algorithm OID 1.2.840.113549.1.12.10.1.5, which svcnode cannot read".
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE', file });
    expect(error?.message).toContain('holds a secret-key entry (a Java SecretKeyEntry: a symmetric key, not a certificate or private key)');
    expect(error?.hint).toContain('keytool -importkeystore -srckeystore with-secret.pfx -destkeystore with-secret-client.p12 -deststoretype PKCS12 -srcalias ALIAS');
  });

  it.each([
    ['camellia-256-cbc encryption', ['-keypbe', 'camellia-256-cbc', '-certpbe', 'camellia-256-cbc'], 'camellia-256-cbc'],
    ['a sha3-256 MAC', ['-macalg', 'sha3-256'], 'a sha3-256 MAC'],
  ])('a file with %s (OpenSSL reads it, forge does not) names the algorithm, not "corrupt"', async (_label, extraArgs, named) => {
    const certFile = pki.write('alg.crt', pki.client.certPem);
    const keyFile = pki.write('alg.key', pki.client.keyPem);
    const file = opensslPkcs12({ certFiles: [certFile], keyFile, out: join(pki.dir, 'alg.p12'), passphrase: PASS, extraArgs });
    const error = await readMaterial(file, { passphrase: PASS }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error).toMatchObject({ code: 'SVCNODE_INVALID_BUNDLE' });
    expect(error?.message).toContain(`uses ${named}, which svcnode cannot read`);
    expect(error?.hint).toContain('-keypbe AES-256-CBC');
  });

  it('opens an empty-password file without a passphrase', async () => {
    const file = p12('nopass', pki.client, { passphrase: '' });
    const m = await readMaterial(file);
    expect(m.pairedLeaf?.fingerprint256).toBe(pki.client.cert.fingerprint256);
  });

  it('normalises wrong and missing passphrases; rejects corrupt and truncated files', async () => {
    const file = p12('pw', pki.client);
    expect(await codeOf(readMaterial(file, { passphrase: 'wrong' }))).toBe('SVCNODE_BAD_PASSPHRASE');
    expect(await codeOf(readMaterial(file))).toBe('SVCNODE_MISSING_PASSPHRASE');
    const bytes = readFileSync(file);
    const truncated = join(pki.dir, 'truncated.p12');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    expect(await codeOf(readMaterial(truncated, { passphrase: PASS }))).toBe('SVCNODE_INVALID_BUNDLE');
    const corrupt = join(pki.dir, 'corrupt.p12');
    const flipped = Buffer.from(bytes);
    for (let i = 200; i < 260; i++) flipped[i] = (flipped[i] ?? 0) ^ 0x5a;
    writeFileSync(corrupt, flipped);
    expect(['SVCNODE_INVALID_BUNDLE', 'SVCNODE_BAD_PASSPHRASE']).toContain(await codeOf(readMaterial(corrupt, { passphrase: PASS })));
  });

  it.each([false, true])('a file without a MAC (openssl -nomac, legacy %s): every wrong passphrase reads as one, saying that damage looks alike', async (legacy) => {
    const certFile = pki.write(`nomac-${legacy}.crt`, pki.client.certPem);
    const keyFile = pki.write(`nomac-${legacy}.key`, pki.client.keyPem);
    const file = opensslPkcs12({ certFiles: [certFile], keyFile, out: join(pki.dir, `nomac-${legacy}.p12`), passphrase: PASS, legacy, extraArgs: ['-nomac'] });
    const bytes = readFileSync(file);
    expect((await readMaterial(file, { passphrase: PASS })).pairedLeaf?.fingerprint256).toBe(pki.client.cert.fingerprint256);
    // The decryption's padding check passes for about one wrong passphrase in 250; the garbage it
    // yields read as a corrupt file. 1,500 tries meet such a passphrase with near certainty (fewer
    // for the legacy ciphers, whose key derivation runs in JavaScript: 300 take about 3 s).
    const tries = legacy ? 300 : 1_500;
    const codes = new Map<string, number>();
    for (let i = 0; i < tries; i++) {
      let code = 'opened';
      try {
        parseWithForge(bytes, `wrong-${i}`, file);
      } catch (error) {
        code = (error as SvcnodeError).code;
      }
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ SVCNODE_BAD_PASSPHRASE: tries });
    const error = await readMaterial(file, { passphrase: 'wrong' }).then(() => undefined, (e: unknown) => e as SvcnodeError);
    expect(error?.message).toContain('no integrity check (MAC), so a wrong passphrase and a damaged file look alike');
    expect(error?.hint).toContain('if it is right, the file is damaged');
    // A file cut short is damage, whatever the passphrase.
    const truncated = join(pki.dir, `nomac-${legacy}-truncated.p12`);
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    expect(await codeOf(readMaterial(truncated, { passphrase: PASS }))).toBe('SVCNODE_INVALID_BUNDLE');
  });

  it('parses the same bytes with forge only once', async () => {
    clearPkcs12Cache();
    const file = p12('cached', pki.client, { legacy: true });
    const before = pkcs12ForgeParseCount();
    const first = await readMaterial(file, { passphrase: PASS });
    const second = await readMaterial(file, { passphrase: PASS });
    expect(pkcs12ForgeParseCount() - before).toBe(1);
    expect(second.certificates.map((c) => c.fingerprint256)).toEqual(first.certificates.map((c) => c.fingerprint256));
    expect(second.certificates[0]).toBeInstanceOf(X509Certificate);
    // A wrong passphrase for cached bytes is still checked, not served from the cache.
    expect(await codeOf(readMaterial(file, { passphrase: 'wrong' }))).toBe('SVCNODE_BAD_PASSPHRASE');
  });
});
