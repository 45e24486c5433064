/**
 * invoke() against real endpoints for everything around the certificates: protocol mismatch,
 * connection failures, CONNECT proxies (auth, 407, stall), phase timeouts, HTTP status, session
 * resumption and keep-alive reuse, and the retry policy as the dry-run --retry path runs it.
 */
import { spawn } from 'node:child_process';
import type http from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke, type InvokeDeps } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool } from '../../src/tls/agents.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import {
  startConnectProxy,
  startMtlsServer,
  startPlainHttpServer,
  startSilentServer,
  unusedPort,
  type MtlsServer,
  type RequestHandler,
  type TestServer,
} from '../helpers/servers.js';

const TIMEOUTS = { connectMs: 2_000, handshakeMs: 3_000, responseMs: 3_000 };
/** The small phase timeout of the timeout tests; each must end within it + 1 s. */
const SHORT = 700;
const PROXY_USER = 'svc user';
const PROXY_PASS = 'pr0xy:p@ss/word';

let pki: TestPki;
let profile: LoadedProfile;
const servers: TestServer[] = [];
let agents: AgentPool;
let deps: InvokeDeps;

function node(url: string, extra: Omit<Partial<NodeDefinition>, 'id'> = {}, id = 'network'): NodeDefinition {
  return { id, request: { method: 'GET', url }, tls: { profile: 'bank' }, timeouts: TIMEOUTS, retry: { limit: 0 }, ...extra };
}

async function track<T extends TestServer>(p: Promise<T>): Promise<T> {
  const s = await p;
  servers.push(s);
  return s;
}

function backend(o: { handler?: RequestHandler; closeAfterEachResponse?: boolean; maxVersion?: 'TLSv1.2' } = {}): Promise<MtlsServer> {
  return track(startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem, ...o }));
}

function expectFailure(r: Result, category: string, codes?: string[]): void {
  expect(r.ok).toBe(false);
  expect(r.failure?.category, JSON.stringify(r.failure)).toBe(category);
  if (codes) expect(codes, JSON.stringify(r.failure)).toContain(r.failure?.code);
}

function expectOk(r: Result): void {
  expect(r.failure, JSON.stringify(r.failure)).toBeNull();
  expect(r.ok).toBe(true);
  expect(r.response?.status).toBe(200);
}

const proxyUrlWithAuth = (proxy: TestServer): string => {
  const u = new URL(proxy.url);
  u.username = encodeURIComponent(PROXY_USER);
  u.password = encodeURIComponent(PROXY_PASS);
  return u.href;
};

