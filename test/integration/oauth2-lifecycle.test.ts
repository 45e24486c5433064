/**
 * The life of a certificate-bound access token: shared and sealed in Redis, fetched once under
 * concurrency, refreshed once when it runs out, re-fetched once when the resource server calls
 * it invalid, refused when bound to another certificate, retried when the endpoint is down.
 */
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import { oauth2Token } from '../../src/invoke/oauth2-token.js';
import { retryDelay } from '../../src/invoke/retry.js';
import { MemoryTokenCache, type TokenCache } from '../../src/invoke/token-cache.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { RedisTokenCache } from '../../src/queue/redis-token-cache.js';
import { AgentPool } from '../../src/tls/agents.js';
import { dumpRedis } from '../helpers/fixtures.js';
import { unusedPort } from '../helpers/servers.js';
import { createOAuth2Fixture, oauth2Deps, type OAuth2Fixture } from '../helpers/oauth2-fixture.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';

describe('OAuth 2.0 access tokens: cache, refresh, re-authentication, binding', () => {
  let f: OAuth2Fixture;
  let redis: TestRedis;
  let client: Redis;
  const agents = new AgentPool();
  let tokens: TokenCache;
  const deps = oauth2Deps(() => f, agents, () => tokens);

  beforeAll(async () => {
    [f, redis] = await Promise.all([createOAuth2Fixture(), startRedis()]);
    client = new Redis(redis.url);
  });

  beforeEach(async () => {
    await client.flushall();
    tokens = new MemoryTokenCache();
    f.as.tokenRequests.length = 0;
    f.as.resource.requests = 0;
    f.as.resource.refusals.length = 0;
    f.as.resource.rejectAll = false;
    f.as.forwardCertificate = undefined;
    f.as.unavailable = 0;
    f.as.accessTokenTtl = 300;
  });

  afterAll(async () => {
    client?.disconnect();
    agents.destroy();
    await Promise.all([f?.cleanup(), redis?.close()]);
  });

  it('64 concurrent calls make exactly one token request; Redis holds the token sealed only', async () => {
    tokens = new RedisTokenCache(client);
    const node = f.node({ scope: 'accounts payments' });
    const results = await Promise.all(Array.from({ length: 64 }, () => invoke(node, {}, deps)));
    expect(results.filter((r) => r.ok)).toHaveLength(64);
    expect(f.as.tokenRequests).toHaveLength(1);
    expect(f.as.resource.requests).toBe(64);
    const dump = await dumpRedis(redis.url);
    expect(dump.keys.filter((k) => k.startsWith('svcnode:tokens:'))).toHaveLength(1);
    assertNoSecrets(dump.text, f.as.secretsSeen, 'Redis dump');
    assertNoSecrets(JSON.stringify(results), f.as.secretsSeen, 'Results');
    // A second process (a fresh cache object on the same Redis) reuses the sealed token.
    tokens = new RedisTokenCache(client);
    const again = await invoke(node, {}, deps);
    expect(again.auth).toMatchObject({ cached: true, binding: 'checked', token: '[redacted]' });
    expect(f.as.tokenRequests).toHaveLength(1);
  });

  it('a token is refreshed exactly once when its lifetime (less the skew) runs out', async () => {
    f.as.accessTokenTtl = 2;
    const node = f.node();
    expect((await invoke(node, {}, deps)).auth).toMatchObject({ cached: false, expiresIn: 2 });
    expect((await invoke(node, {}, deps)).auth).toMatchObject({ cached: true });
    expect(f.as.tokenRequests).toHaveLength(1);
    await sleep(1_600);
    const refreshed = await Promise.all([invoke(node, {}, deps), invoke(node, {}, deps)]);
    expect(refreshed.map((r) => r.ok)).toEqual([true, true]);
    expect((await invoke(node, {}, deps)).ok).toBe(true);
    expect(f.as.tokenRequests).toHaveLength(2);
    expect(f.as.resource.refusals).toEqual([]);
  });

  it('401 with error="invalid_token": exactly one new token request, then the verdict stands', async () => {
    f.as.resource.rejectAll = true;
    const result = await invoke(f.node(), {}, deps);
    expect(result.failure).toMatchObject({ category: 'http_status', code: 'HTTP_401' });
    // Before: "answered HTTP 401, which the node does not accept", hint "add the status to response.acceptStatus".
    expect(result.failure?.message).toMatch(/answered 401 again to a token obtained just before .*: invalid_token/);
    expect(result.failure?.hint).toContain('does not accept tokens this authorization server issues for this client');
    expect(f.as.tokenRequests).toHaveLength(2);
    expect(f.as.resource.requests).toBe(2);
    f.as.resource.rejectAll = false;
    expect((await invoke(f.node(), {}, deps)).ok).toBe(true);
    expect(f.as.tokenRequests).toHaveLength(2);
  });

  it('a token bound to another certificate is refused by our check and never sent', async () => {
    // A proxy in front of the authorization server that forwards the wrong certificate.
    f.as.forwardCertificate = f.other.certPem;
    const result = await invoke(f.node({ clientId: 'bot-other' }), {}, deps);
    expect(result.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_BINDING_MISMATCH' });
    expect(result.auth).toMatchObject({ status: 200, binding: 'mismatch', token: '[redacted]' });
    expect(f.as.resource.requests).toBe(0);
    // It was not cached either: the next call asks again.
    await invoke(f.node({ clientId: 'bot-other' }), {}, deps);
    expect(f.as.tokenRequests).toHaveLength(2);
  });

  it('the resource server refuses a token bound to another certificate', async () => {
    const got = await oauth2Token({ type: 'oauth2-client-credentials', tokenUrl: f.as.mtlsTokenUrl, clientId: 'bot-other', clientAuth: 'tls_client_auth' }, f.node(), f.profiles.get('other') as LoadedProfile, agents, tokens, undefined);
    if (!('token' in got)) throw new Error(`no token: ${got.failure.code}`);
    const status = await new Promise<{ status: number; challenge: string }>((resolve, reject) => {
      const req = https.request(`${f.as.resource.url}/accounts`, { headers: { authorization: `Bearer ${got.token}` }, cert: f.pki.client.certPem, key: f.pki.client.keyPem, ca: f.pki.root.certPem }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, challenge: String(res.headers['www-authenticate']) });
      });
      req.on('error', reject);
      req.end();
    });
    expect(status.status).toBe(401);
    expect(status.challenge).toContain('error="invalid_token"');
    expect(f.as.resource.refusals).toEqual(['certificate binding mismatch']);
  });

  it('a token endpoint that is down is a transient failure and retried', async () => {
    const down = f.node({ tokenUrl: `https://localhost:${await unusedPort()}/token` }, 'bank', { request: { method: 'POST', url: `${f.as.resource.url}/payments` } });
    const refused = await invoke(down, {}, deps);
    expect(refused.failure).toMatchObject({ phase: 'auth', category: 'connect_failed' });
    // Before: "check that the backend is up and reachable", when the backend was never called.
    expect(refused.failure?.hint).toBe('check that the authorization server is up and reachable from this machine (host, port, firewall, proxy); check auth.tokenUrl (scheme, host, port)');
    expect(retryDelay(refused, { ...down, retry: { limit: 2 } }, 1)).toBeGreaterThan(0);

    f.as.unavailable = 1;
    const node = f.node({}, 'bank', { retry: { limit: 1, backoffMs: 10 } });
    const result = await invokeWithRetries(node, {}, deps);
    expect(result.ok).toBe(true);
    expect(result.attempts).toBe(2);
    expect(f.as.tokenRequests.map((r) => r.status)).toEqual([503, 200]);
  });
});
