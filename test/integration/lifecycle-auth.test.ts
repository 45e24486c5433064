import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertificateSessionAuth, NodeDefinition } from '../../src/definitions/types.js';
import { exitCodeFor } from '../../src/failures/categories.js';
import { invoke } from '../../src/invoke/execute.js';
import { MemoryTokenCache } from '../../src/invoke/token-cache.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { RedisTokenCache } from '../../src/queue/redis-token-cache.js';
import { AgentPool } from '../../src/tls/agents.js';
import { runCli } from '../helpers/cli.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startMtlsServer, type MtlsServer } from '../helpers/servers.js';
import { assertNoSecrets } from '../helpers/secrets.js';

/**
 * A mock Symphony-style pod over mTLS: two authentication endpoints hand out tokens to callers
 * with a client certificate; the API accepts only the current tokens.
 */
function mockPod() {
  const state = { sessionAuths: 0, keyAuths: 0, generation: 1, alwaysUnauthorized: false, apiCalls: 0, lastCertHeader: undefined as string | undefined, lastHeaderNames: [] as string[] };
  const token = (kind: string): string => `${kind}-${state.generation}-secret`;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    if (req.method === 'POST' && req.url === '/sessionauth/v1/authenticate') {
      state.sessionAuths++;
      return json(200, { token: token('session'), name: 'sessionToken', cn: peer.subject?.CN });
    }
    const refusal = /^\/refuse\/(\d{3})$/.exec(req.url ?? '')?.[1];
    if (req.method === 'POST' && refusal) return json(Number(refusal), { message: 'Invalid user session token' });
    if (req.method === 'POST' && req.url === '/keyauth/v1/authenticate') {
      state.keyAuths++;
      return json(200, { token: token('km'), name: 'keyManagerToken' });
    }
    state.apiCalls++;
    state.lastCertHeader = req.headers['x-client-cert'] as string | undefined;
    state.lastHeaderNames = req.rawHeaders.filter((_, i) => i % 2 === 0);
    if (state.alwaysUnauthorized || req.headers.sessiontoken !== token('session') || req.headers.keymanagertoken !== token('km')) {
      return json(401, { message: 'Unauthorized' });
    }
    json(200, { messages: [] });
  };
  return { state, handler };
}

