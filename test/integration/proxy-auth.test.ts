/**
 * Outbound proxies as banks run them, with real squid peers: one that offers only Negotiate and
 * NTLM (a Windows-domain proxy), one with Basic auth behind a CONNECT port policy whose DNS answers
 * NXDOMAIN, the same closing the connection after every answer, and a proxy whose 407 body never
 * ends. Each refusal must be one phase-"proxy" failure that says what the proxy said and what to
 * do, with no hang and no socket left open, and the proxy credentials must appear in no Result,
 * worker log or Redis value.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import type { InvokeDeps } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { ServiceNodeClient } from '../../src/queue/client.js';
import { AgentPool } from '../../src/tls/agents.js';
import { describeRefusal, offeredSchemes, quoted, type ProxyAnswer } from '../../src/tls/proxy-refusal.js';
import { profileDeps } from '../helpers/deps.js';
import { createQueueFixtures, dumpRedis, nodeDef, spawnWorker, startBackend, type QueueFixtures, type WorkerProcess } from '../helpers/fixtures.js';
import { freePort, waitFor } from '../helpers/net.js';
import type { Squid } from '../helpers/peers.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { connectOnce, openClientConnections, startNegotiateSquid, startNxDomainDns, startPolicySquid, startStallingAuthProxy } from '../helpers/proxy-peers.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import type { MtlsServer, TestServer } from '../helpers/servers.js';

const PROXY_USER = `svc-egress-${randomBytes(4).toString('hex')}`;
const PROXY_PASS = `Eg:ress p@ss/${randomBytes(6).toString('hex')}`;
const WRONG_PASS = `Wr0ng-${randomBytes(6).toString('hex')}`;
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
/** Every form the proxy credentials take on the way: none may show up anywhere. */
const SECRETS = [PROXY_USER, PROXY_PASS, encodeURIComponent(PROXY_PASS), WRONG_PASS, `${PROXY_USER}:${PROXY_PASS}`, basic(PROXY_USER, PROXY_PASS).slice(6), basic(PROXY_USER, WRONG_PASS).slice(6)];
const CONNECT_MS = 8_000;

let pki: TestPki;
let deps: InvokeDeps;
let backend: MtlsServer;
let negotiate: Squid;
let policy: Squid;
let closing: Squid;
let closedPort: number;
const peers: TestServer[] = [];

function withCredentials(proxyUrl: string, pass = PROXY_PASS): string {
  const u = new URL(proxyUrl);
  u.username = encodeURIComponent(PROXY_USER);
  u.password = encodeURIComponent(pass);
  return u.href;
}

function node(url: string, proxyUrl: string, id = 'egress'): NodeDefinition {
  return { id, request: { method: 'GET', url }, tls: { profile: 'bank' }, retry: { limit: 2, backoffMs: 10, maxBackoffMs: 20 }, timeouts: { connectMs: CONNECT_MS }, proxy: { url: proxyUrl } };
}

/**
 * One call through the proxy on its own agent pool: the Result, how long it took, and, when it
 * failed, a check that no socket of the call stays open in the pool or in the process.
 */
async function call(url: string, proxyUrl: string): Promise<{ r: Result; ms: number }> {
  const agents = new AgentPool();
  const proxyPort = Number(new URL(proxyUrl).port);
  const started = Date.now();
  const r = await invokeWithRetries(node(url, proxyUrl), {}, { ...deps, agents });
  const ms = Date.now() - started;
  if (r.failure) {
    expect(agents.socketCount()).toBe(0);
    await waitFor(() => openClientConnections(proxyPort) === 0, 2_000, 20, 'the connections to the proxy to close');
  }
  agents.destroy();
  assertNoSecrets(JSON.stringify(r), SECRETS, 'Result');
  return { r, ms };
}

function expectProxyRefusal(r: Result, code: string): void {
  expect(r.ok).toBe(false);
  expect(r.failure, JSON.stringify(r.failure)).toMatchObject({ phase: 'proxy', category: 'connect_failed', code });
  expect(r.response).toBeNull();
}

