import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityError } from '../../src/errors.js';
import { mintCa, mintLeaf, type MintedCert } from '../../src/pki/mint.js';
import { checkIdentityRules, compileSubjectPattern, formatDn, identityChecker, pinOfSpki, subjectMatches } from '../../src/tls/identity.js';

const DN = 'CN=api.bank.example, OU=Payments, O=Bank AG, C=DE';
const REVERSED = 'C=DE, O=Bank AG, OU=Payments, CN=api.bank.example';

describe('Ant-style subject patterns', () => {
  it.each([
    // ? is exactly one character
    ['CN=api.bank.exampl?, OU=Payments, O=Bank AG, C=DE', true],
    ['CN=api.bank.example?, OU=Payments, O=Bank AG, C=DE', false],
    ['CN=???.bank.example, OU=Payments, O=Bank AG, C=DE', true],
    ['CN=??.bank.example, OU=Payments, O=Bank AG, C=DE', false],
    // * is any run of characters within one RDN (never across a comma)
    ['CN=*.bank.example, OU=Payments, O=Bank AG, C=DE', true],
    ['CN=*, OU=*, O=*, C=*', true],
    ['CN=*, C=DE', false],
    ['CN=api.bank.example, OU=*', false],
    ['CN=*.example', false],
    // ** is anything, across RDNs
    ['CN=api.bank.example, **', true],
    ['**, C=DE', true],
    ['**O=Bank AG**', true],
    ['**', true],
    ['CN=api.other.example, **', false],
    ['**O=Other AG**', false],
  ])('%s → %s', (pattern, expected) => {
    expect(subjectMatches(DN, [pattern])).toBe(expected);
  });

  it('matches the DN in certificate order and in reverse (RFC 4514) order, with any spacing after commas', () => {
    for (const dn of [DN, REVERSED]) {
      expect(subjectMatches(dn, ['CN=api.bank.example,OU=Payments,O=Bank AG,C=DE'])).toBe(true);
      expect(subjectMatches(dn, ['C=DE, O=Bank AG, OU=Payments, CN=api.bank.example'])).toBe(true);
      expect(subjectMatches(dn, ['C=DE,  O=Bank*, **'])).toBe(true);
      expect(subjectMatches(dn, ['CN=api.*, OU=Payments, **'])).toBe(true);
    }
  });

  it('one matching pattern out of several is enough; none is a mismatch', () => {
    expect(subjectMatches(DN, ['CN=nope', 'CN=api.bank.example, **'])).toBe(true);
    expect(subjectMatches(DN, ['CN=nope', 'O=Other'])).toBe(false);
    expect(subjectMatches(DN, [])).toBe(false);
  });

  it('regex metacharacters in patterns are literal', () => {
    expect(subjectMatches('CN=apiXbank', ['CN=api.bank'])).toBe(false);
    expect(subjectMatches('CN=a+b (test) [1] $x ^y |z', ['CN=a+b (test) [1] $x ^y |z'])).toBe(true);
    expect(subjectMatches('CN=ab', ['CN=a+b'])).toBe(false);
    expect(compileSubjectPattern('CN=.*').test('CN=anything')).toBe(false);
  });

  it('the whole DN must match (anchored)', () => {
    expect(subjectMatches(DN, ['CN=api.bank.example'])).toBe(false);
    expect(subjectMatches(DN, ['OU=Payments, O=Bank AG, C=DE'])).toBe(false);
  });
});

describe('formatDn', () => {
  it('joins X509Certificate.subject lines in certificate order', () => {
    expect(formatDn('CN=api.bank.example\nOU=Payments\nO=Bank AG\nC=DE')).toBe(DN);
    expect(formatDn('CN=x\n')).toBe('CN=x');
  });
});

