/** Client assertions, token request forms, binding and challenge parsing, on real keys and certificates. */
import { createHash, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OAuth2ClientCredentialsAuth } from '../../src/definitions/types.js';
import { tokenBinding } from '../../src/invoke/oauth2-binding.js';
import { clientAssertion, tokenRequestParts } from '../../src/invoke/oauth2-client-auth.js';
import { invalidTokenChallenge } from '../../src/invoke/oauth2-token.js';
import { mintLeaf } from '../../src/pki/mint.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { createTestPki, type KeySpec, type TestPki } from '../helpers/pki.js';

const part = (jwt: string, i: number): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[i] ?? '', 'base64url').toString()) as Record<string, unknown>;
const jwt = (claims: unknown): string => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await pki?.cleanup();
});

describe('private_key_jwt client assertions', () => {
  it.each<[string, string, KeySpec | undefined, 'der' | 'ieee-p1363']>([
    ['RSA', 'RS256', undefined, 'der'],
    ['EC P-256', 'ES256', { type: 'ec', curve: 'P-256' }, 'ieee-p1363'],
    ['EC P-384', 'ES384', { type: 'ec', curve: 'P-384' }, 'ieee-p1363'],
  ])('%s key: %s, signed with the profile key, addressed to the token endpoint', async (name, alg, key, dsaEncoding) => {
    const leaf = key ? await mintLeaf({ subject: `CN=${name},O=svcnode tests`, issuer: pki.intermediate, usage: 'client', key }) : pki.client;
    const file = key ? pki.profile(`ec${alg}`, { client: { certificate: pki.write(`${alg}.pem`, leaf.certPem), key: pki.write(`${alg}.key`, leaf.keyPem) }, trust: { ca: [pki.files.root] } }) : pki.profile('bank');
    const profile = await loadProfile(file);
    const now = new Date('2026-01-01T00:00:00Z');
    const assertion = clientAssertion(profile, 'bot-1', 'https://as.example/token', now);
    expect(part(assertion, 0)).toEqual({ alg, typ: 'JWT' });
    expect(part(assertion, 1)).toMatchObject({ iss: 'bot-1', sub: 'bot-1', aud: 'https://as.example/token', iat: 1767225600, exp: 1767225660 });
    const [h, p, s] = assertion.split('.');
    const hash = alg.endsWith('384') ? 'sha384' : 'sha256';
    expect(verify(hash, Buffer.from(`${h}.${p}`), { key: leaf.cert.publicKey, dsaEncoding }, Buffer.from(s ?? '', 'base64url'))).toBe(true);
    expect(clientAssertion(profile, 'bot-1', 'https://as.example/token', now)).not.toBe(assertion);
  });
});

describe('token requests, binding and challenges', () => {
  let profile: LoadedProfile;
  beforeAll(async () => {
    profile = await loadProfile(pki.profile('bank'));
  });
  const auth = (a: Partial<OAuth2ClientCredentialsAuth>): OAuth2ClientCredentialsAuth => ({ type: 'oauth2-client-credentials', tokenUrl: 'https://as.example/token', clientId: 'bot 1:x', clientAuth: 'tls_client_auth', ...a });

  it('client_secret_basic form-encodes id and secret before Basic (RFC 6749 §2.3.1); tls_client_auth sends only client_id', () => {
    process.env.SVCNODE_TEST_UNIT_SECRET = 'p@ss:w rd';
    try {
      const basic = tokenRequestParts(auth({ clientAuth: 'client_secret_basic', clientSecret: { env: 'SVCNODE_TEST_UNIT_SECRET' }, scope: 'a b', params: { audience: 'https://api' } }), profile, 'https://as.example/token', new Date());
      expect(Buffer.from((basic.headers.authorization ?? '').replace('Basic ', ''), 'base64').toString()).toBe('bot+1%3Ax:p%40ss%3Aw+rd');
      expect(Object.fromEntries(basic.form)).toEqual({ grant_type: 'client_credentials', scope: 'a b', audience: 'https://api' });
    } finally {
      delete process.env.SVCNODE_TEST_UNIT_SECRET;
    }
    const tls = tokenRequestParts(auth({}), profile, 'https://as.example/token', new Date());
    expect(Object.fromEntries(tls.form)).toEqual({ grant_type: 'client_credentials', client_id: 'bot 1:x' });
    expect(tls.headers.authorization).toBeUndefined();
  });

  it('reads cnf.x5t#S256 of a JWT access token against our certificate', () => {
    const ours = createHash('sha256').update(pki.client.cert.raw).digest('base64url');
    expect(tokenBinding(jwt({ cnf: { 'x5t#S256': ours } }), profile)).toBe('checked');
    expect(tokenBinding(jwt({ cnf: { 'x5t#S256': ours.replace(/^./, ours.startsWith('A') ? 'B' : 'A') } }), profile)).toBe('mismatch');
    expect(tokenBinding(jwt({ sub: 'bot' }), profile)).toBe('unbound');
    expect(tokenBinding('2YotnFZFEjr1zCsicMWpAA', profile)).toBe('opaque');
    expect(tokenBinding('a.b.c', profile)).toBe('opaque');
  });

  it('re-authenticates only on a Bearer invalid_token challenge', () => {
    expect(invalidTokenChallenge({ 'www-authenticate': 'Bearer realm="x", error="invalid_token", error_description="expired"' })).toBe(true);
    expect(invalidTokenChallenge({ 'www-authenticate': ['Basic realm="x"', 'Bearer error=invalid_token'] })).toBe(true);
    expect(invalidTokenChallenge({ 'www-authenticate': 'Bearer realm="x", error="insufficient_scope"' })).toBe(false);
    expect(invalidTokenChallenge({ 'www-authenticate': 'Bearer realm="x"' })).toBe(false);
    expect(invalidTokenChallenge({})).toBe(false);
  });
});
