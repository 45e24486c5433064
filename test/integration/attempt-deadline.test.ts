/**
 * timeouts.totalMs bounds a whole attempt of a node that authenticates first: the token or login
 * request and the call together, not each of them (README, "Timeouts and the platform's limit").
 * One real mTLS server answers the token endpoint, the login endpoint and the API, each after a
 * delay the test sets.
 */
import type http from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import { invoke } from '../../src/invoke/execute.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';

describe('the budget of an attempt with authentication', () => {
  let pki: TestPki;
  let server: MtlsServer;
  let profile: LoadedProfile;
  const agents = new AgentPool();
  let tokens: MemoryTokenCache;
  const delay = { token: 0, api: 0 };
  let apiCalls = 0;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    const answer = (ms: number, body: unknown): void => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      }, ms);
    };
    if (req.url === '/token') answer(delay.token, { access_token: 'at-1', token_type: 'Bearer', expires_in: 300 });
    else if (req.url === '/login') answer(delay.token, { token: 'session-1' });
    else {
      apiCalls++;
      answer(delay.api, { ok: true });
    }
  };

  const nodes = (totalMs: number): Record<'oauth2' | 'session', NodeDefinition> => ({
    oauth2: {
      id: 'oauth2',
      request: { method: 'GET', url: `https://localhost:${server.port}/api` },
      tls: { profile: 'bank' },
      retry: { limit: 0 },
      timeouts: { totalMs },
      auth: { type: 'oauth2-client-credentials', tokenUrl: `https://localhost:${server.port}/token`, clientId: 'bot', clientAuth: 'tls_client_auth' },
    },
    session: {
      id: 'session',
      request: { method: 'GET', url: `https://localhost:${server.port}/api` },
      tls: { profile: 'bank' },
      retry: { limit: 0 },
      timeouts: { totalMs },
      auth: { type: 'certificate-session', tokens: [{ url: `https://localhost:${server.port}/login`, header: 'x-session' }] },
    },
  });

  beforeAll(async () => {
    pki = await createTestPki();
    server = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, handler });
    profile = await loadProfile(pki.profile('bank'));
  });

  beforeEach(() => {
    tokens = new MemoryTokenCache();
    apiCalls = 0;
  });

  afterAll(async () => {
    agents.destroy();
    await server?.close();
    await pki?.cleanup();
  });

  for (const kind of ['oauth2', 'session'] as const) {
    it(`${kind}: a slow token step and a slow call that each fit totalMs but not together end as a timeout at totalMs`, async () => {
      Object.assign(delay, { token: 700, api: 700 });
      const result = await invoke(nodes(1_000)[kind], {}, { agents, tokens, profile: () => profile });
      expect(apiCalls).toBe(1);
      expect(result.ok).toBe(false);
      expect(result.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_DEADLINE', phase: 'request' });
      expect(result.failure?.message).toMatch(/within timeouts\.totalMs \(1000 ms\) for the whole attempt, authentication included/);
      expect(result.timings.totalMs).toBeGreaterThanOrEqual(990);
      expect(result.timings.totalMs).toBeLessThan(1_300);
    });

    it(`${kind}: token step and call within totalMs together pass`, async () => {
      Object.assign(delay, { token: 200, api: 200 });
      const result = await invoke(nodes(1_000)[kind], {}, { agents, tokens, profile: () => profile });
      expect(result.failure).toBeNull();
      expect(result.response?.status).toBe(200);
    });
  }

  it('a cancellation during such an attempt is still a cancellation, not a deadline', async () => {
    Object.assign(delay, { token: 100, api: 700 });
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(), 400).unref();
    const result = await invoke(nodes(5_000).oauth2, {}, { agents, tokens, profile: () => profile }, { signal: cancel.signal });
    expect(result.failure).toMatchObject({ code: 'SVCNODE_ABORTED' });
  });
});
