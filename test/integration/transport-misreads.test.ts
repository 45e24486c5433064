/**
 * What really happened, told apart from what looks alike: a close after a handshake in which the
 * server asked for no certificate, nginx's certificate verdict on a status the node accepts,
 * bodiless responses with a Content-Encoding, an SNI the server does not serve, oversized
 * headers, an unusable address; and credentials in a Location header or a query parameter never
 * reach a Result. Real TLS servers, nginx and `openssl s_server`, certificates minted per run.
 */
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import type net from 'node:net';
import http2 from 'node:http2';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { mintCa } from '../../src/pki/mint.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startNginx } from '../helpers/peers.js';
import type { TestServer } from '../helpers/servers.js';

const bank = useBankFixture();
const RETRY = { limit: 2, backoffMs: 10, maxBackoffMs: 20 };
const raw: tls.Server[] = [];
const peers: TestServer[] = [];
afterAll(async () => {
  raw.forEach((s) => s.close());
  await Promise.all(peers.map((p) => p.close()));
});

function node(url: string, extra: Omit<Partial<NodeDefinition>, 'id'> = {}): NodeDefinition {
  return { id: 'misreads', request: { method: 'GET', url }, tls: { profile: 'bank' }, retry: RETRY, timeouts: { responseMs: 3_000 }, ...extra };
}

/** A TLS 1.3 server of the bank's chain that asks for no client certificate; `onRequest` answers the first bytes. */
async function noCertificateRequest(onRequest: (socket: tls.TLSSocket) => void): Promise<number> {
  const p = bank.pki;
  const server = tls.createServer({ key: p.server.keyPem, cert: p.server.certPem + p.intermediate.certPem, requestCert: false }, (socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => onRequest(socket));
  });
  raw.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

