/**
 * Answers of token endpoints other than oidc-provider's: RFC 6749 errors it never sends, odd
 * successes (opaque and unbound tokens, non-Bearer types), and a token endpoint that rejects
 * our certificate in the handshake. The endpoint and the API are one real mTLS server.
 */
import type http from 'node:http';
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition, OAuth2ClientCredentialsAuth } from '../../src/definitions/types.js';
import { invoke } from '../../src/invoke/execute.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import { mintCa } from '../../src/pki/mint.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { RedisTokenCache } from '../../src/queue/redis-token-cache.js';
import { listen } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('token endpoint answers', () => {
  let pki: TestPki;
  let server: MtlsServer;
  let strict: MtlsServer;
  let profile: LoadedProfile;
  const agents = new AgentPool();
  let tokens: MemoryTokenCache;
  /** `body` as a function: the answer quotes the request's form, as some endpoints' error_description does. */
  let answer: { status: number; body: unknown; headers?: Record<string, string> };
  let api: { calls: number; authorization: string | undefined; status: number; challenge?: string };
  let tokenCalls: number;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/token') {
      tokenCalls++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { body: said } = answer;
        const body = typeof said === 'function' ? (said as (form: string) => unknown)(Buffer.concat(chunks).toString()) : said;
        res.writeHead(answer.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...answer.headers });
        // A string body goes out as written: JSON that JSON.stringify cannot produce (1e400).
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      });
      return;
    }
    req.resume();
    api.calls++;
    api.authorization = req.headers.authorization;
    res.writeHead(api.status, api.challenge ? { 'www-authenticate': api.challenge } : {});
    res.end();
  };
  const node = (auth: Partial<OAuth2ClientCredentialsAuth> = {}, at: MtlsServer = server): NodeDefinition => ({
    id: 'api',
    request: { method: 'GET', url: `https://localhost:${server.port}/api` },
    tls: { profile: 'bank' },
    retry: { limit: 0 },
    auth: { type: 'oauth2-client-credentials', tokenUrl: `https://localhost:${at.port}/token`, clientId: 'bot', clientAuth: 'tls_client_auth', ...auth },
  });
  const call = (n: NodeDefinition) => invoke(n, {}, { agents, tokens, profile: () => profile });

  beforeAll(async () => {
    pki = await createTestPki();
    const otherCa = await mintCa({ subject: 'CN=Other CA,O=svcnode tests' });
    server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, handler });
    strict = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: otherCa.certPem, handler });
    profile = await loadProfile(pki.profile('bank'));
  });

  beforeEach(() => {
    tokens = new MemoryTokenCache();
    tokenCalls = 0;
    api = { calls: 0, authorization: undefined, status: 200 };
  });

  afterAll(async () => {
    agents.destroy();
    await Promise.all([server?.close(), strict?.close()]);
    await pki?.cleanup();
  });

  it('unauthorized_client → SVCNODE_TOKEN_UNAUTHORIZED_CLIENT; invalid_client with a secret → http_status', async () => {
    answer = { status: 400, body: { error: 'unauthorized_client', error_description: 'grant not allowed' } };
    expect((await call(node())).failure).toMatchObject({ phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_UNAUTHORIZED_CLIENT' });
    answer = { status: 401, body: { error: 'invalid_client' } };
    process.env.SVCNODE_TEST_TE_SECRET = 'x-secret-value';
    const basic = await call(node({ clientAuth: 'client_secret_basic', clientSecret: { env: 'SVCNODE_TEST_TE_SECRET' } }));
    delete process.env.SVCNODE_TEST_TE_SECRET;
    expect(basic.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_TOKEN_REJECTED' });
    expect(api.calls).toBe(0);
  });

  it('invalid_scope without auth.scope, a 429, an answer too large to read: each said for what it is', async () => {
    answer = { status: 400, body: { error: 'invalid_scope' } };
    const scope = (await call(node())).failure;
    expect(scope).toMatchObject({ code: 'SVCNODE_TOKEN_INVALID_SCOPE' });
    // Before: 'ask the authorization server to grant client "bot" the scope ""'.
    expect(scope?.hint).toContain('the node sends no auth.scope');
    answer = { status: 429, body: { error: 'slow_down' }, headers: { 'retry-after': '1' } };
    const limited = (await call(node())).failure;
    expect(limited).toMatchObject({ code: 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE' });
    // Before: "the token endpoint failed on its side".
    expect(limited?.hint).toContain('is rate-limiting this client (HTTP 429)');
    answer = { status: 200, body: `{"access_token":"${'x'.repeat(1_200_000)}","token_type":"Bearer"}` };
    const big = (await call(node())).failure;
    // Before: "answered HTTP 200 with application/json, not JSON".
    expect(big?.message).toContain('larger than svcnode reads from a token endpoint');
    expect(api.calls).toBe(0);
  });

  it('a 200 without a Bearer access_token is SVCNODE_TOKEN_BAD_RESPONSE', async () => {
    answer = { status: 200, body: { token_type: 'Bearer', expires_in: 60 } };
    expect((await call(node())).failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_BAD_RESPONSE' });
    answer = { status: 200, body: { access_token: 'abc', token_type: 'DPoP', expires_in: 60 } };
    const dpop = (await call(node())).failure;
    expect(dpop).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_BAD_RESPONSE' });
    // What it was instead, each said: another token type, an OAuth error, a page that is not JSON.
    expect(dpop?.message).toContain('answered HTTP 200 a token of type DPoP; svcnode sends Bearer tokens only');
    answer = { status: 200, body: { error: 'invalid_client', error_description: 'unknown client' } };
    expect((await call(node())).failure?.message).toContain('answered HTTP 200 with an OAuth error instead of a token: invalid_client: unknown client');
    answer = { status: 200, body: '<html><body>Sign in</body></html>' };
    expect((await call(node())).failure?.message).toContain('answered HTTP 200 with application/json, not JSON');
    expect(api.calls).toBe(0);
  });

  it('a node whose response.maxBodyBytes is tiny still reads its token answer (the limit is for its API)', async () => {
    answer = { status: 200, body: { access_token: 'opaque-token-value', token_type: 'Bearer', expires_in: 60 } };
    const r = await call({ ...node(), response: { maxBodyBytes: 16 } });
    expect(r.auth, JSON.stringify(r.failure)).toMatchObject({ status: 200 });
    expect(api.authorization).toBe('Bearer opaque-token-value');
  });

  it('an opaque token is used as it is; a JWT without cnf is reported unbound', async () => {
    answer = { status: 200, body: { access_token: 'opaque-token-value', token_type: 'bearer', expires_in: 60 } };
    const opaque = await call(node());
    expect(opaque.failure).toBeNull();
    expect(api.authorization).toBe('Bearer opaque-token-value');
    expect(opaque.auth).toMatchObject({ binding: 'opaque', expiresIn: 60 });
    tokens = new MemoryTokenCache();
    answer = { status: 200, body: { access_token: `${b64({ alg: 'none' })}.${b64({ sub: 'bot' })}.sig`, token_type: 'Bearer' } };
    const unbound = await call(node());
    expect(unbound.auth).toMatchObject({ binding: 'unbound', expiresIn: 300 });
  });

  it('a 401 without an invalid_token challenge is not retried with a new token', async () => {
    answer = { status: 200, body: { access_token: 'opaque-token-value', token_type: 'Bearer', expires_in: 60 } };
    api.status = 401;
    api.challenge = 'Bearer realm="api", error="insufficient_scope"';
    const result = await call(node());
    expect(result.failure).toMatchObject({ code: 'HTTP_401' });
    expect([tokenCalls, api.calls]).toEqual([1, 1]);
  });

  it('expires_in beyond any sane lifetime (Long.MAX_VALUE, 1e400): the token is reused for a day at most, and Redis takes it (a job never fails on it)', async () => {
    const redis = await startRedis();
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const shared = new RedisTokenCache(connection);
      for (const expiresIn of ['9223372036854775807', '1e400']) {
        await connection.flushall();
        answer = { status: 200, body: `{"access_token":"long-lived-token","token_type":"Bearer","expires_in":${expiresIn}}` };
        const result = await invoke(node(), {}, { agents, tokens: shared, profile: () => profile });
        expect(result.failure, JSON.stringify(result.failure)).toBeNull();
        expect(result.auth).toMatchObject({ expiresIn: 86_400 });
        const [key] = await connection.keys('*tokens*');
        expect(await connection.pttl(key ?? '')).toBeLessThanOrEqual(86_400_000);
      }
      answer = { status: 200, body: { access_token: 'string-lifetime', token_type: 'Bearer', expires_in: '3600' } };
      expect((await call(node())).auth).toMatchObject({ expiresIn: 3600 });
    } finally {
      connection.disconnect();
      await redis.close();
    }
  });

  it('an error_description that quotes the client secret back: the secret is redacted in the failure', async () => {
    process.env.SVCNODE_TEST_ECHO_SECRET = 'echoed s3cret value';
    try {
      for (const clientAuth of ['client_secret_post', 'client_secret_basic'] as const) {
        answer = { status: 400, body: { error: 'invalid_request', error_description: 'bad secret echoed s3cret value' } };
        const r = await call(node({ clientAuth, clientSecret: { env: 'SVCNODE_TEST_ECHO_SECRET' } }));
        expect(r.failure?.message, clientAuth).toContain('bad secret [redacted]');
        expect(JSON.stringify(r), clientAuth).not.toContain('s3cret');
        // The start of it only, as a server that masks the rest might quote it.
        answer = { status: 400, body: { error: 'invalid_request', error_description: 'bad secret "echoed s3cr..."' } };
        const start = await call(node({ clientAuth, clientSecret: { env: 'SVCNODE_TEST_ECHO_SECRET' } }));
        expect(start.failure?.message, clientAuth).toContain('bad secret "[redacted]..."');
      }
    } finally {
      delete process.env.SVCNODE_TEST_ECHO_SECRET;
    }
  });

  it('an error_description that quotes the private_key_jwt assertion, whole or cut short by the endpoint: no piece of it is kept', async () => {
    const assertions: string[] = [];
    const form = (f: string): string => {
      const assertion = new URLSearchParams(f).get('client_assertion') ?? '';
      assertions.push(assertion);
      return assertion;
    };
    const quotes: Array<[string, (f: string) => unknown]> = [
      // Longer than the 200 characters a quoted description is cut to: the cut must not save a piece.
      ['whole', (f) => ({ error: 'invalid_client', error_description: `unknown client bot assertion=${form(f)}` })],
      ['form-encoded', (f) => ({ error: 'invalid_client', error_description: `body was ${f}` })],
      ['cut by the endpoint', (f) => ({ error: 'invalid_client', error_description: `unknown client, assertion ${form(f).slice(0, 60)}...` })],
      ['in a 200 without a token', (f) => ({ error: 'invalid_client', error_description: `assertion=${form(f).slice(0, 90)}` })],
      ['its signature alone', (f) => ({ error: 'invalid_client', error_description: `signature ${form(f).split('.')[2] ?? ''} does not verify` })],
      ['its parts one by one', (f) => {
        const [header, payload, signature] = form(f).split('.');
        return { error: 'invalid_client', error_description: `header ${header ?? ''}; claims ${payload ?? ''}; sig ${(signature ?? '').slice(0, 40)}` };
      }],
    ];
    for (const [what, body] of quotes) {
      answer = { status: what.startsWith('in a 200') ? 200 : 401, body };
      const r = await call(node({ clientAuth: 'private_key_jwt' }));
      const text = JSON.stringify(r);
      expect(r.failure?.message, what).toContain('[redacted]');
      const assertion = assertions.at(-1) ?? '';
      expect(assertion.length, what).toBeGreaterThan(200);
      // No 16 characters in a row of the assertion survive (its JWT header included, which is the same for every RS256 JWT).
      for (let i = 0; i + 16 <= assertion.length; i += 8) expect(text, `${what} at ${i}`).not.toContain(assertion.slice(i, i + 16));
    }
    // The endpoint's own words around it are kept.
    answer = { status: 401, body: quotes[0]?.[1] };
    expect((await call(node({ clientAuth: 'private_key_jwt' }))).failure?.message).toContain('invalid_client: unknown client bot assertion=[redacted]');
  });

  it('a bare 401 is the client refused (RFC 6749 5.2), and a redirect names where it points', async () => {
    answer = { status: 401, body: {}, headers: { 'www-authenticate': 'Basic realm="as"' } };
    expect((await call(node())).failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_REJECTED', category: 'client_cert_rejected' });
    answer = { status: 302, body: {}, headers: { location: `https://user:pw@localhost:${server.port}/oauth2/token` } };
    const moved = (await call(node())).failure;
    expect(moved?.message).toContain(`answered HTTP 302 to https://localhost:${server.port}/oauth2/token`);
    expect(moved?.hint).toContain('set auth.tokenUrl to the URL it redirects to');
    expect(JSON.stringify(moved)).not.toContain('pw@');
  });

  it("an access_token with CR/LF is the endpoint's fault, phase auth, and is not cached", async () => {
    answer = { status: 200, body: { access_token: 'abc\r\nX-Injected: 1', token_type: 'Bearer', expires_in: 600 } };
    for (let i = 0; i < 2; i++) {
      const result = await call(node());
      expect(result.failure).toMatchObject({ phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_BAD_RESPONSE' });
      expect(result.failure?.message).toContain('characters an Authorization header cannot carry');
    }
    expect([tokenCalls, api.calls]).toEqual([2, 0]);
  });

  it('a token endpoint that rejects our certificate in the handshake: client_cert_rejected naming the endpoint', async () => {
    const result = await call(node({}, strict));
    expect(result.failure?.category).toBe('client_cert_rejected');
    // The node's own request was not made: phase auth (before: tls, as if the backend had refused us).
    expect(result.failure?.phase).toBe('auth');
    expect(result.failure?.message).toContain(`https://localhost:${strict.port}/token`);
    expect(api.calls).toBe(0);
  });

  it('a token endpoint that does not answer: timeout in phase auth, as every other failure of the token request', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    const port = await listen(silent, 0);
    try {
      const result = await call({ ...node({ tokenUrl: `https://localhost:${port}/token` }), timeouts: { connectMs: 2_000, handshakeMs: 300, responseMs: 2_000 } });
      expect(result.failure).toMatchObject({ category: 'timeout', phase: 'auth' });
      expect(api.calls).toBe(0);
    } finally {
      silent.close();
    }
  });
});
