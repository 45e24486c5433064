/**
 * invoke() against independent real peers started with their own config files: nginx as an mTLS
 * backend (ssl_verify_client on, gzip on, a redirect loop), squid as a CONNECT proxy with basic
 * auth, and an https:// CONNECT proxy (TLS to the proxy). Checks that a redirect loop is one
 * permanent failure (no retry amplification), that proxy-hop failures are phase "proxy" and
 * never a certificate category of the backend, and that no byte of a CONNECT to an https://
 * proxy travels in plaintext.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../src/definitions/profiles.js';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import { invoke, type InvokeDeps } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import type { LoadedProfile } from '../../src/pki/types.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { AgentPool } from '../../src/tls/agents.js';
import { profileDeps } from '../helpers/deps.js';
import { startByteCounter, startNginx, startSquid, startTlsConnectProxy, type Nginx, type Squid, type TlsProxy } from '../helpers/peers.js';
import { waitFor } from '../helpers/net.js';
import { createTestPki, type TestPki } from '../helpers/pki.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import { startMtlsServer, type MtlsServer, type TestServer } from '../helpers/servers.js';

const PROXY_USER = 'svc-bot';
const PROXY_PASS = 'Sq:uid p@ss/1';
const RETRY = { limit: 2, backoffMs: 10, maxBackoffMs: 20 };
const TIMEOUTS = { connectMs: 5_000, handshakeMs: 5_000, responseMs: 5_000 };

let pki: TestPki;
let agents: AgentPool;
let deps: InvokeDeps;
let nginx: Nginx;
let squid: Squid;
let tlsProxy: TlsProxy;
/** The same kind of proxy with a certificate that expired yesterday (from the CA in proxyCaFile). */
let lapsedProxy: TlsProxy;
let backend: MtlsServer;
let proxyCaFile: string;
const peers: TestServer[] = [];

function node(url: string, extra: Omit<Partial<NodeDefinition>, 'id'> = {}, profile = 'bank'): NodeDefinition {
  return { id: 'peers', request: { method: 'GET', url }, tls: { profile }, retry: RETRY, timeouts: TIMEOUTS, ...extra };
}

function withCredentials(url: string, user = PROXY_USER, pass = PROXY_PASS): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(pass);
  return u.href;
}

function expectProxyFailure(r: Result): void {
  expect(r.ok).toBe(false);
  expect(r.failure?.phase, JSON.stringify(r.failure)).toBe('proxy');
  expect(r.failure?.category).not.toMatch(/^(server|client)_/);
}

