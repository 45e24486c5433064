/**
 * A backend that echoes what it was sent, into every part of a Result it can reach: redirect
 * Locations carrying the access or session token, bodies quoting a definition's own credential
 * headers, a token endpoint redirecting to a URL with the client secret, and discovery metadata
 * whose token endpoint is ~900 KB long. The Result, as invoked and as a worker stores it, holds
 * no secret (nor a cut piece of one) and stays under the stored bound. One real mTLS server.
 */
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import { invoke } from '../../src/invoke/execute.js';
import { STORED_RESULT_OVERHEAD_BYTES, storedResult, type Result } from '../../src/invoke/result.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

// Random first: a cut piece (the first 8 characters) must not be a word the Result holds anyway ("client-c" is in "oauth2-client-credentials").
const secret = (label: string): string => `${randomBytes(12).toString('hex')}-${label}`;
const ACCESS_TOKEN = secret('access');
const SESSION_TOKEN = secret('session');
const CLIENT_SECRET = secret('client');
const BASIC_USER = 'bot-user';
const BASIC_PASSWORD = secret('basicpw');
const API_KEY = secret('apikey');
const JSESSIONID = secret('jsid');
const USER_TOKEN = secret('usertoken');
const SECRET_ENV = 'SVCNODE_TEST_ECHO_SECRET';
const BOUND = DEFAULTS.response.maxStoredBodyBytes + STORED_RESULT_OVERHEAD_BYTES;
const PAD = 900_000;

/** Each form a secret may take in a stored Result: whole, and its first 8 characters (a cut piece). */
const forms = (secrets: readonly string[]): string[] => secrets.flatMap((s) => [s, s.slice(0, 8)]);

