import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileDocument } from '../../src/definitions/types.js';
import { InvalidInputError } from '../../src/errors.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { pkcs12ForgeParseCount } from '../../src/pki/pkcs12.js';
import { loadProfile, loadProfilesDir, verifyProfile } from '../../src/definitions/profiles.js';
import type { Finding, LoadedProfile } from '../../src/pki/types.js';
import { createTestPki, opensslPkcs12, type MintedCert, type TestPki } from '../helpers/pki.js';

const PASS = 'Pr0file-passphrase!';
const DAY = 86_400_000;

let pki: TestPki;
/** A second, unrelated PKI: its intermediate does not link to our client certificate. */
let foreign: MintedCert;
let rsa4096: MintedCert;

async function loadError(file: string, opts = {}): Promise<InvalidInputError> {
  try {
    await loadProfile(file, opts);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    const e = error as InvalidInputError;
    expect(e.message).not.toContain('PRIVATE KEY');
    expect(e.message).not.toContain(PASS);
    expect(e.hint).toBeTruthy();
    expect(e.file).toBeTruthy();
    return e;
  }
  throw new Error(`${file} loaded, expected an error`);
}

const codes = (findings: readonly Finding[]): string[] => findings.map((f) => f.code).sort();

/** A profile with the given client certificate file(s) and key. */
function pemProfile(name: string, certificate: string, key: string, extra: Partial<ProfileDocument> = {}): string {
  return pki.profile(name, { client: { certificate, key }, trust: { ca: [pki.files.root] }, ...extra });
}

beforeAll(async () => {
  pki = await createTestPki();
  const foreignRoot = await mintCa({ subject: 'CN=Foreign Root' });
  foreign = await mintCa({ subject: 'CN=Foreign Intermediate', issuer: foreignRoot });
  rsa4096 = await mintLeaf({ subject: 'CN=bot-4096', issuer: pki.intermediate, usage: 'client', key: { type: 'rsa', bits: 4096 } });
});
afterAll(() => pki.cleanup());

describe('loadProfile', () => {
  it('loads the default PEM profile: leaf, chain, trust, no findings', async () => {
    const p = await loadProfile(pki.profile('bank'));
    expect(p.name).toBe('bank');
    expect(p.client?.leaf.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(p.client?.chain.map((c) => c.fingerprint256)).toEqual([pki.intermediate.cert.fingerprint256]);
    expect(p.trust.certificates.map((c) => c.fingerprint256)).toEqual([pki.root.cert.fingerprint256]);
    expect(p.trust.systemRoots).toBe(false);
    expect(p.findings).toEqual([]);
    expect(p.version).toMatch(/^[0-9a-f]{64}$/);
    expect(p.client?.keyPem).toMatch(/^-{5}BEGIN PRIVATE KEY-{5}\n/);
  });

  it('requires "name" to match the file name', async () => {
    expect((await loadError(pki.profile('named', { name: 'other', trust: { ca: [pki.files.root] } }))).code).toBe('SVCNODE_INVALID_PROFILE');
    expect((await loadProfile(pki.profile('same', { name: 'same', trust: { ca: [pki.files.root] } }))).name).toBe('same');
  });

  it('rejects schema violations, such as an inline passphrase', async () => {
    const file = join(pki.profilesDir, 'inline.json');
    writeFileSync(file, JSON.stringify({ client: { pkcs12: 'x.p12', passphrase: 'secret' } }));
    expect((await loadError(file)).code).toBe('SVCNODE_INVALID_PROFILE');
  });

  it('resolves relative paths against the profile file and reads DER files', async () => {
    const der = join(pki.profilesDir, 'client.cer');
    writeFileSync(der, pki.client.cert.raw);
    writeFileSync(join(pki.profilesDir, 'client.der.key'), pki.client.key.export({ type: 'pkcs1', format: 'der' }));
    writeFileSync(join(pki.profilesDir, 'root.cer'), pki.root.cert.raw);
    const p = await loadProfile(pki.profile('der', { client: { certificate: 'client.cer', key: 'client.der.key' }, trust: { ca: ['root.cer'] } }));
    expect(p.client?.leaf.fingerprint256).toBe(pki.client.cert.fingerprint256);
    expect(p.client?.chain).toEqual([]);
    expect(p.trust.certificates).toHaveLength(1);
  });

  it('omits the client identity when the profile has no client section', async () => {
    const p = await loadProfile(pki.profile('trust-only', { trust: { ca: [pki.files.root, pki.files.intermediate, pki.files.root] } }));
    expect(p.client).toBeUndefined();
    expect(p.trust.certificates).toHaveLength(2); // deduplicated
  });

  it('uses the system roots (info finding) when there is no trust.ca', async () => {
    const p = await loadProfile(pki.profile('sys', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey } }));
    expect(p.trust.systemRoots).toBe(true);
    expect(p.findings).toMatchObject([{ severity: 'info', code: 'SYSTEM_ROOTS' }]);
    const both = await loadProfile(pki.profile('both', { trust: { ca: [pki.files.root], systemRoots: true } }));
    expect(both.trust.systemRoots).toBe(true);
    expect(both.findings).toEqual([]);
  });
});

