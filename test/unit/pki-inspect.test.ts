import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dateStatus, describeCertificate, describeKey, spkiPin } from '../../src/pki/inspect.js';
import { orderChain } from '../../src/pki/chain.js';
import { mintLeaf } from '../../src/pki/mint.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';

const DAY = 86_400_000;
let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki({ serverKey: { type: 'ec', curve: 'P-256' } });
});
afterAll(() => pki.cleanup());

/** curl's documented recipe for a --pinnedpubkey value, run through the openssl CLI. */
function opensslPin(certFile: string): string {
  const pubkey = execFileSync('openssl', ['x509', '-in', certFile, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pubkey });
  const digest = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der });
  return `sha256//${digest.toString('base64')}`;
}

describe('describeCertificate', () => {
  it('describes a leaf: names, dates, key, SANs, EKU, fingerprint, pin', () => {
    const now = new Date(Date.parse(pki.server.cert.validTo) - 10.5 * DAY);
    const d = describeCertificate(pki.server.cert, now);
    expect(d).toMatchObject({
      subject: 'CN=localhost, O=svcnode tests',
      issuer: 'CN=svcnode Test Intermediate, O=svcnode tests',
      serial: pki.server.cert.serialNumber,
      validTo: new Date(pki.server.cert.validTo).toISOString(),
      daysLeft: 10,
      keyType: 'ec',
      curve: 'P-256',
      subjectAltNames: ['DNS:localhost', 'IP Address:127.0.0.1'],
      extKeyUsage: ['serverAuth'],
      isCa: false,
      fingerprint256: pki.server.cert.fingerprint256,
    });
    expect(d.keyBits).toBeUndefined();
    expect(describeCertificate(pki.root.cert, now)).toMatchObject({ keyType: 'rsa', keyBits: 2048, isCa: true, selfSigned: true });
  });

  it('reports negative days left once expired, and the date status', () => {
    const after = new Date(Date.parse(pki.client.cert.validTo) + 2.5 * DAY);
    expect(describeCertificate(pki.client.cert, after).daysLeft).toBe(-3);
    expect(dateStatus(pki.client.cert, after)).toBe('expired');
    expect(dateStatus(pki.client.cert, new Date(Date.parse(pki.client.cert.validFrom) - 1000))).toBe('not_yet_valid');
    expect(dateStatus(pki.client.cert, new Date())).toBe('valid');
  });
});

describe('spkiPin', () => {
  it('matches the sha256//base64 pin curl and openssl compute, for RSA and EC', () => {
    expect(spkiPin(pki.client.cert)).toBe(opensslPin(pki.files.clientCert));
    expect(spkiPin(pki.server.cert)).toBe(opensslPin(pki.files.serverCert));
  });

  it('is the same for a certificate and its private key', () => {
    expect(describeKey(pki.server.key).spkiPin).toBe(spkiPin(pki.server.cert));
    expect(describeKey(pki.client.key)).toMatchObject({ keyType: 'rsa', keyBits: 2048 });
  });
});

describe('orderChain', () => {
  it('puts the leaf first, then issuers, and flags what does not link', async () => {
    const other = await mintLeaf({ subject: 'CN=other', issuer: pki.root, usage: 'client' });
    const ordered = orderChain(pki.client.cert, [pki.root.cert, pki.client.cert, pki.intermediate.cert, pki.intermediate.cert, other.cert]);
    expect(ordered.chain.map((c) => c.subject)).toEqual([pki.intermediate.cert.subject, pki.root.cert.subject]);
    expect(ordered.unlinked.map((c) => c.subject)).toEqual([other.cert.subject]);
    expect(ordered.reordered).toBe(true);
    expect(orderChain(pki.client.cert, [pki.client.cert, pki.intermediate.cert]).reordered).toBe(false);
  });
});