beforeAll(async () => {
  pki = await createTestPki();
  const profiles = new Map<string, LoadedProfile>();
  profiles.set('bank', await loadProfile(pki.profile('bank')));
  profiles.set('none', await loadProfile(pki.profile('none', { trust: { ca: [pki.files.root] } })));
  agents = new AgentPool();
  deps = profileDeps(profiles, agents);

  // The https:// proxy has a certificate from its own CA, which only proxy.tls.ca trusts.
  const proxyRoot = await mintCa({ subject: 'CN=Proxy Root,O=proxy ops' });
  const proxyLeaf = await mintLeaf({ subject: 'CN=localhost,O=proxy ops', issuer: proxyRoot, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  proxyCaFile = pki.write('proxy-root.pem', proxyRoot.certPem);
  const lapsedLeaf = await mintLeaf({ subject: 'CN=localhost,O=proxy ops', issuer: proxyRoot, usage: 'server', dnsNames: ['localhost'], notBefore: new Date(Date.now() - 30 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
  lapsedProxy = await startTlsConnectProxy({ key: lapsedLeaf.keyPem, cert: lapsedLeaf.certPem });
  peers.push(lapsedProxy);

  [nginx, squid, tlsProxy, backend] = await Promise.all([
    startNginx({ certFile: pki.files.serverChain, keyFile: pki.files.serverKey, clientCaFile: pki.files.root }),
    startSquid({ username: PROXY_USER, password: PROXY_PASS }),
    startTlsConnectProxy({ key: proxyLeaf.keyPem, cert: proxyLeaf.certPem, auth: { username: PROXY_USER, password: PROXY_PASS } }),
    startMtlsServer({ key: pki.server.keyPem, cert: pki.server.certPem + pki.intermediate.certPem, ca: pki.root.certPem }),
  ]);
  peers.push(nginx, squid, tlsProxy, backend);
}, 30_000);

afterAll(async () => {
  agents?.destroy();
  await Promise.all(peers.map((p) => p.close()));
  await pki?.cleanup();
});

describe('nginx routing by Host (a default server beside the mTLS one)', () => {
  let routing: Nginx;
  beforeAll(async () => {
    routing = await startNginx({ certFile: pki.files.serverChain, keyFile: pki.files.serverKey, clientCaFile: pki.files.root, hostRouting: true });
  }, 30_000);
  afterAll(() => routing?.close());

  it('an address URL with tls.servername: the 404 (or 421) hint says Host named the address while SNI named the server, and how to put the name in the URL', async () => {
    const r = await invoke(node(`https://127.0.0.1:${routing.port}/json`, { tls: { profile: 'bank', servername: 'localhost' }, retry: { limit: 0 } }), {}, deps);
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('http_status');
    expect([404, 421]).toContain(r.response?.status);
    expect(r.failure?.hint).toContain(`the handshake named "localhost" (tls.servername) but the request's Host header is "127.0.0.1:${routing.port}"`);
    expect(r.failure?.hint).toContain(`write the name in request.url (https://localhost:${routing.port}/…)`);
    // As the hint says: the name in the URL reaches the virtual host.
    const named = await invoke(node(`https://localhost:${routing.port}/json`), {}, deps);
    expect(named.failure, JSON.stringify(named.failure)).toBeNull();
  });
});

describe('nginx as the mTLS backend (ssl_verify_client on, gzip on)', () => {
  it('pass: mutual TLS, and the gzip body nginx compressed is decoded', async () => {
    const r = await invoke(node(`https://localhost:${nginx.port}/json`), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.headers['content-encoding']).toBe('gzip');
    expect(r.response?.body).toMatchObject({ ok: true });
    expect(JSON.stringify(r.response?.body)).toContain('svcnode-bot');
  });

  it('no client certificate: nginx answers 400, classified client_cert_required', async () => {
    const r = await invoke(node(`https://localhost:${nginx.port}/json`, {}, 'none'), {}, deps);
    expect(r.failure?.category).toBe('client_cert_required');
  });

  it('a redirect loop is one permanent failure: at most limit + 1 requests for the whole job, not retried', async () => {
    const before = nginx.requests('/loop');
    const url = `https://localhost:${nginx.port}/loop`;
    const r = await invokeWithRetries(node(url, { request: { method: 'GET', url, followRedirects: true } }), {}, deps);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_TOO_MANY_REDIRECTS', phase: 'response' });
    expect(r.attempts).toBe(1);
    expect(nginx.requests('/loop') - before).toBe(DEFAULTS.maxRedirects + 1);
  });
});

describe('squid as a CONNECT proxy with basic auth', () => {
  it('a hostname mismatch beyond the proxy reads as without one: the name asked for and the names the certificate holds', async () => {
    const r = await invoke(node(`https://localhost:${nginx.port}/json`, { proxy: { url: withCredentials(squid.url) }, tls: { profile: 'bank', servername: 'api.other.example' } }), {}, deps);
    expect(r.failure).toMatchObject({ category: 'server_hostname_mismatch', phase: 'tls' });
    expect(r.failure?.message).toBe(`the server certificate of localhost:${nginx.port} is not for "api.other.example": it names DNS:localhost, IP:127.0.0.1`);
  });

  it('pass: mTLS to nginx through squid; squid logged the tunnel; credentials stay out of the Result', async () => {
    const own = new AgentPool();
    const r = await invoke(node(`https://localhost:${nginx.port}/json`, { proxy: { url: withCredentials(squid.url) } }), {}, { ...deps, agents: own });
    own.destroy();
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toMatchObject({ ok: true });
    // squid logs a tunnel when it closes.
    await waitFor(() => new RegExp(`TCP_TUNNEL/200 .* CONNECT localhost:${nginx.port} ${PROXY_USER}`).test(squid.accessLog()), 5_000, 50, 'squid access log line');
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS, encodeURIComponent(PROXY_PASS)], 'Result');
  });

  it('wrong credentials: 407 from squid is a proxy failure, not retried, and the backend is never reached', async () => {
    const before = backend.tcpConnections;
    const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: withCredentials(squid.url, PROXY_USER, 'Not-The-Pass-9') } }), {}, deps);
    expectProxyFailure(r);
    expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'PROXY_407' });
    expect(r.attempts).toBe(1);
    expect(backend.tcpConnections).toBe(before);
    assertNoSecrets(JSON.stringify(r), ['Not-The-Pass-9', PROXY_PASS], 'Result');
  });

  it('a server certificate failure through squid: one tunnel per attempt, and the Result shows the chain', async () => {
    const otherRoot = await mintCa({ subject: 'CN=Other Root,O=elsewhere' });
    const leaf = await mintLeaf({ subject: 'CN=localhost,O=elsewhere', issuer: otherRoot, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const untrusted = await startMtlsServer({ key: leaf.keyPem, cert: leaf.certPem + otherRoot.certPem, ca: pki.root.certPem });
    peers.push(untrusted);
    const tunnelsBefore = (squid.accessLog().match(new RegExp(`CONNECT localhost:${untrusted.port}`, 'g')) ?? []).length;
    const r = await invokeWithRetries(node(`https://localhost:${untrusted.port}/`, { proxy: { url: withCredentials(squid.url) } }), {}, deps);
    expect(r.failure).toMatchObject({ category: 'server_cert_untrusted', phase: 'tls' });
    expect(r.tls?.serverChain[0]?.subject).toBe('CN=localhost, O=elsewhere');
    expect(untrusted.tcpConnections).toBe(1);
    // squid writes its access log line when the tunnel closes.
    const tunnels = (): number => (squid.accessLog().match(new RegExp(`CONNECT localhost:${untrusted.port}`, 'g')) ?? []).length - tunnelsBefore;
    await waitFor(() => tunnels() > 0, 5_000, 50, 'squid access log line');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(tunnels()).toBe(1);
  });
});