beforeAll(async () => {
  let dns: TestServer;
  [pki, dns, closedPort] = await Promise.all([createTestPki(), startNxDomainDns(), freePort()]);
  peers.push(dns);
  const profiles = new Map<string, LoadedProfile>([['bank', await loadProfile(pki.profile('bank'))]]);
  deps = profileDeps(profiles, new AgentPool());
  backend = await startBackend(pki);
  peers.push(backend);
  const policyOptions = { username: PROXY_USER, password: PROXY_PASS, connectPorts: [443, backend.port, closedPort], dnsServer: dns.host };
  [negotiate, policy, closing] = await Promise.all([startNegotiateSquid(), startPolicySquid(policyOptions), startPolicySquid({ ...policyOptions, closeEachAnswer: true })]);
  peers.push(negotiate, policy, closing);
}, 30_000);

afterAll(async () => {
  deps?.agents.destroy();
  await Promise.all(peers.map((p) => p.close()));
  await pki?.cleanup();
});

describe('a proxy that offers only Negotiate and NTLM (squid with Negotiate and NTLM helpers)', () => {
  it('the peer: squid answers 407 with Proxy-Authenticate Negotiate and NTLM, and no Basic', async () => {
    const answer = await connectOnce(negotiate.port, `localhost:${backend.port}`);
    expect(answer.status).toBe(407);
    expect(answer.headers['proxy-authenticate']).toEqual(['Negotiate', 'NTLM']);
  });

  it.each([
    ['no credentials in proxy.url', false, 'proxy.url has no credentials'],
    ['Basic credentials in proxy.url', true, 'the Basic credentials of proxy.url were not accepted'],
  ])('%s: phase proxy, the message names Negotiate and NTLM, the hint says Basic only and what to do; not retried', async (_name, withCreds, ours) => {
    const { r } = await call(`https://localhost:${backend.port}/`, withCreds ? withCredentials(negotiate.url) : negotiate.url);
    expectProxyRefusal(r, 'PROXY_407');
    expect(r.failure?.message).toContain('offers Negotiate, NTLM');
    expect(r.failure?.message).toContain(ours);
    expect(r.failure?.message).not.toMatch(/credentials are (missing or )?wrong|rejected the user and password/);
    expect(r.failure?.hint).toMatch(/Basic proxy authentication only/);
    expect(r.failure?.hint).toMatch(/IP address/);
    expect(r.failure?.hint).toMatch(/CNTLM/);
    expect(r.attempts).toBe(1);
  });
});

describe('a Basic-auth proxy: a 407 to no credentials reads differently from a 407 to wrong ones', () => {
  it('pass: the right credentials open the tunnel (the squid and its policy work)', async () => {
    const { r } = await call(`https://localhost:${backend.port}/`, withCredentials(policy.url));
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
  });

  it('no credentials in proxy.url: "requires authentication", the hint says to add them', async () => {
    const { r } = await call(`https://localhost:${backend.port}/`, policy.url);
    expectProxyRefusal(r, 'PROXY_407');
    expect(r.failure?.message).toContain('requires authentication and proxy.url has no credentials');
    expect(r.failure?.message).toContain('offers Basic');
    expect(r.failure?.hint).toContain('put the proxy user and password in proxy.url');
    expect(r.attempts).toBe(1);
  });

  it('wrong credentials: "rejected the user and password", the hint says to check them', async () => {
    const { r } = await call(`https://localhost:${backend.port}/`, withCredentials(policy.url, WRONG_PASS));
    expectProxyRefusal(r, 'PROXY_407');
    expect(r.failure?.message).toContain('rejected the user and password in proxy.url');
    expect(r.failure?.hint).toContain('check the proxy user and password');
    expect(r.attempts).toBe(1);
  });
});