describe('secrets a backend echoes into a Result', () => {
  let pki: TestPki;
  let server: MtlsServer;
  let profile: LoadedProfile;
  const agents = new AgentPool();
  let tokens: MemoryTokenCache;
  let base: string;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    const url = new URL(req.url ?? '/', 'https://localhost');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/token') return json(200, { access_token: ACCESS_TOKEN, token_type: 'Bearer', expires_in: 300 });
    if (url.pathname === '/session') return json(200, { token: SESSION_TOKEN });
    if (url.pathname === '/token/redirect') {
      res.writeHead(302, { location: `https://localhost/login?x=${'a'.repeat(140)}&cs=${CLIENT_SECRET}` });
      return void res.end();
    }
    if (url.pathname === '/redirtok') {
      const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const session = String(req.headers.sessiontoken ?? '');
      res.writeHead(302, { location: `/echo/next?t=${bearer}&s=${session}&e=${encodeURIComponent(bearer)}#f=${session}` });
      return void res.end();
    }
    if (url.pathname === '/badredir') {
      // Not a URL (an unclosed IPv6 literal): a message that cut it at 200 characters would keep the token's first 10, too few to be told as a piece of it.
      res.writeHead(302, { location: `https://[bad/${'p'.repeat(174)}?t=${(req.headers.authorization ?? '').replace(/^Bearer /, '')}` });
      return void res.end();
    }
    const padded = /^\/pad-(query|path)\/\.well-known\/openid-configuration$/.exec(url.pathname)?.[1];
    if (padded) {
      const pad = 'x'.repeat(PAD);
      return json(200, { issuer: `${base}/pad-${padded}`, token_endpoint: padded === 'query' ? `${base}/token?pad=${pad}` : `${base}/token/${pad}` });
    }
    if (url.pathname === '/query/.well-known/openid-configuration') return json(200, { issuer: `${base}/query`, token_endpoint: `${base}/token?tenant=a` });
    // An API that returns the request: its headers, and the Basic credentials and cookie it read from them.
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const pair = basic === undefined ? '' : Buffer.from(basic, 'base64').toString();
    json(200, { path: req.url, headers: req.headers, user: pair, password: pair.slice(pair.indexOf(':') + 1), cookie: /JSESSIONID=([^;]*)/.exec(req.headers.cookie ?? '')?.[1] ?? null });
  };

  const node = (id: string, path: string, extra: Partial<NodeDefinition> = {}): NodeDefinition => ({
    id,
    request: { method: 'GET', url: `${base}${path}` },
    tls: { profile: 'bank' },
    retry: { limit: 0 },
    ...extra,
  });
  const call = (n: NodeDefinition, context: Record<string, unknown> = {}): Promise<Result> => invoke(n, context, { agents, tokens, profile: () => profile });

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, handler });
    base = `https://localhost:${server.port}`;
    profile = await loadProfile(pki.profile('bank'));
  });

  beforeEach(() => {
    tokens = new MemoryTokenCache();
  });

  afterAll(async () => {
    agents.destroy();
    await server?.close();
    await pki?.cleanup();
  });

  it('D1: the access token a redirect Location carries is not in request.redirects, as the Result or as stored', async () => {
    const r = await call(node('oauth-redir', '/redirtok', { request: { method: 'GET', url: `${base}/redirtok`, followRedirects: true }, auth: { type: 'oauth2-client-credentials', tokenUrl: `${base}/token`, clientId: 'bot', clientAuth: 'tls_client_auth' } }));
    expect(r.ok, JSON.stringify(r.failure)).toBe(true);
    expect(r.request.redirects).toHaveLength(1);
    // Before: /echo/next?t=<the access token>&s=&e=<the access token>#f=
    expect(r.request.redirects?.[0]?.url).toContain('/echo/next?t=[redacted]');
    assertNoSecrets(JSON.stringify(r), [ACCESS_TOKEN], 'Result');
    assertNoSecrets(JSON.stringify(storedResult(r, {})), [ACCESS_TOKEN], 'stored Result');
  });

  it('D1: a failure message that quotes a Location cut short keeps no piece of the access token', async () => {
    const r = await call(node('oauth-badredir', '/badredir', { request: { method: 'GET', url: `${base}/badredir`, followRedirects: true }, auth: { type: 'oauth2-client-credentials', tokenUrl: `${base}/token`, clientId: 'bot', clientAuth: 'tls_client_auth' } }));
    expect(r.failure?.code).toBe('SVCNODE_BAD_REDIRECT');
    expect(r.failure?.message).toContain('?t=[redacted]');
    // Before: the message ended with the token's first 24 characters (cut, then scrubbed for the whole token only).
    assertNoSecrets(JSON.stringify(storedResult(r, {})), forms([ACCESS_TOKEN]), 'stored Result');
  });

  it('D1: the certificate-session token a redirect Location carries is not in request.redirects', async () => {
    const r = await call(node('sess-redir', '/redirtok', { request: { method: 'GET', url: `${base}/redirtok`, followRedirects: true }, auth: { type: 'certificate-session', tokens: [{ url: `${base}/session`, header: 'sessionToken' }] } }));
    expect(r.ok, JSON.stringify(r.failure)).toBe(true);
    expect(r.request.redirects?.[0]?.url).toContain('s=[redacted]');
    assertNoSecrets(JSON.stringify(storedResult(r, {})), [SESSION_TOKEN], 'stored Result');
  });

  it("D7: a definition's own Authorization (Basic), X-Api-Key, Cookie and a templated Bearer header, echoed, are redacted", async () => {
    const basic = Buffer.from(`${BASIC_USER}:${BASIC_PASSWORD}`).toString('base64');
    const statics = await call(node('static-auth', '/echo/static', { request: { method: 'GET', url: `${base}/echo/static`, headers: { Authorization: `Basic ${basic}`, 'X-Api-Key': API_KEY, Cookie: `theme=dark; JSESSIONID=${JSESSIONID}` } } }));
    expect(statics.ok, JSON.stringify(statics.failure)).toBe(true);
    const body = statics.response?.body as Record<string, unknown>;
    expect(body.password).toBe('[redacted]');
    expect(body.cookie).toBe('[redacted]');
    assertNoSecrets(JSON.stringify(storedResult(statics, {})), [basic, `${BASIC_USER}:${BASIC_PASSWORD}`, BASIC_PASSWORD, API_KEY, JSESSIONID], 'stored Result');

    const templated = await call(node('user-token', '/echo/user', { request: { method: 'GET', url: `${base}/echo/user?u={{context.userToken}}`, headers: { Authorization: 'Bearer {{context.userToken}}' } } }), { userToken: USER_TOKEN });
    expect(templated.ok, JSON.stringify(templated.failure)).toBe(true);
    assertNoSecrets(JSON.stringify(storedResult(templated, {})), [USER_TOKEN], 'stored Result');
  });

  it('D8a: a token endpoint redirecting to a URL with the client secret: no piece of the secret in the failure', async () => {
    process.env[SECRET_ENV] = CLIENT_SECRET;
    try {
      for (const clientAuth of ['client_secret_basic', 'client_secret_post'] as const) {
        const r = await call(node('token-redirect', '/echo/x', { auth: { type: 'oauth2-client-credentials', tokenUrl: `${base}/token/redirect`, clientId: 'bot', clientAuth, clientSecret: { env: SECRET_ENV } } }));
        expect(r.failure?.code, clientAuth).toBe('SVCNODE_TOKEN_REQUEST_REFUSED');
        expect(r.failure?.message).toContain('answered HTTP 302 to https://localhost/login?x=aaaa');
        // Before: the Location was cut at 200 characters, then scrubbed for the whole secret: its first 24 characters stayed.
        assertNoSecrets(JSON.stringify(r), forms([CLIENT_SECRET]), `Result (${clientAuth})`);
      }
    } finally {
      delete process.env[SECRET_ENV];
    }
  });

  it('D2: a discovered token endpoint of ~900 KB (query or path) is refused, naming the field; the stored Result keeps its bound', async () => {
    for (const padded of ['query', 'path']) {
      const r = await call(node('oauth-disc', '/echo/acct', { auth: { type: 'oauth2-client-credentials', issuer: `${base}/pad-${padded}`, clientId: 'bot', clientAuth: 'tls_client_auth' } }));
      expect(r.failure, padded).toMatchObject({ phase: 'auth', code: 'SVCNODE_DISCOVERY_FAILED' });
      expect(r.failure?.message).toContain("token_endpoint is 9000");
      // Before: the endpoint was used and reported in auth.tokenEndpoint: ~900 KB in every stored Result.
      expect(Buffer.byteLength(JSON.stringify(storedResult(r, {}))), padded).toBeLessThan(BOUND);
      expect(JSON.stringify(r).length).toBeLessThan(BOUND);
    }
  });

  it('D2: a discovered token endpoint with a query is refused as auth.tokenUrl is', async () => {
    const r = await call(node('oauth-query', '/echo/acct', { auth: { type: 'oauth2-client-credentials', issuer: `${base}/query`, clientId: 'bot', clientAuth: 'tls_client_auth' } }));
    expect(r.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_DISCOVERY_FAILED' });
    expect(r.failure?.message).toContain("the metadata's token_endpoint has a query or fragment");
  });
});