describe('an https:// proxy (TLS to the proxy)', () => {
  it('pass with credentials and proxy.tls.ca: no byte of the CONNECT travels in plaintext', async () => {
    // The proxy's would-be plaintext port (80 when it is free here) must see nothing at all.
    const plain = await startByteCounter(80).catch(() => undefined);
    if (plain) peers.push(plain);
    const before = tlsProxy.rawBytes().length;
    const url = new URL(tlsProxy.url);
    url.hostname = 'localhost';
    const r = await invoke(node(`https://localhost:${backend.port}/accounts`, { proxy: { url: withCredentials(url.href), tls: { ca: [proxyCaFile] } } }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(tlsProxy.inner.tunnels).toBeGreaterThan(0);
    // The credentials reached the proxy, inside TLS.
    expect(tlsProxy.inner.lastAuthorization).toBe(`Basic ${Buffer.from(`${PROXY_USER}:${PROXY_PASS}`).toString('base64')}`);
    const raw = tlsProxy.rawBytes().subarray(before);
    expect(raw[0]).toBe(0x16); // a TLS handshake record, not "CONNECT"
    const text = raw.toString('latin1');
    for (const plaintext of ['CONNECT', 'Proxy-Authorization', 'proxy-authorization', Buffer.from(`${PROXY_USER}:${PROXY_PASS}`).toString('base64'), PROXY_PASS]) expect(text).not.toContain(plaintext);
    if (plain) expect([plain.connections, plain.bytes]).toEqual([0, 0]);
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS, encodeURIComponent(PROXY_PASS)], 'Result');
  });

  it("the proxy's certificate is not trusted: phase proxy, a hint about the proxy, never the backend's server_cert_untrusted", async () => {
    const before = tlsProxy.inner.connects;
    const backendBefore = backend.tcpConnections;
    const url = new URL(tlsProxy.url);
    url.hostname = 'localhost';
    const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: withCredentials(url.href) } }), {}, deps);
    expectProxyFailure(r);
    expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'SVCNODE_PROXY_TLS' });
    expect(r.failure?.hint).toContain('proxy.tls.ca');
    expect(r.attempts).toBe(1);
    expect(tlsProxy.inner.connects).toBe(before);
    expect(backend.tcpConnections).toBe(backendBefore);
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS, encodeURIComponent(PROXY_PASS)], 'Result');
  });

  it("proxy.tls.ca rotated in place: the node's next calls use the new file within seconds, no restart", async () => {
    const url = new URL(tlsProxy.url);
    url.hostname = 'localhost';
    const caFile = pki.write('rotating-proxy-ca.pem', pki.root.certPem);
    // One definition object throughout, as a worker holds it.
    const n = node(`https://localhost:${backend.port}/accounts`, { proxy: { url: withCredentials(url.href), tls: { ca: [caFile] } } });
    expect((await invoke(n, {}, deps)).failure?.code).toBe('SVCNODE_PROXY_TLS');
    writeFileSync(caFile, readFileSync(proxyCaFile));
    const r = await waitFor(async () => {
      const attempt = await invoke(n, {}, deps);
      return attempt.ok ? attempt : undefined;
    }, 5_000, 100, 'a call through the proxy with the rotated proxy.tls.ca');
    expect(r.failure).toBeNull();
  });

  it('wrong or missing credentials over TLS to the proxy: the 407 reads as rejected or missing credentials, never retried, no secret shown', async () => {
    const url = new URL(tlsProxy.url);
    url.hostname = 'localhost';
    const tls = { ca: [proxyCaFile] };
    const wrong = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: withCredentials(url.href, PROXY_USER, 'Wr0ng p@ss'), tls } }), {}, deps);
    expectProxyFailure(wrong);
    expect(wrong.failure?.code).toBe('PROXY_407');
    expect(wrong.failure?.message).toContain('rejected the user and password in proxy.url');
    expect(wrong.attempts).toBe(1);
    const missing = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: url.href, tls } }), {}, deps);
    expectProxyFailure(missing);
    expect(missing.failure?.message).toContain('proxy.url has no credentials');
    assertNoSecrets(JSON.stringify([wrong, missing]), ['Wr0ng p@ss', encodeURIComponent('Wr0ng p@ss'), Buffer.from(`${PROXY_USER}:Wr0ng p@ss`).toString('base64')], 'Result');
  });

  it('https:// in proxy.url for a proxy that takes CONNECT in plaintext (squid): SVCNODE_PROXY_TLS, the hint says http://, not retried', async () => {
    const url = new URL(withCredentials(squid.url));
    url.protocol = 'https:';
    const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: url.href }, retry: { limit: 1, backoffMs: 5, maxBackoffMs: 5 } }), {}, deps);
    expectProxyFailure(r);
    // Before: SVCNODE_PROXY_UNREACHABLE "cannot be reached: EPROTO: write EPROTO 80…:error:0A00010B:…ssl3_record.c:350:\n", hint "needs https://", retried.
    expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'SVCNODE_PROXY_TLS' });
    expect(r.failure?.message).toMatch(/does not speak TLS on this port \(wrong version number\)/);
    expect(r.failure?.message).not.toMatch(/\.c:\d+|\n|error:0A/);
    expect(r.failure?.hint).toContain('write http:// in proxy.url');
    expect(r.attempts).toBe(1);
    assertNoSecrets(JSON.stringify(r), [PROXY_PASS, encodeURIComponent(PROXY_PASS)], 'Result');
  });

  it("the proxy's certificate expired (its CA in proxy.tls.ca): the hint says to renew it, not to list the CA", async () => {
    const url = new URL(lapsedProxy.url);
    url.hostname = 'localhost';
    const r = await invoke(node(`https://localhost:${backend.port}/`, { proxy: { url: url.href, tls: { ca: [proxyCaFile] } } }), {}, deps);
    expectProxyFailure(r);
    expect(r.failure).toMatchObject({ code: 'SVCNODE_PROXY_TLS' });
    expect(r.failure?.message).toContain('CERT_HAS_EXPIRED');
    expect(r.failure?.hint).toMatch(/^the proxy's own certificate is out of date: its operators must renew it/);
  });

  it('a proxy that is not listening: phase proxy, retried as transient', async () => {
    const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: 'https://localhost:1/' }, retry: { limit: 1, backoffMs: 5, maxBackoffMs: 5 } }), {}, deps);
    expectProxyFailure(r);
    expect(r.failure?.code).toBe('SVCNODE_PROXY_UNREACHABLE');
    expect(r.attempts).toBe(2);
  });

  it('proxy.url at a port where no HTTP proxy listens (an SSH banner): SVCNODE_PROXY_BAD_RESPONSE, phase proxy, not retried', async () => {
    const banner = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.2\r\n'));
    });
    await new Promise<void>((resolve) => banner.listen(0, '127.0.0.1', resolve));
    try {
      const port = (banner.address() as net.AddressInfo).port;
      const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: `http://127.0.0.1:${port}` }, retry: { limit: 1, backoffMs: 5, maxBackoffMs: 5 } }), {}, deps);
      expectProxyFailure(r);
      expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'SVCNODE_PROXY_BAD_RESPONSE' });
      expect(r.failure?.message).toContain('HPE_INVALID_CONSTANT');
      expect(r.attempts).toBe(1);
    } finally {
      banner.close();
    }
  });

  it('a TLS proxy written as http:// in proxy.url: phase proxy, the hint names the https:// scheme', async () => {
    const url = new URL(tlsProxy.url);
    url.protocol = 'http:';
    const r = await invokeWithRetries(node(`https://localhost:${backend.port}/`, { proxy: { url: url.href }, retry: { limit: 0 } }), {}, deps);
    expectProxyFailure(r);
    expect(r.failure?.code).toBe('SVCNODE_PROXY_UNREACHABLE');
    expect(r.failure?.message).toContain('closed the connection without answering CONNECT');
    expect(r.failure?.hint).toContain('write https:// in proxy.url');
  });

  it('proxy.noProxy: a listed host is reached directly', async () => {
    const before = tlsProxy.inner.connects;
    const r = await invoke(node(`https://localhost:${backend.port}/`, { proxy: { url: 'https://localhost:1/', noProxy: ['localhost'] } }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(tlsProxy.inner.connects).toBe(before);
  });

  it('proxy.noProxy: an IP-address URL inside a listed CIDR block, and a host name written with its root dot, go directly', async () => {
    const r = await invoke(node(`https://127.0.0.1:${backend.port}/`, { proxy: { url: 'https://localhost:1/', noProxy: ['10.0.0.0/8', '127.0.0.0/8'] } }), {}, deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    // Direct: whatever the resolver makes of `localhost.` (glibc's /etc/hosts reading does not know it), not the (unreachable) proxy.
    const dotted = await invoke(node(`https://localhost.:${backend.port}/`, { proxy: { url: 'https://localhost:1/', noProxy: ['localhost'] }, retry: { limit: 0 } }), {}, deps);
    expect(dotted.failure?.phase, JSON.stringify(dotted.failure)).not.toBe('proxy');
    // Outside the block: the (unreachable) proxy is used.
    const outside = await invoke(node(`https://127.0.0.1:${backend.port}/`, { proxy: { url: 'https://localhost:1/', noProxy: ['10.0.0.0/8'] }, retry: { limit: 0 } }), {}, deps);
    expect(outside.failure?.phase).toBe('proxy');
  });
});

/** Whether this machine has an IPv6 loopback to test on (some containers have none). */
async function ipv6Loopback(): Promise<boolean> {
  const probe = net.createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}
const IPV6 = await ipv6Loopback();

describe.skipIf(!IPV6)('IPv6 literals through a proxy', () => {
  /** A TCP relay listening on [::1] to a port on 127.0.0.1, closed after the test. */
  async function relayFromV6(toPort: number): Promise<net.Server> {
    const relay = net.createServer((client) => {
      const upstream = net.connect(toPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '::1', resolve));
    return relay;
  }

  it('a backend at https://[::1]:port through squid: CONNECT names [::1]:port, and the IP SAN ::1 verifies', async () => {
    const leaf = await mintLeaf({ subject: 'CN=v6 backend,O=bank', issuer: pki.intermediate, usage: 'server', ipAddresses: ['::1'] });
    const v6 = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem + pki.intermediate.certPem, ca: pki.root.certPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"v6":true}'));
    });
    await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
    try {
      const port = (v6.address() as net.AddressInfo).port;
      const r = await invoke(node(`https://[::1]:${port}/`, { proxy: { url: withCredentials(squid.url) } }), {}, deps);
      expect(r.failure, JSON.stringify(r.failure)).toBeNull();
      expect(r.response?.body).toEqual({ v6: true });
      // squid writes a tunnel's line when the tunnel closes, a moment after the response.
      await waitFor(() => squid.accessLog().includes(`[::1]:${port}`), 5_000, 50, 'squid access log line of the [::1] tunnel');
    } finally {
      v6.close();
    }
  });

  it('a proxy at http://[::1]:port is reached (not looked up in DNS with its brackets)', async () => {
    const relay = await relayFromV6(squid.port);
    try {
      const proxyUrl = withCredentials(`http://[::1]:${(relay.address() as net.AddressInfo).port}/`);
      const r = await invoke(node(`https://localhost:${backend.port}/`, { proxy: { url: proxyUrl } }), {}, deps);
      expect(r.failure, JSON.stringify(r.failure)).toBeNull();
      expect(r.response?.status).toBe(200);
    } finally {
      relay.close();
    }
  });
});