describe('a 407 with an error page, closed or kept open by the proxy', () => {
  it('the peers: both squids send a 3 KB error page with the 407; one closes the connection after it, the other keeps it', async () => {
    const target = `localhost:${backend.port}`;
    const [kept, closed] = await Promise.all([connectOnce(policy.port, target, basic(PROXY_USER, WRONG_PASS)), connectOnce(closing.port, target, basic(PROXY_USER, WRONG_PASS))]);
    expect([kept.status, closed.status]).toEqual([407, 407]);
    expect(Number(kept.headers['content-length']?.[0])).toBeGreaterThan(1_000);
    expect([kept.headers.connection, kept.closedByProxy]).toEqual([['keep-alive'], false]);
    expect([closed.headers.connection, closed.closedByProxy]).toEqual([['close'], true]);
  });

  it.each([
    ['closes the connection after its 407', () => closing],
    ['keeps the connection after its 407', () => policy],
  ])('squid %s: one failure at once, no socket left open', async (_name, proxy) => {
    const { r, ms } = await call(`https://localhost:${backend.port}/`, withCredentials(proxy().url, WRONG_PASS));
    expectProxyRefusal(r, 'PROXY_407');
    expect(r.failure?.message).toContain('rejected the user and password');
    expect(r.attempts).toBe(1);
    expect(ms).toBeLessThan(CONNECT_MS / 2);
  });

  it('a 407 whose body never ends: the failure comes with the status line, and the connection is closed', async () => {
    const stalling = await startStallingAuthProxy();
    peers.push(stalling);
    const { r, ms } = await call(`https://localhost:${backend.port}/`, withCredentials(stalling.url, WRONG_PASS));
    expectProxyRefusal(r, 'PROXY_407');
    expect(r.failure?.message).toContain('rejected the user and password');
    expect(ms).toBeLessThan(CONNECT_MS / 2);
    await waitFor(() => stalling.open === 0, 2_000, 20, 'the stalled connection to close');
    expect(stalling.connections).toBe(1);
  });
});

describe('CONNECT refused by squid: policy, name resolution, connection', () => {
  it('a port the policy does not allow (http_access deny CONNECT !SSL_ports): 403, "by its access policy", not retried', async () => {
    const { r } = await call(`https://localhost:${backend.port + 1}/`, withCredentials(policy.url));
    expectProxyRefusal(r, 'PROXY_403');
    expect(r.failure?.message).toContain(`refused CONNECT to localhost:${backend.port + 1} by its access policy`);
    expect(r.failure?.message).toContain('ERR_ACCESS_DENIED');
    expect(r.failure?.hint).toContain('ask the proxy team to allow CONNECT to this host and port');
    expect(r.attempts).toBe(1);
  });

  it('a host name the proxy cannot resolve (its DNS says NXDOMAIN): squid 5 answers 500 ERR_CANNOT_FORWARD, read as "does not resolve at the proxy"', async () => {
    const { r } = await call('https://no-such-backend.bank.invalid/', withCredentials(policy.url));
    expectProxyRefusal(r, 'PROXY_500');
    expect(r.failure?.message).toContain('no-such-backend.bank.invalid:443');
    expect(r.failure?.message).toContain('does not resolve at the proxy');
    expect(r.failure?.message).toContain('ERR_CANNOT_FORWARD');
    expect(r.failure?.hint).toContain('check the host name in request.url');
    expect(r.attempts).toBe(1);
  });

  it('a backend port where nothing listens: 503 ERR_CONNECT_FAIL 111, "could not connect … connection refused", retried as transient', async () => {
    const { r } = await call(`https://127.0.0.1:${closedPort}/`, withCredentials(policy.url));
    expectProxyRefusal(r, 'PROXY_503');
    expect(r.failure?.message).toContain(`could not connect to 127.0.0.1:${closedPort}: connection refused`);
    expect(r.failure?.message).toContain('ERR_CONNECT_FAIL 111');
    expect(r.failure?.hint).toContain('check the host and port in request.url');
    expect(r.attempts).toBe(3);
  });
});

describe('proxy-provided text', () => {
  const answer = (o: Partial<ProxyAnswer>): ProxyAnswer => ({ status: 503, statusText: 'Service Unavailable', challenges: [], squidError: undefined, credentialsSent: true, target: 'api.bank.example:443', ...o });

  it('ERR_DNS_FAIL (squid 4 and 6 send it for CONNECT): "could not resolve the host name"', () => {
    const r = describeRefusal(answer({ squidError: 'ERR_DNS_FAIL 0' }), 'http://proxy:3128', []);
    expect(r.message).toContain('could not resolve the host name of api.bank.example:443');
    expect(r.hint).toContain('check the host name in request.url');
  });

  it('control characters are stripped, long text is cut, credentials a proxy echoes are masked', () => {
    expect(quoted('Blocked\r\nSet-Cookie: x\u001b[31m\u202e by policy')).toBe('Blocked Set-Cookie: x [31m by policy');
    expect(quoted('x'.repeat(500)).length).toBeLessThanOrEqual(80);
    const r = describeRefusal(answer({ status: 403, statusText: `Forbidden for ${PROXY_USER}:${PROXY_PASS}`, squidError: `ERR_ACCESS_DENIED ${PROXY_PASS}` }), 'http://proxy:3128', [`${PROXY_USER}:${PROXY_PASS}`, PROXY_PASS]);
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS], 'refusal');
    expect(r.message).toContain('Forbidden for ***');
  });

  it('schemes are read from every Proxy-Authenticate value; quoted realms with commas are no schemes', () => {
    expect(offeredSchemes(['Basic realm="a, b, NTLM x"', 'Negotiate, NTLM', 'Digest realm="d", nonce="n", qop="auth"', 'Bearer'])).toEqual(['Basic', 'Negotiate', 'NTLM', 'Digest', 'Bearer']);
    expect(describeRefusal(answer({ status: 407, challenges: ['Digest realm="x", nonce="y"'] }), 'http://proxy:3128', []).code).toBe('SVCNODE_PROXY_AUTH_SCHEME');
    expect(describeRefusal(answer({ status: 407, challenges: [] }), 'http://proxy:3128', []).message).toContain('no Proxy-Authenticate header');
  });
});