describe('a server that asked for no client certificate has no verdict on ours', () => {
  it('a close right after the handshake (nginx `return 444`) is connect_failed and retried, not client_cert_rejected', async () => {
    const port = await noCertificateRequest((s) => s.destroy());
    const r = await invokeWithRetries(node(`https://localhost:${port}/`), {}, bank.deps);
    expect(r.tls?.protocol).toBe('TLSv1.3');
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('connect_failed');
    expect(r.attempts).toBe(3);
  });

  it('the Result shows no client certificate: none was sent', async () => {
    const port = await noCertificateRequest((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    const r = await invokeWithRetries(node(`https://localhost:${port}/`), {}, bank.deps);
    expect(r.ok).toBe(true);
    expect(r.tls?.clientCertificate).toBeNull();
  });
});

it("nginx rejecting our certificate (400, its SSL error page) is client_cert_rejected even when the node accepts 400", async () => {
  const other = await mintCa({ subject: 'CN=Other CA,O=elsewhere' });
  const nginx = await startNginx({ certFile: bank.pki.files.serverChain, keyFile: bank.pki.files.serverKey, clientCaFile: bank.pki.write('other-ca.pem', other.certPem) });
  peers.push(nginx);
  const r = await invokeWithRetries(node(`https://localhost:${nginx.port}/json`, { response: { acceptStatus: ['2xx', 400, 404] } }), {}, bank.deps);
  expect(r.ok).toBe(false);
  expect(r.failure).toMatchObject({ category: 'client_cert_rejected', code: 'HTTP_400' });
});

describe('a response without a body is not a decode failure, whatever its Content-Encoding', () => {
  it.each([
    ['HEAD, 200', 'HEAD', 200],
    ['DELETE, 204', 'DELETE', 204],
    ['GET, 304', 'GET', 304],
    ['GET, 200 with Content-Length 0', 'GET', 200],
  ] as const)('%s', async (_label, method, status) => {
    const s = await bank.serve({
      handler: (req, res) => {
        req.resume();
        res.writeHead(status, { 'content-encoding': 'gzip', ...(status === 200 && method === 'GET' ? { 'content-length': '0' } : {}) }).end();
      },
    });
    const url = `https://localhost:${s.port}/`;
    const r = await invokeWithRetries(node(url, { request: { method, url }, response: { acceptStatus: ['2xx', 304] } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.status).toBe(status);
  });
});

it('TLS alert unrecognized_name (an SNI the server does not serve) names tls.servername, not versions or ciphers', async () => {
  const f = bank.pki.files;
  const port = await freePort();
  const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-www', '-cert', f.serverCert, '-key', f.serverKey, '-cert2', f.serverCert, '-key2', f.serverKey, '-servername', 'api.bank.test', '-servername_fatal'], { stdio: 'ignore' });
  try {
    await waitFor(() => new Promise<boolean>((resolve) => {
      const c = netConnect(port, '127.0.0.1', () => (c.destroy(), resolve(true)));
      c.on('error', () => resolve(false));
    }), 10_000, 50, 'openssl s_server');
    const r = await invokeWithRetries(node(`https://localhost:${port}/`), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'protocol_mismatch', code: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', phase: 'tls' });
    expect(r.failure?.hint).toContain('tls.servername');
  } finally {
    child.kill();
  }
});

it('response headers over 16 KiB are SVCNODE_BAD_RESPONSE with a hint about header size, not about the port', async () => {
  const s = await bank.serve({
    handler: (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'x-sso-context': 'v'.repeat(20_000) }).end('{}');
    },
  });
  const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
  expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_BAD_RESPONSE', phase: 'response' });
  expect(r.failure?.hint).toMatch(/headers/);
  expect(r.failure?.hint).not.toMatch(/port/);
});

it('an IPv6 link-local address without its zone is a permanent connect_failed / EINVAL naming the zone, not an unexpected error', async () => {
  const r = await invokeWithRetries(node('https://[fe80::1]:4443/'), {}, bank.deps);
  expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'EINVAL' });
  expect(r.failure?.hint).toContain('zone');
  expect(r.attempts).toBe(1);
});

describe('credentials in URLs never reach a Result', () => {
  const SECRET = 'S3cretPw';

  it('the userinfo of a Location that is not a URL is not quoted in the failure', async () => {
    const s = await bank.serve({
      handler: (req, res) => {
        req.resume();
        res.writeHead(302, { location: `https://svc:${SECRET}@localhost:99999/x?access_token=T0k3n` }).end();
      },
    });
    const url = `https://localhost:${s.port}/`;
    const r = await invokeWithRetries(node(url, { request: { method: 'GET', url, followRedirects: true } }), {}, bank.deps);
    expect(r.failure?.code).toBe('SVCNODE_BAD_REDIRECT');
    expect(r.failure?.message).toContain('localhost:99999');
    expect(JSON.stringify(r)).not.toContain(SECRET);
    expect(JSON.stringify(r)).not.toContain('T0k3n');
  });

  it('a Location kept in the response headers loses its userinfo and token values', async () => {
    const s = await bank.serve({
      handler: (req, res) => {
        req.resume();
        res.writeHead(302, { location: `https://svc:${SECRET}@sso.bank.test/login?state=42&access_token=T0k3n` }).end();
      },
    });
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`, { response: { acceptStatus: ['2xx', 302] } }), {}, bank.deps);
    expect(r.response?.headers.location).toBe('https://sso.bank.test/login?state=42&access_token=[redacted]');
  });

  it('request.url keeps the query but not the values of credential-like parameters', async () => {
    const s = await bank.serve();
    const url = `https://localhost:${s.port}/accounts`;
    const r = await invokeWithRetries(node(url, { request: { method: 'GET', url, query: { page: '2', access_token: '{{context.tok}}', 'X-Amz-Signature': 'abc', sig: 'def' } } }), { tok: 'TOK-SECRET-123' }, bank.deps);
    expect(r.ok).toBe(true);
    expect(r.request.url).toBe(`https://localhost:${s.port}/accounts?page=2&access_token=[redacted]&X-Amz-Signature=[redacted]&sig=[redacted]`);
    expect(s.requests).toBe(1);
  });
});

it('a backend of HTTP/2 only refuses the HTTP/1.1 svcnode offers in the handshake: protocol_mismatch, not its 403', async () => {
  const p = bank.pki;
  // Node's http2 server without HTTP/1 answers an HTTP/1.1 request with 403 when the client offers no ALPN.
  const server = http2.createSecureServer({ key: p.server.keyPem, cert: p.server.certPem + p.intermediate.certPem, ca: p.root.certPem, requestCert: true, rejectUnauthorized: true, allowHTTP1: false });
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const r = await invokeWithRetries(node(`https://localhost:${(server.address() as net.AddressInfo).port}/`), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'protocol_mismatch', code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', phase: 'tls' });
    expect(r.failure?.message).toContain('does not speak HTTP/1.1 on this port');
    expect(r.attempts).toBe(1);
  } finally {
    server.close();
  }
});