describe('certificate-session authentication and client-certificate header', () => {
  let pki: TestPki;
  let pod: MtlsServer;
  let podState: ReturnType<typeof mockPod>['state'];
  let profile: LoadedProfile;
  let redis: TestRedis;
  const pools: AgentPool[] = [];

  const node = (extra: Partial<NodeDefinition> = {}): NodeDefinition => ({
    id: 'symphony-messages',
    request: { method: 'GET', url: `https://localhost:${pod.port}/agent/v4/stream/abc/message` },
    tls: { profile: 'bot' },
    retry: { limit: 0 },
    auth: {
      type: 'certificate-session',
      tokens: [
        { url: `https://localhost:${pod.port}/sessionauth/v1/authenticate`, header: 'sessionToken' },
        { url: `https://localhost:${pod.port}/keyauth/v1/authenticate`, header: 'keyManagerToken' },
      ],
    },
    ...extra,
  });
  const deps = (tokens: MemoryTokenCache | RedisTokenCache) => {
    const agents = new AgentPool();
    pools.push(agents);
    return { profile: () => profile, agents, tokens };
  };

  beforeAll(async () => {
    pki = await createTestPki();
    const mock = mockPod();
    podState = mock.state;
    pod = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, handler: mock.handler });
    profile = await loadProfile(pki.profile('bot'));
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const p of pools) p.destroy();
    await pod?.close();
    await redis?.close();
    await pki?.cleanup();
  });

  it('authenticates once, reuses the tokens across calls, and re-authenticates exactly once on a 401', async () => {
    const d = deps(new MemoryTokenCache());
    const before = { s: podState.sessionAuths, k: podState.keyAuths };
    const first = await invoke(node(), {}, d);
    const second = await invoke(node(), {}, d);
    expect([first.ok, second.ok]).toEqual([true, true]);
    expect([podState.sessionAuths - before.s, podState.keyAuths - before.k]).toEqual([1, 1]);
    // Token headers go out spelt as the definition writes them (before: sessiontoken, keymanagertoken).
    expect(podState.lastHeaderNames).toEqual(expect.arrayContaining(['sessionToken', 'keyManagerToken']));

    podState.generation++; // the pod expires every session
    const third = await invoke(node(), {}, d);
    expect(third.ok).toBe(true);
    expect([podState.sessionAuths - before.s, podState.keyAuths - before.k]).toEqual([2, 2]);

    podState.alwaysUnauthorized = true;
    const apiBefore = podState.apiCalls;
    const denied = await invoke(node(), {}, d);
    podState.alwaysUnauthorized = false;
    expect(denied.failure?.category).toBe('http_status');
    expect(denied.response?.status).toBe(401);
    expect(denied.failure?.message).toContain('answered 401 again to a session obtained just before');
    expect(denied.failure?.hint).toContain('the backend refuses the session its login endpoint gave');
    expect(podState.apiCalls - apiBefore).toBe(2); // the call, one re-authenticated call, no loop
    expect([podState.sessionAuths - before.s, podState.keyAuths - before.k]).toEqual([3, 3]);
  });

  it('shares tokens between worker processes through Redis, sealed so Redis never holds them in clear', async () => {
    const a = new Redis(redis.url);
    const b = new Redis(redis.url);
    try {
      const before = podState.sessionAuths;
      const workerA = deps(new RedisTokenCache(a));
      const workerB = deps(new RedisTokenCache(b));
      expect((await invoke(node(), {}, workerA)).ok).toBe(true);
      expect((await invoke(node(), {}, workerB)).ok).toBe(true);
      expect(podState.sessionAuths - before).toBe(1);
      const keys = await a.keys('svcnode:tokens:*');
      expect(keys).toHaveLength(2);
      const values = await Promise.all(keys.map((k) => a.get(k)));
      assertNoSecrets([...keys, ...values].join('\n'), [`session-${podState.generation}-secret`, `km-${podState.generation}-secret`], 'redis');
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  it.each(['memory', 'redis'] as const)("nodes sharing a login endpoint each keep their own ttlSeconds (%s cache): a short one logs in again, a long one keeps its token", async (kind) => {
    const connection = kind === 'redis' ? new Redis(redis.url) : undefined;
    try {
      const d = deps(connection ? new RedisTokenCache(connection, `svcnode-ttl-${Date.now()}`) : new MemoryTokenCache());
      const withTtl = (id: string, ttlSeconds: number): NodeDefinition => {
        const n = node();
        return { ...n, id, auth: { ...(n.auth as CertificateSessionAuth), ttlSeconds } };
      };
      const long = withTtl('session-long', 3000);
      const short = withTtl('session-short', 1);
      const before = podState.sessionAuths;
      const logins = (): number => podState.sessionAuths - before;
      expect((await invoke(long, {}, d)).ok).toBe(true);
      expect(logins()).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect((await invoke(short, {}, d)).ok).toBe(true);
      expect(logins()).toBe(2); // the long node's token is older than the short node's ttlSeconds
      expect((await invoke(short, {}, d)).ok).toBe(true);
      expect((await invoke(long, {}, d)).ok).toBe(true);
      expect(logins()).toBe(2);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect((await invoke(short, {}, d)).ok).toBe(true);
      expect((await invoke(long, {}, d)).ok).toBe(true);
      expect(logins()).toBe(3); // the short node's logins never shortened the long node's reuse
    } finally {
      connection?.disconnect();
    }
  });

  it.each([401, 403])('a login endpoint answering %i to our certificate rejects it (client_cert_rejected, exit 3, as invalid_client), naming the certificate to register', async (status) => {
    const bad = node({
      auth: { type: 'certificate-session', tokens: [{ url: `https://localhost:${pod.port}/refuse/${status}`, header: 'sessionToken' }] },
    });
    const apiBefore = podState.apiCalls;
    const result = await invoke(bad, {}, deps(new MemoryTokenCache()));
    expect(result.failure).toMatchObject({ phase: 'auth', category: 'client_cert_rejected', code: 'SVCNODE_TOKEN_REJECTED' });
    expect(exitCodeFor(result.failure?.category)).toBe(3);
    expect(result.failure?.message).toContain(`/refuse/${status}`);
    expect(result.failure?.hint).toContain(pki.client.cert.fingerprint256);
    expect(podState.apiCalls - apiBefore).toBe(0);
  });

  it('a login endpoint that never asked for our certificate and answers 401 stays http_status: it did not judge the certificate', async () => {
    const plain = await startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: false, handler: mockPod().handler });
    try {
      const bad = node({ auth: { type: 'certificate-session', tokens: [{ url: `https://localhost:${plain.port}/refuse/401`, header: 'sessionToken' }] } });
      const result = await invoke(bad, {}, deps(new MemoryTokenCache()));
      expect(result.failure).toMatchObject({ phase: 'auth', category: 'http_status', code: 'HTTP_401' });
      expect(result.failure?.hint).not.toContain('does not accept this client certificate');
    } finally {
      await plain.close();
    }
  });

  it('the Result reports each login (URL, status, ms, cached; never a token), and the timings of the connection the login opened', async () => {
    const d = deps(new MemoryTokenCache());
    const first = await invoke(node(), {}, d);
    expect(first.ok).toBe(true);
    // Before: no auth key at all for a certificate-session node.
    expect(first.auth).toEqual({
      type: 'certificate-session',
      endpoints: [
        { url: `https://localhost:${pod.port}/sessionauth/v1/authenticate`, header: 'sessionToken', cached: false, status: 200, ms: expect.any(Number) as unknown },
        { url: `https://localhost:${pod.port}/keyauth/v1/authenticate`, header: 'keyManagerToken', cached: false, status: 200, ms: expect.any(Number) as unknown },
      ],
    });
    // The call rode the connection the first login opened: its handshake is that one's (before: 0 and 0).
    expect(first.tls?.connectionReused).toBe(true);
    expect(first.timings.connectMs).toBeGreaterThan(0);
    expect(first.timings.handshakeMs).toBeGreaterThan(0);

    const second = await invoke(node(), {}, d);
    expect(second.auth).toEqual({
      type: 'certificate-session',
      endpoints: [
        { url: `https://localhost:${pod.port}/sessionauth/v1/authenticate`, header: 'sessionToken', cached: true, status: null, ms: null },
        { url: `https://localhost:${pod.port}/keyauth/v1/authenticate`, header: 'keyManagerToken', cached: true, status: null, ms: null },
      ],
    });
    // Kept alive from the first invocation: no connect and no handshake in this one.
    expect(second.tls?.connectionReused).toBe(true);
    expect([second.timings.connectMs, second.timings.handshakeMs]).toEqual([0, 0]);
    assertNoSecrets(JSON.stringify([first, second]), [`session-${podState.generation}-secret`, `km-${podState.generation}-secret`]);
  });

  it('a failed login is reported up to the endpoint that failed, its URL without credential query values', async () => {
    const bad = node({
      auth: {
        type: 'certificate-session',
        tokens: [
          { url: `https://localhost:${pod.port}/sessionauth/v1/authenticate`, header: 'sessionToken' },
          // The pod answers 401 to a path it does not know (the query keeps it from matching /refuse/NNN).
          { url: `https://localhost:${pod.port}/login?api_key=k-123`, header: 'keyManagerToken' },
          { url: `https://localhost:${pod.port}/keyauth/v1/authenticate`, header: 'otherToken' },
        ],
      },
    });
    const result = await invoke(bad, {}, deps(new MemoryTokenCache()));
    expect(result.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_REJECTED' });
    expect(result.auth).toMatchObject({
      type: 'certificate-session',
      endpoints: [
        { header: 'sessionToken', cached: false, status: 200 },
        { url: `https://localhost:${pod.port}/login?api_key=[redacted]`, header: 'keyManagerToken', cached: false, status: 401 },
      ],
    });
    expect((result.auth as { endpoints: unknown[] }).endpoints).toHaveLength(2);
    // The refusal came on the connection the first login opened: its handshake, not 0.
    expect(result.tls?.connectionReused).toBe(true);
    expect(result.timings.handshakeMs).toBeGreaterThan(0);
    // Before: the failure message quoted the login URL with its api_key value.
    expect(JSON.stringify(result)).not.toContain('k-123');
  });

  it('dry-run prints a login line per endpoint and says whose handshake the timings are', async () => {
    const file = join(pki.dir, 'symphony-messages.json');
    writeFileSync(file, JSON.stringify(node()));
    const text = await runCli(['dry-run', file, '--profiles', pki.profilesDir]);
    expect(text.code, text.stdout + text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^login {7}POST https://localhost:${pod.port}/sessionauth/v1/authenticate → sessionToken: HTTP 200 in [\\d.]+ ms$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^ {12}POST https://localhost:${pod.port}/keyauth/v1/authenticate → keyManagerToken: HTTP 200 in [\\d.]+ ms$`, 'm'));
    expect(text.stdout).toMatch(/^timings {5}connect [\d.]+ ms, handshake [\d.]+ ms \(the connection the login opened, which the call reused\), total/m);
    expect(text.stdout).not.toMatch(/handshake 0 ms/);
    const json = await runCli(['dry-run', file, '--profiles', pki.profilesDir, '--json']);
    const result = JSON.parse(json.stdout) as { auth: { type: string; endpoints: unknown[] } };
    expect(result.auth.type).toBe('certificate-session');
    expect(result.auth.endpoints).toHaveLength(2);
    assertNoSecrets(text.stdout + json.stdout, [`session-${podState.generation}-secret`, `km-${podState.generation}-secret`]);
  });

  it('client-certificate header mode sends the URL-encoded PEM in the named header', async () => {
    const headerNode: NodeDefinition = { id: 'gateway', request: { method: 'GET', url: `https://localhost:${pod.port}/gateway`, headers: { 'Idempotency-Key': 'k-1', 'x-lower': 'v', constructor: 'c' } }, tls: { profile: 'bot', clientCertHeader: 'X-Client-Cert' }, response: { acceptStatus: [401] } };
    const result = await invoke(headerNode, {}, deps(new MemoryTokenCache()));
    expect(result.ok).toBe(true);
    // Names as written (a gateway may match them case-sensitively, as Boomi's certificate header does); svcnode's own as curl spells them.
    // A header whose name is an Object.prototype key is sent as itself (the lookups have no prototype).
    expect(podState.lastHeaderNames).toEqual(expect.arrayContaining(['X-Client-Cert', 'Idempotency-Key', 'x-lower', 'constructor', 'User-Agent', 'Accept-Encoding', 'Host']));
    expect(podState.lastHeaderNames.filter((n) => n.toLowerCase() === 'x-client-cert')).toHaveLength(1);
    expect(podState.lastCertHeader).toBeDefined();
    expect(decodeURIComponent(podState.lastCertHeader ?? '')).toBe(pki.client.certPem);
  });
});