describe('passphrases', () => {
  it('reads an encrypted PKCS#8 key with the passphrase from the injected env', async () => {
    const key = pki.write('enc-pkcs8.key', pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const file = pki.profile('env', { client: { certificate: pki.files.clientChain, key, passphrase: { env: 'BOT_KEY_PASS' } }, trust: { ca: [pki.files.root] } });
    const p = await loadProfile(file, { env: { BOT_KEY_PASS: PASS } });
    expect(p.client?.keyPem).toMatch(/^-{5}BEGIN PRIVATE KEY-{5}\n/);
    expect((await loadError(file, { env: {} })).code).toBe('SVCNODE_MISSING_PASSPHRASE');
    const wrong = await loadError(file, { env: { BOT_KEY_PASS: 'wrong' } });
    expect(wrong.code).toBe('SVCNODE_BAD_PASSPHRASE');
    // Where the wrong passphrase came from, which is where the operator has to look.
    expect(wrong.message).toContain('(the passphrase from environment variable BOT_KEY_PASS)');
    expect(wrong.hint).toMatch(/^check the passphrase in environment variable BOT_KEY_PASS \(/);
  });

  it('a PKCS#12 file with a key and no certificate says so (not "no certificate matches its key")', async () => {
    const out = join(pki.dir, 'key-only.p12');
    execFileSync('openssl', ['pkcs12', '-export', '-nocerts', '-inkey', pki.files.clientKey, '-out', out, '-passout', 'env:SVCNODE_TEST_P12_PASS'], { env: { ...process.env, SVCNODE_TEST_P12_PASS: PASS }, stdio: ['ignore', 'ignore', 'pipe'] });
    const file = pki.profile('key-only', { client: { pkcs12: out, passphrase: { env: 'P12_PASS' } }, trust: { ca: [pki.files.root] } });
    const error = await loadError(file, { env: { P12_PASS: PASS } });
    expect(error.code).toBe('SVCNODE_NO_CERTIFICATE');
    expect(error.message).toContain('holds a private key but no certificate');
  });

  it('reads a Proc-Type encrypted key with the passphrase from a file (trailing newline trimmed)', async () => {
    const key = pki.write('proc-type.key', pki.client.key.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    writeFileSync(join(pki.profilesDir, 'pass.txt'), `${PASS}\n`, { mode: 0o600 });
    const file = pki.profile('file', { client: { certificate: pki.files.clientChain, key, passphrase: { file: 'pass.txt' } }, trust: { ca: [pki.files.root] } });
    expect((await loadProfile(file)).client?.leaf.fingerprint256).toBe(pki.client.cert.fingerprint256);
    // Windows editors start the file with a byte-order mark (UTF-8, or UTF-16 for Notepad's "Unicode"), never part of the passphrase.
    for (const [name, bytes] of [
      ['bom-utf8.txt', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${PASS}\r\n`)])],
      ['bom-utf16le.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`${PASS}\r\n`, 'utf16le')])],
      ['bom-utf16be.txt', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(`${PASS}\r\n`, 'utf16le').swap16()])],
    ] as const) {
      writeFileSync(join(pki.profilesDir, name), bytes, { mode: 0o600 });
      const bom = pki.profile(name.replace('.txt', ''), { client: { certificate: pki.files.clientChain, key, passphrase: { file: name } }, trust: { ca: [pki.files.root] } });
      expect((await loadProfile(bom)).client?.leaf.fingerprint256, name).toBe(pki.client.cert.fingerprint256);
    }
    const missing = pki.profile('nofile', { client: { certificate: pki.files.clientChain, key, passphrase: { file: 'absent.txt' } } });
    expect((await loadError(missing)).code).toBe('SVCNODE_FILE_NOT_FOUND');
    const unset = pki.profile('unset', { client: { certificate: pki.files.clientChain, key } });
    expect((await loadError(unset)).code).toBe('SVCNODE_MISSING_PASSPHRASE');
  });
});

describe('PKCS#12 profiles', () => {
  it('loads a legacy PKCS#12 once: the second load does no forge work', async () => {
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'bot-legacy.p12'), passphrase: PASS, legacy: true });
    const file = pki.profile('p12', { client: { pkcs12: p12, passphrase: { env: 'P12_PASS' } }, trust: { ca: [pki.files.root] } });
    const before = pkcs12ForgeParseCount();
    const first = await loadProfile(file, { env: { P12_PASS: PASS } });
    const second = await loadProfile(file, { env: { P12_PASS: PASS } });
    expect(pkcs12ForgeParseCount() - before).toBe(1);
    expect(second.version).toBe(first.version);
    expect(first.client?.chain.map((c) => c.subject)).toEqual([pki.intermediate.cert.subject]);
    expect((await loadError(file, { env: { P12_PASS: 'nope' } })).code).toBe('SVCNODE_BAD_PASSPHRASE');
  });

  it('loads an EC key and certificate from a modern PKCS#12 file', async () => {
    const ec = await mintLeaf({ subject: 'CN=ec-bot', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-384' } });
    const p12 = opensslPkcs12({ certFiles: [pki.write('ec.crt', ec.certPem), pki.files.intermediate], keyFile: pki.write('ec.key', ec.keyPem), out: join(pki.dir, 'ec.p12'), passphrase: PASS });
    const p = await loadProfile(pki.profile('ec', { client: { pkcs12: p12, passphrase: { env: 'P' } }, trust: { ca: [pki.files.root] } }), { env: { P: PASS } });
    expect(p.client?.key.asymmetricKeyType).toBe('ec');
    expect(p.client?.leaf.fingerprint256).toBe(ec.cert.fingerprint256);
  });

  it('refuses a PEM file under "pkcs12" and a PKCS#12 file under "certificate"', async () => {
    expect((await loadError(pki.profile('pem-as-p12', { client: { pkcs12: pki.files.clientChain } }))).code).toBe('SVCNODE_INVALID_BUNDLE');
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert], keyFile: pki.files.clientKey, out: join(pki.dir, 'x.p12'), passphrase: '' });
    expect((await loadError(pemProfile('p12-as-pem', p12, pki.files.clientKey))).code).toBe('SVCNODE_INVALID_BUNDLE');
  });

  it('presents the normalised identity in a real mutual-TLS handshake', async () => {
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'tls.p12'), passphrase: PASS, legacy: true });
    const p = await loadProfile(pki.profile('tls', { client: { pkcs12: p12, passphrase: { env: 'P' } }, trust: { ca: [pki.files.root] } }), { env: { P: PASS } });
    const server = https.createServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      res.end((req.socket as import('node:tls').TLSSocket).getPeerCertificate().subject.CN);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        const identity = p.client!;
        https.get({ host: 'localhost', port, agent: false, ca: p.trust.certificates.map((c) => c.toString()), key: identity.keyPem, cert: [identity.leaf, ...identity.chain].map((c) => c.toString()).join('') }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      expect(body).toBe('svcnode-bot');
    } finally {
      server.close();
    }
  });
});

describe('unusable material is thrown with a stable code', () => {
  it('key does not match the certificate', async () => {
    expect((await loadError(pemProfile('mismatch', pki.files.clientChain, pki.files.serverKey))).code).toBe('SVCNODE_KEY_MISMATCH');
  });

  it('a key file holding another key above the right one: the matching key is used (before: "does not belong to the certificate")', async () => {
    const other = await mintLeaf({ subject: 'CN=other', issuer: pki.intermediate, usage: 'client', key: { type: 'ec', curve: 'P-256' } });
    const keys = pki.write('two-keys.key', other.keyPem, pki.client.keyPem);
    const profile = await loadProfile(pemProfile('twokeys', pki.files.clientChain, keys));
    expect(profile.client?.leaf.subject).toContain('CN=svcnode-bot');
  });

  it('a client certificate signed with SHA-1: named with its file and the fix, not blamed on the key', async () => {
    // openssl signs the leaf with -sha1 (the intermediate's key, our key pair).
    const dir = pki.dir;
    const csr = join(dir, 'sha1.csr');
    execFileSync('openssl', ['req', '-new', '-key', pki.files.clientKey, '-subj', '/CN=svcnode-bot-sha1', '-out', csr]);
    const intKey = pki.write('int.key', pki.intermediate.keyPem);
    const leaf = join(dir, 'sha1-leaf.pem');
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.files.intermediate, '-CAkey', intKey, '-set_serial', '7', '-days', '30', '-sha1', '-out', leaf], { stdio: 'ignore' });
    const chain = pki.write('sha1-chain.pem', readFileSync(leaf, 'utf8'), pki.intermediate.certPem);
    const e = await loadError(pemProfile('sha1', chain, pki.files.clientKey));
    // Before: "<key file>: OpenSSL refuses this key and certificate (check the key type and size …)".
    expect([e.code, e.file]).toEqual(['SVCNODE_INVALID_BUNDLE', chain]);
    expect(e.message).toContain('the certificate CN=svcnode-bot-sha1 is signed with SHA-1 by its issuer, which OpenSSL 3 refuses for TLS');
    expect(e.hint).toContain('reissue it signed with SHA-256');
  });

  it('a certificate signing request where the certificate belongs: named as a CSR', async () => {
    const csr = pki.write('bot.csr', execFileSync('openssl', ['req', '-new', '-key', pki.files.clientKey, '-subj', '/CN=svcnode-bot']).toString());
    const e = await loadError(pemProfile('csr', csr, pki.files.clientKey));
    // Before: "the file contains no certificate".
    expect([e.code, e.message]).toEqual(['SVCNODE_NO_CERTIFICATE', `${csr}: the file holds a certificate signing request (CSR), not a certificate`]);
  });

  it('a certificate file without a certificate, a key file without a key, a trust file without a certificate', async () => {
    expect((await loadError(pemProfile('nocert', pki.files.clientKey, pki.files.clientKey))).code).toBe('SVCNODE_NO_CERTIFICATE');
    expect((await loadError(pemProfile('nokey', pki.files.clientChain, pki.files.root))).code).toBe('SVCNODE_NO_PRIVATE_KEY');
    writeFileSync(join(pki.dir, 'empty.key'), '');
    const empty = await loadError(pemProfile('emptykey', pki.files.clientChain, join(pki.dir, 'empty.key')));
    expect([empty.code, empty.message]).toEqual(['SVCNODE_NO_PRIVATE_KEY', `${join(pki.dir, 'empty.key')}: the key file is empty`]);
    const trust = pki.profile('notrust', { trust: { ca: [pki.files.clientKey] } });
    expect((await loadError(trust)).code).toBe('SVCNODE_NO_CERTIFICATE');
  });

  it('corrupt and truncated client material', async () => {
    const truncated = pki.write('trunc-chain.pem', pki.client.certPem, pki.intermediate.certPem.slice(0, 300));
    expect((await loadError(pemProfile('trunc', truncated, pki.files.clientKey))).code).toBe('SVCNODE_INVALID_BUNDLE');
    const corruptKey = pki.write('corrupt.key', pki.client.keyPem.replace(/\n[A-Za-z0-9+/]{30}/, '\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'));
    expect((await loadError(pemProfile('corruptkey', pki.files.clientChain, corruptKey))).code).toBe('SVCNODE_INVALID_BUNDLE');
  });

  it('an old and a renewed copy of the intermediate in one file: both named, with serial and date, not "does not link"', async () => {
    // The same name and key, signed again by the root (a CA renewal): either copy verifies the client certificate.
    const dir = pki.dir;
    const intKey = pki.write('twin-int.key', pki.intermediate.keyPem);
    const rootKey = pki.write('twin-root.key', pki.root.keyPem);
    const csr = join(dir, 'twin.csr');
    execFileSync('openssl', ['req', '-new', '-key', intKey, '-subj', '/CN=svcnode Test Intermediate/O=svcnode tests', '-out', csr]);
    const ext = pki.write('twin.ext', 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
    const renewed = join(dir, 'twin-renewed.pem');
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.files.root, '-CAkey', rootKey, '-set_serial', '4242', '-days', '400', '-extfile', ext, '-out', renewed], { stdio: 'ignore' });
    const both = pki.write('twin-chain.pem', pki.client.certPem, pki.intermediate.certPem, readFileSync(renewed, 'utf8'));
    const e = await loadError(pemProfile('twin', both, pki.files.clientKey));
    expect(e.code).toBe('SVCNODE_CHAIN_BROKEN');
    // Before: "certificates that do not link to the client certificate …: CN=svcnode Test Intermediate, O=svcnode tests".
    expect(e.message).toMatch(/holds two certificates for "CN=svcnode Test Intermediate, O=svcnode tests" \(serial \w+, valid until \d{4}-\d\d-\d\d; serial \w+, valid until \d{4}-\d\d-\d\d\), as after a CA renewal/);
    expect(e.hint).toContain('keep only the current one');
  });

  it('intermediates that do not link to the client certificate', async () => {
    const broken = pki.write('broken-chain.pem', pki.client.certPem, foreign.certPem);
    expect((await loadError(pemProfile('broken', broken, pki.files.clientKey))).code).toBe('SVCNODE_CHAIN_BROKEN');
  });

  it('RSA keys below 2048 bits, or below policy.minKeyBits', async () => {
    const weak = await mintLeaf({ subject: 'CN=weak', issuer: pki.intermediate, usage: 'client', key: { type: 'rsa', bits: 1024 } });
    const file = pemProfile('weak', pki.write('weak.crt', weak.certPem), pki.write('weak.key', weak.keyPem));
    expect((await loadError(file)).code).toBe('SVCNODE_WEAK_KEY');
    const policy = pemProfile('policy', pki.files.clientChain, pki.files.clientKey, { policy: { minKeyBits: 4096 } });
    expect((await loadError(policy)).code).toBe('SVCNODE_WEAK_KEY');
    const strong = pemProfile('strong', pki.write('4096.crt', rsa4096.certPem), pki.write('4096.key', rsa4096.keyPem), { policy: { minKeyBits: 4096 } });
    expect((await loadProfile(strong)).client?.key.asymmetricKeyDetails?.modulusLength).toBe(4096);
  });
});

describe('findings', () => {
  it('reorders out-of-order intermediates and warns', async () => {
    // Under an intermediate without pathlen: the test PKI's (pathlen 0) may not have a CA below it.
    const int1 = await mintCa({ subject: 'CN=Issuing CA 1', issuer: pki.root });
    const int2 = await mintCa({ subject: 'CN=Issuing CA 2', issuer: int1 });
    const leaf = await mintLeaf({ subject: 'CN=deep-bot', issuer: int2, usage: 'client' });
    const file = pki.write('shuffled.pem', int1.certPem, leaf.certPem, int2.certPem);
    const p = await loadProfile(pemProfile('shuffled', file, pki.write('deep.key', leaf.keyPem)));
    expect(p.client?.chain.map((c) => c.subject)).toEqual([int2.cert.subject, int1.cert.subject]);
    expect(codes(p.findings)).toEqual(['CHAIN_REORDERED']);
  });

  it('trust.ca that anchors nothing, or holds a server certificate; a client chain without its issuer', async () => {
    // A Java-truststore habit: the intermediate alone. Every call then fails "unable to get issuer certificate".
    const intOnly = await loadProfile(pki.profile('int-only', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [pki.files.intermediate] } }));
    expect(intOnly.findings).toEqual([expect.objectContaining({ severity: 'error', code: 'TRUST_NO_ROOT', message: expect.stringContaining('"CN=svcnode Test Intermediate, O=svcnode tests" is issued by "CN=svcnode Test Root, O=svcnode tests"') as string })]);
    const withSystem = await loadProfile(pki.profile('int-system', { trust: { ca: [pki.files.intermediate], systemRoots: true } }));
    expect(codes(withSystem.findings)).toEqual([]);
    const leafTrust = await loadProfile(pki.profile('leaf-trust', { trust: { ca: [pki.files.root, pki.files.serverCert] } }));
    expect(leafTrust.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'TRUST_NOT_CA', subject: 'CN=localhost, O=svcnode tests' })]);
    const leafOnly = await loadProfile(pemProfile('leaf-only', pki.files.clientCert, pki.files.clientKey));
    expect(leafOnly.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_INCOMPLETE', file: pki.files.clientCert })]);
    // svcnode cannot tell an unknown issuer's kind: a certificate issued straight from the server's root (the Solace set-up) is not said to be refused.
    expect(leafOnly.findings[0]?.message).toContain('That is enough when "CN=svcnode Test Intermediate, O=svcnode tests" is itself the root the server trusts; when it is an intermediate');
    // The issuer in trust.ca is sent by Node to complete the chain: complete enough.
    const fromTrust = await loadProfile(pemProfile('leaf-trusted-int', pki.files.clientCert, pki.files.clientKey, { trust: { ca: [pki.files.root, pki.files.intermediate] } }));
    expect(codes(fromTrust.findings)).toEqual([]);
  });

  it('a client chain a server refuses: an unknown critical extension, a CA key under 2048 bits (RSA) or 224 bits (EC), a broken pathlen', async () => {
    // Each chain is the one `openssl verify -auth_level 2` (a server at security level 2) refuses.
    const refusedBy = (chain: string, trust: string): string => {
      try {
        execFileSync('openssl', ['verify', '-auth_level', '2', '-CAfile', trust, '-untrusted', chain, chain], { stdio: 'pipe' });
        return 'OK';
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
        return `${String(stdout)}${String(stderr)}`;
      }
    };
    const intKey = pki.write('crit-int.key', pki.intermediate.keyPem);
    const csr = join(pki.dir, 'crit.csr');
    execFileSync('openssl', ['req', '-new', '-key', pki.files.clientKey, '-subj', '/CN=svcnode-bot-crit', '-out', csr]);
    const ext = pki.write('crit.ext', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n1.2.3.4.5.6.7=critical,ASN1:UTF8String:hello\n');
    const critLeaf = join(pki.dir, 'crit-leaf.pem');
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.files.intermediate, '-CAkey', intKey, '-set_serial', '9', '-days', '365', '-extfile', ext, '-out', critLeaf], { stdio: 'ignore' });
    const critChain = pki.write('crit-chain.pem', readFileSync(critLeaf, 'utf8'), pki.intermediate.certPem);
    const weakCa = await mintCa({ subject: 'CN=Weak Issuing CA', issuer: pki.root, key: { type: 'rsa', bits: 1024 } });
    const byWeak = await mintLeaf({ subject: 'CN=bot-by-weak', issuer: weakCa, usage: 'client' });
    const weakChain = pki.write('weak-ca-chain.pem', byWeak.certPem, weakCa.certPem);
    const sub = await mintCa({ subject: 'CN=Sub CA', issuer: pki.intermediate });
    const bySub = await mintLeaf({ subject: 'CN=bot-by-sub', issuer: sub, usage: 'client' });
    const subChain = pki.write('pathlen-chain.pem', bySub.certPem, sub.certPem, pki.intermediate.certPem);
    const weakRoot = await mintCa({ subject: 'CN=Weak Root', key: { type: 'rsa', bits: 1024 } });
    const strongInt = await mintCa({ subject: 'CN=Strong Issuing CA', issuer: weakRoot });
    const byWeakRoot = await mintLeaf({ subject: 'CN=bot-by-weak-root', issuer: strongInt, usage: 'client' });
    const weakRootFile = pki.write('weak-root.pem', weakRoot.certPem);
    const weakRootChain = pki.write('weak-root-chain.pem', byWeakRoot.certPem, strongInt.certPem);
    expect(refusedBy(critChain, pki.files.root)).toContain('unhandled critical extension');
    expect(refusedBy(weakChain, pki.files.root)).toContain('CA certificate key too weak');
    expect(refusedBy(subChain, pki.files.root)).toContain('path length constraint exceeded');
    expect(refusedBy(weakRootChain, weakRootFile)).toContain('CA certificate key too weak');
    expect(refusedBy(pki.files.clientChain, pki.files.root)).toContain('OK');
    // An EC CA on a 192-bit curve is as weak to a server (security level 2 needs 224 bits).
    const ecKey = join(pki.dir, 'ec192-ca.key');
    execFileSync('openssl', ['ecparam', '-name', 'prime192v1', '-genkey', '-noout', '-out', ecKey]);
    const ecCsr = join(pki.dir, 'ec192-ca.csr');
    execFileSync('openssl', ['req', '-new', '-key', ecKey, '-subj', '/CN=Weak EC Issuing CA', '-out', ecCsr]);
    const caExt = pki.write('ec192-ca.ext', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    const ecCa = join(pki.dir, 'ec192-ca.pem');
    execFileSync('openssl', ['x509', '-req', '-in', ecCsr, '-CA', pki.files.root, '-CAkey', pki.write('ec-root.key', pki.root.keyPem), '-set_serial', '21', '-days', '365', '-extfile', caExt, '-out', ecCa], { stdio: 'ignore' });
    const byEcLeaf = join(pki.dir, 'by-ec192.pem');
    execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ecCa, '-CAkey', ecKey, '-set_serial', '22', '-days', '365', '-extfile', pki.write('by-ec192.ext', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'), '-out', byEcLeaf], { stdio: 'ignore' });
    const ecChain = pki.write('ec192-chain.pem', readFileSync(byEcLeaf, 'utf8'), readFileSync(ecCa, 'utf8'));
    expect(refusedBy(ecChain, pki.files.root)).toContain('CA certificate key too weak');

    // Before: no findings for any of them ("no problems found").
    const crit = await loadProfile(pemProfile('crit-ext', critChain, pki.files.clientKey));
    expect(crit.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_CRITICAL_EXTENSION', file: critChain, role: 'client', subject: 'CN=svcnode-bot-crit' })]);
    expect(crit.findings[0]?.message).toContain('1.2.3.4.5.6.7');
    const weak = await loadProfile(pemProfile('weak-ca', weakChain, pki.write('by-weak.key', byWeak.keyPem)));
    expect(weak.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_WEAK_CA_KEY', file: weakChain, role: 'chain', subject: 'CN=Weak Issuing CA' })]);
    expect(weak.findings[0]?.message).toContain('1024-bit RSA key');
    const ec = await loadProfile(pemProfile('weak-ec-ca', ecChain, pki.files.clientKey));
    expect(ec.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_WEAK_CA_KEY', file: ecChain, role: 'chain', subject: 'CN=Weak EC Issuing CA' })]);
    expect(ec.findings[0]?.message).toContain('192-bit EC key (prime192v1)');
    const pathlen = await loadProfile(pemProfile('pathlen', subChain, pki.write('by-sub.key', bySub.keyPem)));
    expect(pathlen.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_PATH_LENGTH', file: subChain, role: 'chain', subject: 'CN=svcnode Test Intermediate, O=svcnode tests' })]);
    expect(pathlen.findings[0]?.message).toContain('"CN=Sub CA"');
    // The root that completes the chain is the server's too: found in trust.ca and named with its file.
    const root = await loadProfile(pemProfile('weak-root', weakRootChain, pki.write('by-weak-root.key', byWeakRoot.keyPem), { trust: { ca: [weakRootFile] } }));
    expect(root.findings).toEqual([expect.objectContaining({ code: 'CLIENT_CHAIN_WEAK_CA_KEY', file: weakRootFile, role: 'trust', subject: 'CN=Weak Root' })]);
    // The test PKI's own chain (intermediate with pathlen 0, leaf directly below) stays clean.
    expect(codes((await loadProfile(pki.profile('clean'))).findings)).toEqual([]);
  });

  it('a client chain whose issuer is not a CA (CA:FALSE, or keyUsage without keyCertSign) is named: servers refuse it', async () => {
    const verify = (chain: string): string => {
      try {
        execFileSync('openssl', ['verify', '-CAfile', pki.files.root, '-untrusted', chain, chain], { stdio: 'pipe' });
        return 'OK';
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
        return `${String(stdout)}${String(stderr)}`;
      }
    };
    // An issuing CA without pathlen (the test PKI's intermediate has pathlen:0), then an issuer
    // minted by openssl under it with the extensions under test, then a client leaf under that.
    const open = await mintCa({ subject: 'CN=Open Issuing CA', issuer: pki.root });
    const openCert = pki.write('open-int.pem', open.certPem);
    const openKey = pki.write('open-int.key', open.keyPem);
    const issueUnder = (name: string, ext: string): { chain: string; key: string } => {
      const key = join(pki.dir, `${name}.key`);
      execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
      const csr = join(pki.dir, `${name}.csr`);
      execFileSync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr], { stdio: 'ignore' });
      const issuer = join(pki.dir, `${name}.pem`);
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', openCert, '-CAkey', openKey, '-set_serial', '21', '-days', '365', '-extfile', pki.write(`${name}.ext`, ext), '-out', issuer], { stdio: 'ignore' });
      const leafKey = join(pki.dir, `${name}-leaf.key`);
      execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', leafKey], { stdio: 'ignore' });
      const leafCsr = join(pki.dir, `${name}-leaf.csr`);
      execFileSync('openssl', ['req', '-new', '-key', leafKey, '-subj', `/CN=bot-under-${name}`, '-out', leafCsr], { stdio: 'ignore' });
      const leaf = join(pki.dir, `${name}-leaf.pem`);
      execFileSync('openssl', ['x509', '-req', '-in', leafCsr, '-CA', issuer, '-CAkey', key, '-set_serial', '22', '-days', '365', '-extfile', pki.write(`${name}-leaf.ext`, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'), '-out', leaf], { stdio: 'ignore' });
      return { chain: pki.write(`${name}-chain.pem`, readFileSync(leaf, 'utf8'), readFileSync(issuer, 'utf8'), open.certPem), key: leafKey };
    };
    const notCa = issueUnder('not-a-ca', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
    const noCertSign = issueUnder('no-certsign', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature\n');
    expect(verify(notCa.chain)).toContain('invalid CA certificate');
    expect(verify(noCertSign.chain)).toContain('key usage does not include certificate signing');
    // Before: no finding ("no problems found"), and every call then failed with an alert.
    const p = await loadProfile(pemProfile('issuer-not-a-ca', notCa.chain, notCa.key));
    expect(p.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CLIENT_CHAIN_NOT_CA', file: notCa.chain, role: 'chain', subject: 'CN=not-a-ca' })]);
    expect(p.findings[0]?.message).toContain('basicConstraints without CA:TRUE');
    // OpenSSL does not even take a CA without keyCertSign as the issuer: refused at load, saying why (before: "certificates that do not link").
    await expect(loadProfile(pemProfile('issuer-no-certsign', noCertSign.chain, noCertSign.key))).rejects.toThrow(/"CN=no-certsign" signed "CN=bot-under-no-certsign" but may not sign certificates \(its keyUsage lacks keyCertSign\)/);
  });

  it('warns when the client certificate lacks the clientAuth EKU', async () => {
    for (const usage of ['none', 'server'] as const) {
      const leaf = await mintLeaf({ subject: `CN=${usage}`, issuer: pki.intermediate, usage });
      const p = await loadProfile(pemProfile(`eku-${usage}`, pki.write(`${usage}.crt`, leaf.certPem, pki.intermediate.certPem), pki.write(`${usage}.key`, leaf.keyPem)));
      expect(p.findings).toMatchObject([{ severity: 'warning', code: 'NO_CLIENT_AUTH_EKU', role: 'client' }]);
    }
  });

  it('an expired or not-yet-valid client certificate is an error finding, not a load failure', async () => {
    const now = Date.now();
    const expired = await mintLeaf({ subject: 'CN=expired', issuer: pki.intermediate, usage: 'client', notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) });
    const future = await mintLeaf({ subject: 'CN=future', issuer: pki.intermediate, usage: 'client', notBefore: new Date(now + 2 * DAY) });
    const e = await loadProfile(pemProfile('expired', pki.write('expired.crt', expired.certPem, pki.intermediate.certPem), pki.write('expired.key', expired.keyPem)));
    expect(e.findings).toMatchObject([{ severity: 'error', code: 'CLIENT_CERT_EXPIRED', role: 'client' }]);
    const f = await loadProfile(pemProfile('future', pki.write('future.crt', future.certPem, pki.intermediate.certPem), pki.write('future.key', future.keyPem)));
    expect(f.findings).toMatchObject([{ severity: 'error', code: 'CLIENT_CERT_NOT_YET_VALID' }]);
  });

  it('warns about certificates expiring within 90 days with the date and days left', async () => {
    const now = new Date();
    const soon = await mintLeaf({ subject: 'CN=soon', issuer: pki.intermediate, usage: 'client', notAfter: new Date(now.getTime() + 30 * DAY + 3_600_000) });
    const p = await loadProfile(pemProfile('soon', pki.write('soon.crt', soon.certPem, pki.intermediate.certPem), pki.write('soon.key', soon.keyPem)), { now });
    expect(p.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'CERT_EXPIRES_SOON', role: 'client', daysLeft: 30, validTo: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown })]);
    const quiet = await loadProfile(pemProfile('soon-policy', pki.write('soon.crt', soon.certPem, pki.intermediate.certPem), pki.write('soon.key', soon.keyPem), { policy: { expiryWarningDays: 10 } }), { now });
    expect(quiet.findings).toEqual([]);
  });

  it('judges every certificate against the injected now: client, chain and trust', async () => {
    const file = pki.profile('later');
    const later = await loadProfile(file, { now: new Date(Date.now() + 300 * DAY) });
    expect(later.findings.map((f) => `${f.code}:${f.role}`).sort()).toEqual(['CERT_EXPIRES_SOON:chain', 'CERT_EXPIRES_SOON:client', 'CERT_EXPIRES_SOON:trust']);
    expect(later.findings.every((f) => f.daysLeft === 64 || f.daysLeft === 65)).toBe(true);
    const after = await loadProfile(file, { now: new Date(Date.now() + 400 * DAY) });
    expect(codes(after.findings)).toEqual(['CERT_EXPIRED', 'CERT_EXPIRED', 'CLIENT_CERT_EXPIRED']);
  });
});

describe('secrets and versions', () => {
  it('never shows the key or the passphrase when a profile is serialised or logged', async () => {
    const key = pki.write('secret.key', pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const p: LoadedProfile = await loadProfile(pki.profile('secret', { client: { certificate: pki.files.clientChain, key, passphrase: { env: 'S' } }, trust: { ca: [pki.files.root] } }), { env: { S: PASS } });
    for (const text of [JSON.stringify(p), inspect(p, { depth: 10 }), JSON.stringify(p.client), inspect(p.client)]) {
      expect(text).not.toContain('PRIVATE KEY');
      expect(text).not.toContain(PASS);
    }
    expect(Object.keys(p.client!)).not.toContain('key');
    expect(Object.keys(p.client!)).not.toContain('keyPem');
    expect(p.client!.key.type).toBe('private');
  });

  it('changes the version when any material byte changes, not between identical loads', async () => {
    const chain = pki.write('versioned-chain.pem', pki.client.certPem, pki.intermediate.certPem);
    const file = pemProfile('versioned', chain, pki.files.clientKey);
    const a = await loadProfile(file);
    expect((await loadProfile(file)).version).toBe(a.version);
    pki.write('versioned-chain.pem', pki.client.certPem, pki.intermediate.certPem, '\n');
    expect((await loadProfile(file)).version).not.toBe(a.version);
  });
});

describe('loadProfilesDir and verifyProfile', () => {
  it('loads the good profiles and reports the bad ones', async () => {
    const dir = join(pki.dir, 'dir-test');
    const good = pki.write(join(dir, 'good.json'), JSON.stringify({ trust: { ca: [pki.files.root] } }));
    const bad = pki.write(join(dir, 'bad.json'), JSON.stringify({ client: { certificate: pki.files.clientChain, key: pki.files.serverKey } }));
    pki.write(join(dir, 'README.txt'), 'not a profile');
    const { profiles, errors } = await loadProfilesDir(dir);
    expect([...profiles.keys()]).toEqual(['good']);
    expect(profiles.get('good')?.file).toBe(good);
    expect(errors.map((e) => [e.file, e.error.code])).toEqual([[bad, 'SVCNODE_KEY_MISMATCH']]);
    await expect(loadProfilesDir(join(pki.dir, 'absent'))).rejects.toMatchObject({ code: 'SVCNODE_FILE_NOT_FOUND' });
  });

  it('reports load errors as error findings without the SVCNODE_ prefix', async () => {
    const v = await verifyProfile(pemProfile('verify-bad', pki.files.clientChain, pki.files.serverKey));
    expect(v.profile).toBeUndefined();
    expect(v.findings).toMatchObject([{ severity: 'error', code: 'KEY_MISMATCH' }]);
    const key = pki.write('verify-enc.key', pki.client.key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string);
    const wrong = await verifyProfile(pki.profile('verify-pass', { client: { certificate: pki.files.clientChain, key, passphrase: { env: 'V' } } }), { env: { V: `${PASS}!` } });
    expect(wrong.findings).toMatchObject([{ severity: 'error', code: 'BAD_PASSPHRASE', file: key }]);
    expect(JSON.stringify(wrong.findings)).not.toMatch(new RegExp(`PRIVATE KEY|${PASS}`));
    const ok = await verifyProfile(pki.profile('verify-ok'), { now: new Date(Date.now() + 300 * DAY) });
    expect(ok.profile?.name).toBe('verify-ok');
    expect(ok.findings.length).toBe(3);
  });
});