describe('pins and checks on real certificates', () => {
  let dir: string;
  let root: MintedCert;
  let rsa: MintedCert;
  let ec: MintedCert;

  /** curl's documented recipe for --pinnedpubkey sha256//…, run with the openssl CLI. */
  function curlPin(cert: MintedCert): string {
    const file = join(dir, `${cert.cert.fingerprint256.slice(0, 8).replace(/:/g, '')}.pem`);
    writeFileSync(file, cert.certPem);
    const spki = execFileSync('openssl', ['x509', '-in', file, '-pubkey', '-noout']);
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: spki });
    const hash = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der });
    return `sha256//${hash.toString('base64')}`;
  }

  const peer = (cert: MintedCert, extra: Partial<PeerCertificate> = {}): PeerCertificate => ({ raw: cert.cert.raw, ...extra }) as PeerCertificate;
  const spkiOf = (cert: MintedCert): Buffer => cert.cert.publicKey.export({ type: 'spki', format: 'der' });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svcnode-identity-'));
    root = await mintCa({ subject: 'CN=Pin Root' });
    [rsa, ec] = await Promise.all([
      mintLeaf({ subject: 'CN=api.bank.example,OU=Payments,O=Bank AG,C=DE', issuer: root, usage: 'server', dnsNames: ['api.bank.example'] }),
      mintLeaf({ subject: 'CN=ec.bank.example,O=Bank AG', issuer: root, usage: 'server', dnsNames: ['ec.bank.example'], key: { type: 'ec', curve: 'P-256' } }),
    ]);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('pinOfSpki produces curl\'s sha256//BASE64 form, for RSA and EC keys', () => {
    for (const cert of [rsa, ec]) {
      const pin = pinOfSpki(spkiOf(cert));
      expect(pin).toBe(curlPin(cert));
      expect(pin).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/); // the schema's pattern
    }
  });

  it('a matching pin passes; a wrong pin is SVCNODE_PIN_MISMATCH', () => {
    expect(checkIdentityRules(peer(rsa), { pinnedPublicKeys: [curlPin(root), curlPin(rsa)] })).toBeUndefined();
    expect(checkIdentityRules(peer(ec), { pinnedPublicKeys: [curlPin(ec)] })).toBeUndefined();
    const wrong = checkIdentityRules(peer(rsa), { pinnedPublicKeys: [curlPin(root)] });
    expect(wrong).toBeInstanceOf(IdentityError);
    expect(wrong?.code).toBe('SVCNODE_PIN_MISMATCH');
    expect(checkIdentityRules(peer(ec), { pinnedPublicKeys: [curlPin(rsa)] })?.code).toBe('SVCNODE_PIN_MISMATCH');
  });

  it('subject patterns are checked against the certificate subject', () => {
    expect(checkIdentityRules(peer(rsa), { serverSubjectPatterns: ['CN=api.bank.example, **'] })).toBeUndefined();
    expect(checkIdentityRules(peer(rsa), { serverSubjectPatterns: ['C=DE, O=Bank AG, **'] })).toBeUndefined();
    expect(checkIdentityRules(peer(rsa), { serverSubjectPatterns: ['CN=*.other.example, **'] })?.code).toBe('SVCNODE_SUBJECT_MISMATCH');
  });

  it('no rules, or empty rule lists, pass', () => {
    expect(checkIdentityRules(peer(rsa), {})).toBeUndefined();
    expect(checkIdentityRules(peer(rsa), { pinnedPublicKeys: [], serverSubjectPatterns: [] })).toBeUndefined();
  });

  it('identityChecker keeps Node\'s host name check in front of pins and patterns', () => {
    const rules = { pinnedPublicKeys: [curlPin(rsa)], serverSubjectPatterns: ['**'] };
    const check = identityChecker(rules);
    const cert = peer(rsa, { subject: { CN: 'api.bank.example' }, subjectaltname: 'DNS:api.bank.example' });
    expect(check('api.bank.example', cert)).toBeUndefined();
    expect(check('evil.example', cert)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(identityChecker({ pinnedPublicKeys: [curlPin(ec)] })('api.bank.example', cert)).toMatchObject({ code: 'SVCNODE_PIN_MISMATCH' });
  });
});
