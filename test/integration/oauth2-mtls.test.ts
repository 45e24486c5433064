/**
 * OAuth 2.0 client credentials over mutual TLS (RFC 8705) against oidc-provider behind a TLS
 * front: every client authentication method, discovery, and the coded token errors.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { invoke } from '../../src/invoke/execute.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import { AgentPool } from '../../src/tls/agents.js';
import { createOAuth2Fixture, oauth2Deps, SECRET_ENV, type OAuth2Fixture } from '../helpers/oauth2-fixture.js';

describe('OAuth 2.0 client credentials over mutual TLS: client authentication', () => {
  let f: OAuth2Fixture;
  const agents = new AgentPool();
  let tokens: MemoryTokenCache;
  const deps = oauth2Deps(() => f, agents, () => tokens);

  beforeAll(async () => {
    f = await createOAuth2Fixture();
    process.env[SECRET_ENV] = f.secret;
  });

  beforeEach(() => {
    tokens = new MemoryTokenCache();
    f.as.tokenRequests.length = 0;
    f.as.discoveryRequests = 0;
    f.as.resource.requests = 0;
  });

  afterAll(async () => {
    delete process.env[SECRET_ENV];
    agents.destroy();
    await f?.cleanup();
  });

  it('tls_client_auth: a certificate-bound token fetched over mTLS, accepted by the resource server', async () => {
    const result = await invoke(f.node(), {}, deps);
    expect(result.failure).toBeNull();
    expect(result.response?.status).toBe(200);
    expect(f.as.tokenRequests).toEqual([{ front: 'mtls', status: 200, clientId: 'bot-tls' }]);
    expect(result.auth).toMatchObject({ tokenEndpoint: f.as.mtlsTokenUrl, endpointSource: 'tokenUrl', clientAuth: 'tls_client_auth', status: 200, cached: false, binding: 'checked', token: '[redacted]' });
    expect(result.auth).toMatchObject({ expiresIn: 300 });
  });

  it('self_signed_tls_client_auth: the self-signed certificate registered in the client jwks is accepted', async () => {
    const result = await invoke(f.node({ clientId: 'bot-self-signed', clientAuth: 'self_signed_tls_client_auth' }, 'selfsigned'), {}, deps);
    expect(result.failure).toBeNull();
    expect(result.response?.status).toBe(200);
    expect(result.auth).toMatchObject({ clientAuth: 'self_signed_tls_client_auth', binding: 'checked' });
  });

  it('private_key_jwt: the client assertion is signed with the profile key', async () => {
    const seen = f.as.secretsSeen.length;
    const result = await invoke(f.node({ clientId: 'bot-jwt', clientAuth: 'private_key_jwt' }), {}, deps);
    expect(result.failure).toBeNull();
    expect(result.auth).toMatchObject({ clientAuth: 'private_key_jwt', status: 200, binding: 'checked' });
    // The front saw one assertion (and one token): an RS256 JWT for the token endpoint.
    const claimsOf = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    const assertion = f.as.secretsSeen.slice(seen).find((s) => claimsOf(s).iss === 'bot-jwt');
    const claims = assertion ? claimsOf(assertion) : {};
    expect(claims).toMatchObject({ iss: 'bot-jwt', sub: 'bot-jwt', aud: f.as.mtlsTokenUrl });
  });

  it('client_secret_basic reads the secret from the environment, client_secret_post from a file', async () => {
    const basic = await invoke(f.node({ clientId: 'bot-basic', clientAuth: 'client_secret_basic', clientSecret: { env: SECRET_ENV } }), {}, deps);
    expect(basic.failure).toBeNull();
    expect(basic.auth).toMatchObject({ clientAuth: 'client_secret_basic', binding: 'checked' });
    const file = f.pki.write('client-secret.txt', f.secret);
    const post = await invoke(f.node({ clientId: 'bot-post', clientAuth: 'client_secret_post', clientSecret: { file } }), {}, deps);
    expect(post.failure).toBeNull();
    writeFileSync(file, 'not-the-secret\n');
    tokens = new MemoryTokenCache();
    const wrong = await invoke(f.node({ clientId: 'bot-post', clientAuth: 'client_secret_post', clientSecret: { file } }), {}, deps);
    expect(wrong.failure).toMatchObject({ phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_REJECTED' });
  });

  it('an unset secret variable is invalid input and sends no token request', async () => {
    const result = await invoke(f.node({ clientId: 'bot-basic', clientAuth: 'client_secret_basic', clientSecret: { env: 'SVCNODE_TEST_UNSET_SECRET' } }), {}, deps);
    expect(result.failure).toMatchObject({ phase: 'input', category: 'invalid_input', code: 'SVCNODE_CLIENT_SECRET_MISSING' });
    expect(f.as.tokenRequests).toEqual([]);
  });

  it('a wrong client id: SVCNODE_TOKEN_REJECTED naming our subject DN and SHA-256 thumbprint to register', async () => {
    const result = await invoke(f.node({ clientId: 'no-such-client' }), {}, deps);
    const leaf = f.profiles.get('bank')?.client?.leaf;
    expect(result.failure).toMatchObject({ phase: 'auth', category: 'client_cert_rejected', code: 'SVCNODE_TOKEN_REJECTED' });
    expect(result.failure?.hint).toContain('CN=svcnode-bot');
    expect(result.failure?.hint).toContain(leaf?.fingerprint256);
    expect(result.failure?.message).toContain(f.as.mtlsTokenUrl);
    expect(result.auth).toMatchObject({ status: 401, token: null });
    expect(f.as.resource.requests).toBe(0);
    expect(result.response).toBeNull();
  });

  it('a scope the client may not have: SVCNODE_TOKEN_INVALID_SCOPE', async () => {
    const result = await invoke(f.node({ scope: 'admin' }), {}, deps);
    expect(result.failure).toMatchObject({ phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_INVALID_SCOPE' });
    expect(f.as.resource.requests).toBe(0);
  });

  it('discovery: fetched once, the mtls_endpoint_aliases token endpoint is used', async () => {
    const viaIssuer = f.node({ tokenUrl: undefined, issuer: f.as.issuer });
    const first = await invoke(viaIssuer, {}, deps);
    expect(first.failure).toBeNull();
    expect(first.auth).toMatchObject({ tokenEndpoint: f.as.mtlsTokenUrl, endpointSource: 'mtls_endpoint_aliases' });
    tokens = new MemoryTokenCache();
    const second = await invoke(viaIssuer, {}, deps);
    expect(second.failure).toBeNull();
    expect(f.as.discoveryRequests).toBe(1);
    expect(f.as.tokenRequests.map((r) => r.front)).toEqual(['mtls', 'mtls']);
  });

  it('discovery: metadata naming another issuer is refused before any token request', async () => {
    const result = await invoke(f.node({ tokenUrl: undefined, issuer: f.as.otherSpelling }), {}, deps);
    expect(result.failure).toMatchObject({ phase: 'auth', category: 'server_identity_mismatch', code: 'SVCNODE_ISSUER_MISMATCH' });
    expect(f.as.tokenRequests).toEqual([]);
  });
});