beforeAll(async () => {
  pki = await createTestPki();
  profile = await loadProfile(pki.profile('bank'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await pki?.cleanup();
});

beforeEach(() => {
  agents = new AgentPool();
  deps = { agents, profile: () => profile };
});

afterEach(() => agents.destroy());

describe('protocol_mismatch', () => {
  it('tls.minVersion TLSv1.3 against a TLS 1.2-only server', async () => {
    const server = await backend({ maxVersion: 'TLSv1.2' });
    const r = await invoke(node(`https://localhost:${server.port}/`, { tls: { profile: 'bank', minVersion: 'TLSv1.3' } }), {}, deps);
    expectFailure(r, 'protocol_mismatch', ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_UNSUPPORTED_PROTOCOL']);
    expect(r.failure?.phase).toBe('tls');
    expectOk(await invoke(node(`https://localhost:${server.port}/`), {}, deps)); // TLS 1.2 is fine without the floor
  });

  it('a plain HTTP port', async () => {
    const plain = await track(startPlainHttpServer());
    const r = await invoke(node(`https://localhost:${plain.port}/`), {}, deps);
    expectFailure(r, 'protocol_mismatch', ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG']);
    expect(plain.requests).toBe(0);
  });
});

describe('connect_failed', () => {
  it('nothing listens on the port', async () => {
    const r = await invoke(node(`https://localhost:${await unusedPort()}/`), {}, deps);
    expectFailure(r, 'connect_failed', ['ECONNREFUSED']);
    expect(r.failure?.phase).toBe('connect');
    expect(r.tls).toBeNull();
  });

  it('the proxy answers 407 (no or wrong credentials)', async () => {
    const server = await backend();
    const proxy = await track(startConnectProxy({ auth: { username: PROXY_USER, password: PROXY_PASS } }));
    const r = await invoke(node(`https://localhost:${server.port}/`, { proxy: { url: proxy.url } }), {}, deps);
    expectFailure(r, 'connect_failed', ['PROXY_407']);
    const wrong = new URL(proxy.url);
    wrong.username = 'svc';
    wrong.password = 'not-it';
    expectFailure(await invoke(node(`https://localhost:${server.port}/`, { proxy: { url: wrong.href } }), {}, deps), 'connect_failed', ['PROXY_407']);
    expect(proxy.rejected).toBe(2);
    expect(proxy.tunnels).toBe(0);
    expect(server.tcpConnections).toBe(0);
  });
});

describe('CONNECT proxy', () => {
  it('pass: mTLS through an authenticating proxy; the proxy counted the tunnel; credentials stay out of the Result', async () => {
    const server = await backend();
    const proxy = await track(startConnectProxy({ auth: { username: PROXY_USER, password: PROXY_PASS } }));
    const r = await invoke(node(`https://localhost:${server.port}/accounts`, { proxy: { url: proxyUrlWithAuth(proxy) } }), {}, deps);
    expectOk(r);
    expect(proxy.tunnels).toBe(1);
    expect(proxy.targets).toEqual([`localhost:${server.port}`]);
    expect(server.lastClientSubject?.CN).toBe('svcnode-bot');
    expect(r.tls?.protocol).toBe('TLSv1.3');
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS, encodeURIComponent(PROXY_PASS), proxy.lastAuthorization ?? 'unset'], 'Result');
  });
});

describe('http_status', () => {
  it('404 is not accepted by default; acceptStatus can accept it', async () => {
    const server = await backend({
      handler: (req, res) => {
        req.resume();
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no such account"}');
      },
    });
    const r = await invoke(node(`https://localhost:${server.port}/accounts/1`), {}, deps);
    expectFailure(r, 'http_status', ['HTTP_404']);
    expect(r.failure?.phase).toBe('response');
    expect(r.response?.status).toBe(404);
    expect(r.response?.body).toEqual({ error: 'no such account' });
    expect(r.tls?.protocol).toBeTruthy();

    expect((await invoke(node(`https://localhost:${server.port}/x`, { response: { acceptStatus: ['2xx', 404] } }), {}, deps)).ok).toBe(true);
  });
});

describe('timeout: each ends within its configured timeout + 1 s', () => {
  const short = { connectMs: SHORT, handshakeMs: SHORT, responseMs: SHORT };

  function expectTimely(r: Result): void {
    expect(['timeout', 'connect_failed']).toContain(r.failure?.category);
    expect(r.timings.totalMs).toBeGreaterThanOrEqual(SHORT - 50);
    expect(r.timings.totalMs).toBeLessThanOrEqual(SHORT + 1_000);
  }

  it('a proxy that never answers CONNECT', async () => {
    const server = await backend();
    const proxy = await track(startConnectProxy({ stall: true }));
    const r = await invoke(node(`https://localhost:${server.port}/`, { proxy: { url: proxy.url }, timeouts: short }), {}, deps);
    expectTimely(r);
    expect(r.failure?.category).toBe('timeout');
    expect(r.failure?.phase).toBe('proxy');
    expect(r.failure?.code).toBe('SVCNODE_PROXY_TIMEOUT');
    expect(proxy.connects).toBe(1);
    // Before: "check that proxy.url points at a working CONNECT proxy", also for a working proxy still trying the backend.
    expect(r.failure?.message).toBe(`localhost:${server.port}: the proxy ${proxy.url} took the connection but did not answer CONNECT within ${SHORT} ms`);
    expect(r.failure?.hint).toMatch(new RegExp(`^a working proxy answers this late while it still resolves or connects to localhost:${server.port} .*check the proxy's log`));
  });

  it.each([
    ['127.0.0.1', 'AF_INET', '127.0.0.1'],
    ['::1', 'AF_INET6', '[::1]'],
  ])('a proxy at %s whose port does not take the connection (its accept queue full, as a SYN black hole)', async (address, family, host) => {
    // A listener that never accepts, its queue filled first: a further connect() waits for good.
    const holder = spawn('/usr/bin/python3', ['-c', `import socket,sys,time\ns=socket.socket(socket.${family})\ns.bind(("${address}",0))\ns.listen(0)\np=s.getsockname()[1]\nc=socket.create_connection(("${address}",p))\nprint(p,flush=True)\ntime.sleep(60)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      const r = await invoke(node('https://backend.example:443/', { proxy: { url: `http://${host}:${port}` }, timeouts: short }), {}, deps);
      expectTimely(r);
      // An address in brackets needs no lookup: not reported as one.
      expect(r.failure).toMatchObject({ category: 'timeout', phase: 'proxy', code: 'SVCNODE_PROXY_TIMEOUT', message: `backend.example: the proxy http://${host}:${port} did not take the connection within ${SHORT} ms` });
      expect(r.failure?.hint).toMatch(/^check that the host and port in proxy\.url are reachable from this machine/);
    } finally {
      holder.kill();
    }
  });

  it('a server that accepts TCP and never completes the TLS handshake', async () => {
    const silent = await track(startSilentServer());
    const r = await invoke(node(`https://localhost:${silent.port}/`, { timeouts: short }), {}, deps);
    expectTimely(r);
    expect(r.failure?.category).toBe('timeout');
    expect(r.failure?.phase).toBe('tls');
  });

  it('a server that completes TLS but never answers the request', async () => {
    const server = await backend({ handler: () => new Promise<void>(() => undefined) });
    const r = await invoke(node(`https://localhost:${server.port}/`, { timeouts: short }), {}, deps);
    expectTimely(r);
    expect(r.failure?.category).toBe('timeout');
    expect(r.failure?.phase).toBe('request');
    expect(r.tls?.protocol).toBe('TLSv1.3');
    expect(server.requests).toBe(1);
  });

  it('timeouts.totalMs caps a response body that trickles forever', async () => {
    let timer: NodeJS.Timeout | undefined;
    const server = await backend({
      handler: (req, res: http.ServerResponse) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        timer = setInterval(() => res.write('.'), 50);
        res.once('close', () => clearInterval(timer));
      },
    });
    const r = await invoke(node(`https://localhost:${server.port}/`, { timeouts: { ...TIMEOUTS, totalMs: SHORT } }), {}, deps);
    clearInterval(timer);
    expectTimely(r);
    expect(r.failure?.category).toBe('timeout');
  });
});

describe('connection reuse', () => {
  it('TLS session resumption on a server that closes after each response', async () => {
    const server = await backend({ closeAfterEachResponse: true });
    const url = `https://localhost:${server.port}/`;
    const first = await invoke(node(url), {}, deps);
    expectOk(first);
    expect(first.tls?.sessionReused).toBe(false);
    expect(first.tls?.connectionReused).toBe(false);
    const later = [await invoke(node(url), {}, deps), await invoke(node(url), {}, deps)];
    for (const r of later) {
      expectOk(r);
      expect(r.tls?.sessionReused).toBe(true);
      expect(r.tls?.connectionReused).toBe(false);
      // Node shows no peer certificate on a resumed session; the report still names the server.
      expect(r.tls?.serverChain.map((c) => c.fingerprint256)).toEqual(first.tls?.serverChain.map((c) => c.fingerprint256));
      expect(r.tls?.serverChain[0]?.subject).toContain('CN=localhost');
    }
    expect(server.connections).toBe(3);
    expect(server.resumedSessions).toBe(2);
    // The client certificate is still the one of the profile on resumed sessions.
    expect(server.clientFingerprints).toEqual([1, 2, 3].map(() => pki.client.cert.fingerprint256));
  });

  it('keep-alive reuse: the second call runs on the same connection, no handshake', async () => {
    const server = await backend();
    const url = `https://localhost:${server.port}/`;
    const first = await invoke(node(url), {}, deps);
    const second = await invoke(node(url), {}, deps);
    expectOk(first);
    expectOk(second);
    expect(first.tls?.connectionReused).toBe(false);
    expect(second.tls?.connectionReused).toBe(true);
    expect(second.timings.handshakeMs).toBe(0);
    expect(server.tcpConnections).toBe(1);
    expect(server.requests).toBe(2);
  });

  it('keep-alive reuse through the proxy: one tunnel for two calls', async () => {
    const server = await backend();
    const proxy = await track(startConnectProxy());
    const n = node(`https://localhost:${server.port}/`, { proxy: { url: proxy.url } });
    expectOk(await invoke(n, {}, deps));
    const second = await invoke(n, {}, deps);
    expectOk(second);
    expect(second.tls?.connectionReused).toBe(true);
    expect(proxy.tunnels).toBe(1);
  });
});

describe('retry policy on real servers (invokeWithRetries, the dry-run --retry path)', () => {
  const retry = { limit: 2, backoffMs: 0, maxBackoffMs: 0 };

  async function failing503(): Promise<MtlsServer> {
    return backend({
      handler: (req, res) => {
        req.resume();
        res.writeHead(503).end();
      },
    });
  }

  it('GET is retried on 5xx until the limit', async () => {
    const server = await failing503();
    const r = await invokeWithRetries(node(`https://localhost:${server.port}/`, { retry }), {}, deps);
    expectFailure(r, 'http_status', ['HTTP_503']);
    expect(r.attempts).toBe(3);
    expect(server.requests).toBe(3);
  });

  it('POST is not retried once the request may have reached the backend', async () => {
    const server = await failing503();
    const post = node(`https://localhost:${server.port}/`, { retry, request: { method: 'POST', url: `https://localhost:${server.port}/`, body: { a: 1 } } });
    const r = await invokeWithRetries(post, {}, deps);
    expectFailure(r, 'http_status', ['HTTP_503']);
    expect(r.attempts).toBe(1);
    expect(server.requests).toBe(1);
  });

  it('a connect failure is retried even for POST', async () => {
    const port = await unusedPort();
    const url = `https://localhost:${port}/`;
    const r = await invokeWithRetries(node(url, { retry, request: { method: 'POST', url, body: 'x' } }), {}, deps);
    expectFailure(r, 'connect_failed', ['ECONNREFUSED']);
    expect(r.attempts).toBe(3);
  });

  it('GET is retried on a response timeout; a TLS failure is never retried', async () => {
    const server = await backend({ handler: () => new Promise<void>(() => undefined) });
    const r = await invokeWithRetries(node(`https://localhost:${server.port}/`, { retry: { ...retry, limit: 1 }, timeouts: { ...TIMEOUTS, responseMs: 300 } }), {}, deps);
    expectFailure(r, 'timeout');
    expect(r.attempts).toBe(2);
    expect(server.requests).toBe(2);

    const tls = await invokeWithRetries(node(`https://localhost:${server.port}/`, { retry, tls: { profile: 'bank', serverSubjectPatterns: ['CN=nobody'] } }), {}, deps);
    expectFailure(tls, 'server_identity_mismatch');
    expect(tls.attempts).toBe(1);
  });
});