describe('the proxy credentials stay secret: Results, worker log and Redis (worker process)', () => {
  let redis: TestRedis;
  let f: QueueFixtures;
  let worker: WorkerProcess;
  let client: ServiceNodeClient;
  const results = new Map<string, Result>();

  beforeAll(async () => {
    const target = `https://localhost:${backend.port}/`;
    const cases: Array<[string, string, string]> = [
      ['ok', target, withCredentials(policy.url)],
      ['negotiate-none', target, negotiate.url],
      ['negotiate-basic', target, withCredentials(negotiate.url)],
      ['basic-none', target, policy.url],
      ['basic-wrong', target, withCredentials(policy.url, WRONG_PASS)],
      ['basic-wrong-close', target, withCredentials(closing.url, WRONG_PASS)],
      ['port-denied', `https://localhost:${backend.port + 1}/`, withCredentials(policy.url)],
      ['unresolved', 'https://no-such-backend.bank.invalid/', withCredentials(policy.url)],
      ['connect-fail', `https://127.0.0.1:${closedPort}/`, withCredentials(policy.url)],
    ];
    redis = await startRedis();
    f = await createQueueFixtures(
      pki,
      cases.map(([id, url, proxyUrl]) => nodeDef(id, url, 'bank', { proxy: { url: proxyUrl }, retry: { limit: 0 } })),
    );
    worker = await spawnWorker(f, redis.url);
    client = new ServiceNodeClient({ redisUrl: redis.url });
    // One job at a time: with a wrong and the right password of one user in flight together,
    // squid 5.7 answered 407 to the right one too (seen here), which is squid's doing, not ours.
    for (const [id] of cases) results.set(id, await client.result(await client.enqueue(id, {}), 30_000));
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await worker?.proc.stop();
    await redis?.close();
    await f?.cleanup();
  });

  it('the worker reports each case as the in-process calls do', () => {
    expect(results.get('ok')?.failure, JSON.stringify(results.get('ok')?.failure)).toBeNull();
    const codes = Object.fromEntries([...results].filter(([id]) => id !== 'ok').map(([id, r]) => [id, `${r.failure?.phase} ${r.failure?.code}`]));
    expect(codes).toEqual({
      'negotiate-none': 'proxy PROXY_407',
      'negotiate-basic': 'proxy PROXY_407',
      'basic-none': 'proxy PROXY_407',
      'basic-wrong': 'proxy PROXY_407',
      'basic-wrong-close': 'proxy PROXY_407',
      'port-denied': 'proxy PROXY_403',
      unresolved: 'proxy PROXY_500',
      'connect-fail': 'proxy PROXY_503',
    });
    expect(results.get('negotiate-basic')?.failure?.hint).toContain('Basic proxy authentication only');
  });

  it('no form of the proxy credentials in any Result, the worker log, or any Redis key or value', async () => {
    assertNoSecrets(JSON.stringify([...results.values()]), SECRETS, 'Results');
    assertNoSecrets(worker.proc.lines.map((l) => l.text).join('\n'), SECRETS, 'worker log');
    const dump = await dumpRedis(redis.url);
    expect(dump.keys.length).toBeGreaterThan(5);
    assertNoSecrets(dump.text, SECRETS, 'Redis');
  });
});
