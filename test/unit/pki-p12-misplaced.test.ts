import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import { BundleError } from '../../src/errors.js';
import { createTestPki, opensslPkcs12, type TestPki } from '../helpers/pki.js';

/** PKCS#12 files in fields that cannot take their passphrase: the message says what to use instead. */

const PASS = 'Misplaced-p12 pass!';
let pki: TestPki;

async function loadError(file: string, env: NodeJS.ProcessEnv = {}): Promise<BundleError> {
  const error = await loadProfile(file, { env }).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BundleError);
  const e = error as BundleError;
  expect(`${e.message} ${e.hint ?? ''}`).not.toContain(PASS);
  return e;
}

/** A certificates-only PKCS#12, as banks hand out truststores; `passphrase: ''` with no MAC or encryption. */
function truststore(out: string, passphrase: string): string {
  const args = ['pkcs12', '-export', '-nokeys', '-in', pki.files.root, '-out', out, '-passout', 'env:TS_PASS'];
  if (passphrase === '') args.push('-certpbe', 'NONE', '-nomac');
  execFileSync('openssl', args, { env: { ...process.env, TS_PASS: passphrase }, stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(() => pki.cleanup());

describe('a PKCS#12 file named where PEM/DER is expected', () => {
  it('"certificate" and "key" naming an encrypted .p12 with a passphrase configured point at "pkcs12"', async () => {
    const p12 = opensslPkcs12({ certFiles: [pki.files.clientCert, pki.files.intermediate], keyFile: pki.files.clientKey, out: join(pki.dir, 'id.p12'), passphrase: PASS });
    const file = pki.profile('p12-in-pem-fields', { client: { certificate: p12, key: p12, passphrase: { env: 'P12PASS' } }, trust: { ca: [pki.files.root] } });
    const e = await loadError(file, { P12PASS: PASS });
    expect(e.code).toBe('SVCNODE_INVALID_BUNDLE');
    expect(e.file).toBe(p12);
    expect(e.message).toContain('"certificate" names a PKCS#12 bundle');
    expect(e.hint).toContain('"pkcs12"');
    expect(e.message).not.toMatch(/none is configured/);
    // The same file under "pkcs12" loads: the hint can be followed.
    const fixed = pki.profile('p12-fixed', { client: { pkcs12: p12, passphrase: { env: 'P12PASS' } }, trust: { ca: [pki.files.root] } });
    expect((await loadProfile(fixed, { env: { P12PASS: PASS } })).client?.leaf.fingerprint256).toBe(pki.client.cert.fingerprint256);
  });
});

describe('a PKCS#12 truststore in trust.ca', () => {
  it('protected by a passphrase: says trust.ca takes none and how to convert it, not the client passphrase hint', async () => {
    const ts = truststore(join(pki.dir, 'truststore.p12'), PASS);
    const file = pki.profile('ts-encrypted', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [ts] } });
    const e = await loadError(file);
    expect(e.code).toBe('SVCNODE_INVALID_BUNDLE');
    expect(e.file).toBe(ts);
    expect(e.message).toContain('trust.ca');
    expect(e.message).toContain('passphrase');
    expect(e.hint).toContain('password-less');
    expect(e.hint).toContain(`openssl pkcs12 -in ${ts} -nokeys -out trust.pem`);
    expect(e.hint).not.toContain('client section');
  });

  it('without a passphrase: loads its certificates', async () => {
    const ts = truststore(join(pki.dir, 'truststore-open.p12'), '');
    const p = await loadProfile(pki.profile('ts-open', { client: { certificate: pki.files.clientChain, key: pki.files.clientKey }, trust: { ca: [ts] } }), { env: {} });
    expect(p.trust.certificates.map((c) => c.fingerprint256)).toEqual([pki.root.cert.fingerprint256]);
  });
});
