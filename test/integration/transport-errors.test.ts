/**
 * The transport's own decisions against real mTLS servers: coded, permanent errors for what no
 * retry can fix (answers that are not HTTP/1.1, undecodable or unsupported content codings, values the HTTP layer refuses,
 * redirects to another port), content codings as servers send them, the response and idle
 * timers, one connection per attempt on a server-certificate failure (the Result still shows the
 * chain), and a close long after the handshake that is a network failure, not our certificate.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import type { Result } from '../../src/invoke/result.js';
import { mintCa, mintLeaf } from '../../src/pki/mint.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import { REPO_ROOT } from '../helpers/cli.js';
import type { MtlsServer, MtlsServerOptions, RequestHandler } from '../helpers/servers.js';

const bank = useBankFixture();
/** Fast retries, so "not retried" is visible as a request count within the test. */
const RETRY = { limit: 2, backoffMs: 10, maxBackoffMs: 20 };

function serve(handler: RequestHandler, extra: Partial<MtlsServerOptions> = {}): Promise<MtlsServer> {
  return bank.serve({ handler, ...extra });
}

function node(url: string, extra: Omit<Partial<NodeDefinition>, 'id'> = {}): NodeDefinition {
  return { id: 'transport', request: { method: 'GET', url }, tls: { profile: 'bank' }, retry: RETRY, timeouts: { responseMs: 3_000 }, ...extra };
}

function encoded(encoding: string, body: Buffer): RequestHandler {
  return (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': encoding }).end(body);
  };
}

const JSON_BODY = Buffer.from(JSON.stringify({ decoded: true, text: 'x'.repeat(500) }));

function expectDecoded(r: Result): void {
  expect(r.failure, JSON.stringify(r.failure)).toBeNull();
  expect(r.response?.body).toEqual({ decoded: true, text: 'x'.repeat(500) });
}

describe('content codings', () => {
  it.each([
    ['GZIP (codings are case-insensitive)', 'GZIP', zlib.gzipSync(JSON_BODY)],
    ['x-gzip', 'x-gzip', zlib.gzipSync(JSON_BODY)],
    ['deflate, zlib-wrapped', 'deflate', zlib.deflateSync(JSON_BODY)],
    ['deflate, raw (as some servers send it)', 'Deflate', zlib.deflateRawSync(JSON_BODY)],
    ['br', 'br', zlib.brotliCompressSync(JSON_BODY)],
    ['stacked "gzip, br" (gzip applied first)', 'gzip, br', zlib.brotliCompressSync(zlib.gzipSync(JSON_BODY))],
    ['identity', 'identity', JSON_BODY],
  ])('%s is decoded', async (_label, encoding, body) => {
    const s = await serve(encoded(encoding, body));
    expectDecoded(await invoke(node(`https://localhost:${s.port}/`), {}, bank.deps));
  });

  it('a corrupt gzip body is a coded, permanent failure (not connect_failed, not retried)', async () => {
    const corrupt = zlib.gzipSync(JSON_BODY);
    corrupt.fill(0x41, 12, corrupt.length - 10);
    const s = await serve(encoded('gzip', corrupt));
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_DECODE_FAILED', phase: 'response' });
    expect(r.attempts).toBe(1);
    expect(s.requests).toBe(1);
  });

  it('an unsupported coding is a coded error, never the raw bytes with ok:true', async () => {
    const s = await serve(encoded('compress', Buffer.from('not really compressed')));
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.ok).toBe(false);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_UNSUPPORTED_ENCODING', phase: 'response' });
    expect(s.requests).toBe(1);
  });
});

const rawServers: tls.Server[] = [];
afterAll(() => rawServers.forEach((s) => s.close()));

/** A real mTLS server without HTTP: after the handshake it answers the first bytes of a request with `reply` (a string it sends and ends with, or its own act). */
async function answering(reply: string | ((socket: tls.TLSSocket) => void)): Promise<{ port: number; requests: () => number }> {
  const p = bank.pki;
  let requests = 0;
  const server = tls.createServer({ key: p.server.keyPem, cert: p.server.certPem + p.intermediate.certPem, ca: p.root.certPem, requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      requests++;
      if (typeof reply === 'string') socket.end(reply);
      else reply(socket);
    });
  });
  rawServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, requests: () => requests };
}

describe('an answer that is not HTTP/1.1 is a coded response failure, not an unexpected error', () => {
  it.each([
    ['another protocol on the port (an SSH banner over TLS)', 'SSH-2.0-OpenSSH_9.2\r\n', 'HPE_INVALID_CONSTANT', /check the port/],
    // An HTTP server breaking the syntax is not "another protocol on the port" (before: every case said so).
    ['a malformed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n', 'HPE_INVALID_CONTENT_LENGTH', /breaks the HTTP\/1.1 syntax/],
    ['a control character in a header value', 'HTTP/1.1 200 OK\r\nX-Id: a\u0001b\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN', /breaks the HTTP\/1.1 syntax/],
    ['lines ended by LF alone', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n', 'HPE_', /lines ended by LF alone/],
  ])('%s → http_status / SVCNODE_BAD_RESPONSE, phase response, not retried', async (_label, reply, parserCode, hint) => {
    const s = await answering(reply);
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_BAD_RESPONSE', phase: 'response' });
    expect(r.failure?.message).toContain(parserCode);
    expect(r.failure?.hint).toMatch(hint);
    expect(r.attempts).toBe(1);
    expect(s.requests()).toBe(1);
  });
});

describe('bytes after a complete answer (more than its Content-Length) do not spoil it', () => {
  it('the announced body is kept, as curl keeps it, and the connection is not reused (before: SVCNODE_BAD_RESPONSE "check the port")', async () => {
    const s = await answering('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n0123456789');
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response).toMatchObject({ status: 200, body: '01234' });
    // The server answers once per connection: a second call that reused this one would never be answered.
    const again = await invokeWithRetries(node(`https://localhost:${s.port}/`, { retry: { limit: 0 }, timeouts: { responseMs: 1_000 } }), {}, bank.deps);
    expect(again.failure, JSON.stringify(again.failure)).toBeNull();
    expect(s.requests()).toBe(2);
  });

  it('a compressed answer followed by stray bytes is decoded whole', async () => {
    const gz = zlib.gzipSync(JSON_BODY);
    const s = await answering((socket) => socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${gz.length}\r\n\r\n`), gz, Buffer.from('junk')])));
    expectDecoded(await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps));
  });
});

describe('context values the HTTP layer refuses are invalid input: exit 2, never retried, no connection', () => {
  const echo: RequestHandler = (req, res) => {
    req.resume();
    res.end('{}');
  };

  it('a control character in a header value', async () => {
    const s = await serve(echo);
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`, { request: { method: 'GET', url: `https://localhost:${s.port}/`, headers: { 'x-trace': '{{context.trace}}' } } }), { trace: 'a\u0001b' }, bank.deps);
    expect(r.failure).toMatchObject({ category: 'invalid_input', phase: 'input' });
    expect(r.attempts).toBe(1);
    expect(s.tcpConnections).toBe(0);
  });

  it('a lone surrogate in the URL', async () => {
    const s = await serve(echo);
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/accounts/{{context.id}}`), { id: 'x\uD800y' }, bank.deps);
    expect(r.failure).toMatchObject({ category: 'invalid_input', phase: 'input' });
    expect(s.tcpConnections).toBe(0);
  });

  it('a 20,000-deep context in a body', async () => {
    const s = await serve(echo);
    let deep: unknown = 'leaf';
    for (let i = 0; i < 20_000; i++) deep = { d: deep };
    const url = `https://localhost:${s.port}/`;
    const r = await invokeWithRetries(node(url, { request: { method: 'POST', url, body: { payload: '{{context.deep}}' } } }), { deep }, bank.deps);
    expect(r.failure).toMatchObject({ category: 'invalid_input', phase: 'input' });
    expect(s.tcpConnections).toBe(0);
  });
});

describe('redirects', () => {
  it('the Result names each redirect followed and the request it led to (before: only the first request, as if it had answered)', async () => {
    const s = await serve((req, res) => {
      req.resume();
      if (req.url === '/pay') res.writeHead(303, { location: '/status/1' }).end();
      else if (req.url === '/status/1') res.writeHead(307, { location: `https://localhost:${s.port}/status/final?x=1` }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url }));
    });
    const url = `https://localhost:${s.port}/pay`;
    const r = await invoke(node(url, { request: { method: 'POST', url, body: { a: 1 }, followRedirects: true } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.request).toEqual({
      method: 'POST',
      url,
      redirects: [
        { status: 303, method: 'GET', url: `https://localhost:${s.port}/status/1` },
        { status: 307, method: 'GET', url: `https://localhost:${s.port}/status/final?x=1` },
      ],
    });
    expect(r.response?.body).toEqual({ method: 'GET', url: '/status/final?x=1' });
  });

  it('each redirect is followed on the same kept-alive connection (before: a new connection and handshake per hop)', async () => {
    const s = await serve((req, res) => {
      req.resume();
      const hop = Number(/^\/hop\/(\d)$/.exec(req.url ?? '')?.[1] ?? 9);
      if (hop < 4) res.writeHead(hop % 2 === 0 ? 302 : 307, { location: `/hop/${hop + 1}`, 'content-type': 'text/html' }).end(`<a href="/hop/${hop + 1}">moved</a>`);
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('arrived');
    });
    const url = `https://localhost:${s.port}/hop/0`;
    const r = await invoke(node(url, { request: { method: 'GET', url, followRedirects: true } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect([r.response?.body, r.request.redirects?.length, s.requests, s.tcpConnections]).toEqual(['arrived', 4, 5, 1]);
  });

  it('a redirect whose body stalls ends in the idle timeout, not a hang', async () => {
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(302, { location: '/next', 'content-type': 'text/html', 'content-length': '100' });
      res.write('<a href="/next">');
    });
    const url = `https://localhost:${s.port}/start`;
    const started = Date.now();
    const r = await invoke(node(url, { request: { method: 'GET', url, followRedirects: true }, retry: { limit: 0 }, timeouts: { responseMs: 2_000, idleMs: 300, totalMs: 5_000 } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_IDLE_TIMEOUT', phase: 'response' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('a 303 to a HEAD stays a HEAD (before: followed with GET, the body downloaded)', async () => {
    const methods: string[] = [];
    const s = await serve((req, res) => {
      methods.push(`${req.method ?? ''} ${req.url ?? ''}`);
      req.resume();
      if (req.url === '/start') res.writeHead(303, { location: '/final' }).end();
      else res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello');
    });
    const url = `https://localhost:${s.port}/start`;
    const r = await invoke(node(url, { request: { method: 'HEAD', url, followRedirects: true } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(methods).toEqual(['HEAD /start', 'HEAD /final']);
  });

  it('a redirect to the same host on another port is another origin: refused, that server never contacted', async () => {
    const other = await serve((req, res) => {
      req.resume();
      res.end('{}');
    });
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(302, { location: `https://localhost:${other.port}/elsewhere` }).end();
    });
    const r = await invoke(node(`https://localhost:${s.port}/`, { request: { method: 'GET', url: `https://localhost:${s.port}/`, followRedirects: true } }), {}, bank.deps);
    // invalid_input (the node must call that origin itself, exit 2), in phase response: the request was sent.
    expect(r.failure).toMatchObject({ category: 'invalid_input', code: 'SVCNODE_CROSS_ORIGIN_REDIRECT', phase: 'response' });
    expect(other.tcpConnections).toBe(0);
  });

  it('a Location that is not a URL is a coded failure, not an exception in the response handler', async () => {
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(302, { location: 'https://[not-a-host/x' }).end();
    });
    const url = `https://localhost:${s.port}/`;
    const r = await invokeWithRetries(node(url, { request: { method: 'GET', url, followRedirects: true } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_BAD_REDIRECT', phase: 'response' });
    expect(r.attempts).toBe(1);
  });
});

describe('timers', () => {
  it('the response timer stops at the headers: a large upload answered at once is not a timeout', async () => {
    const s = await serve((req, res) => {
      // Answer before reading the upload; read it only after 800 ms, and end the answer 500 ms
      // after the upload ended: the request finishes long after the headers arrived.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('start;');
      req.pause();
      setTimeout(() => {
        req.on('end', () => setTimeout(() => res.end('done'), 500));
        req.resume();
      }, 800);
    });
    const url = `https://localhost:${s.port}/upload`;
    const r = await invoke(node(url, { request: { method: 'PUT', url, body: '{{context.blob}}' }, timeouts: { responseMs: 300, idleMs: 3_000, totalMs: 10_000 } }), { blob: 'b'.repeat(8 * 1024 * 1024) }, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toBe('start;done');
  });

  it('with equal response and idle timeouts the idle timer starts at the headers, not when the request was sent', async () => {
    // Headers after 200 ms, body 250 ms later: 450 ms after the request, within 300 ms of each event.
    const s = await serve((req, res) => {
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.flushHeaders();
        setTimeout(() => res.end('whole'), 250);
      }, 200);
    });
    const r = await invoke(node(`https://localhost:${s.port}/`, { timeouts: { responseMs: 300, idleMs: 300, totalMs: 10_000 } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toBe('whole');
  });

  it('timeouts.idleMs bounds the gap between body chunks', async () => {
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      setTimeout(() => res.end('late'), 1_500).unref();
    });
    const started = Date.now();
    const r = await invoke(node(`https://localhost:${s.port}/`, { timeouts: { responseMs: 3_000, idleMs: 300, totalMs: 10_000 } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_IDLE_TIMEOUT', phase: 'response' });
    expect(Date.now() - started).toBeLessThan(1_200);
    // The status line and headers had arrived: kept (before: response null, the 200 lost), without a body.
    expect(r.response).toEqual({ status: 200, headers: expect.objectContaining({ 'content-type': 'text/plain' }) as unknown, body: null });
  });
});

describe('answers that end the exchange in unusual ways still end it, and say how', () => {
  it('a 101 Switching Protocols to a plain GET is a coded response failure at once (before: the call hung past totalMs)', async () => {
    const s = await serve((req) => {
      req.resume();
      req.socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    });
    const started = Date.now();
    const r = await invoke(node(`https://localhost:${s.port}/ws`, { timeouts: { responseMs: 2_000, idleMs: 2_000, totalMs: 4_000 } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'http_status', code: 'SVCNODE_BAD_RESPONSE', phase: 'response' });
    expect(r.failure?.message).toContain('101 Switching Protocols to "websocket"');
    expect(Date.now() - started).toBeLessThan(1_500);
    // Permanent: sent once.
    expect(s.requests).toBe(1);
  }, 15_000);

  it('timeouts.idleMs counts the bytes received, not the decoded output: a gzip body trickling byte by byte is read', async () => {
    const gz = zlib.gzipSync(Buffer.from('{"trickled":true}'));
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(gz.length) });
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        if (i === gz.length) return void res.end();
        res.write(gz.subarray(i, ++i));
        setTimeout(next, 40).unref();
      };
      next();
    });
    // The 10-byte gzip header alone takes 400 ms and decodes to nothing.
    const r = await invoke(node(`https://localhost:${s.port}/`, { timeouts: { responseMs: 2_000, idleMs: 250, totalMs: 10_000 } }), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.response?.body).toEqual({ trickled: true });
  });

  it('a connection closed before Content-Length was reached says so, with what arrived (before: ECONNRESET "aborted", "is the backend up")', async () => {
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('0123456789', () => setTimeout(() => res.socket?.destroy(), 50));
    });
    const r = await invoke(node(`https://localhost:${s.port}/`, { retry: { limit: 0 } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'connect_failed', code: 'SVCNODE_CONNECTION_CLOSED', phase: 'response' });
    expect(r.failure?.message).toContain('after 10 of the 100 announced bytes');
    expect(r.failure?.hint).toContain('broke off its answer');
    expect(r.response).toMatchObject({ status: 200, body: null });
  });

  it('totalMs running out after the headers is phase response, beside the status it keeps (before: phase request)', async () => {
    const s = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('a');
      const tick = setInterval(() => (res.destroyed ? clearInterval(tick) : res.write('b')), 100);
      tick.unref();
    });
    const r = await invoke(node(`https://localhost:${s.port}/`, { retry: { limit: 0 }, timeouts: { responseMs: 2_000, idleMs: 2_000, totalMs: 600 } }), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'timeout', code: 'SVCNODE_DEADLINE', phase: 'response' });
    expect(r.response?.status).toBe(200);
  });
});

describe('one connection per attempt', () => {
  it('a server_cert_* failure: the backend sees one TCP connection per attempt, and the Result shows the presented chain', async () => {
    const otherRoot = await mintCa({ subject: 'CN=Unrelated Root,O=elsewhere' });
    const leaf = await mintLeaf({ subject: 'CN=localhost,O=elsewhere', issuer: otherRoot, usage: 'server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const s = await serve(() => undefined, { key: leaf.keyPem, cert: leaf.certPem + otherRoot.certPem });
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.failure?.category).toBe('server_cert_untrusted');
    expect(r.attempts).toBe(1);
    await sleep(100);
    expect(s.tcpConnections).toBe(1);
    expect(r.tls?.serverChain.map((c) => c.subject)).toEqual(['CN=localhost, O=elsewhere', 'CN=Unrelated Root, O=elsewhere']);
    expect(r.failure?.hint).toContain('CN=Unrelated Root, O=elsewhere');

    const again = await invoke(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(again.failure?.category).toBe('server_cert_untrusted');
    await sleep(100);
    expect(s.tcpConnections).toBe(2);
  });
});

describe('a close without an alert is only our certificate when it comes right after the handshake', () => {
  it('a backend that closes long after a TLS 1.3 handshake (a restart) is a network failure and is retried', async () => {
    const s = await serve((req: http.IncomingMessage) => {
      setTimeout(() => req.socket.destroy(), 800).unref();
    });
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`, { retry: { limit: 1, backoffMs: 10, maxBackoffMs: 10 } }), {}, bank.deps);
    expect(r.tls?.protocol).toBe('TLSv1.3');
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('connect_failed');
    expect(r.failure?.phase).toBe('request');
    expect(r.attempts).toBe(2);
  });

  it.each([
    ['cut inside the status line and headers', 'HTTP/1.1 200 OK\r\nContent-Le', 'ECONNRESET'],
    ['cut inside the body', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789', 'SVCNODE_CONNECTION_CLOSED'],
  ])('a response %s right after a TLS 1.3 handshake is a network failure, retried: the server answered, so it took our certificate', async (_label, reply, code) => {
    const s = await answering(reply);
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`, { retry: { limit: 1, backoffMs: 10, maxBackoffMs: 10 } }), {}, bank.deps);
    expect(r.tls?.protocol).toBe('TLSv1.3');
    expect(r.failure?.category, JSON.stringify(r.failure)).toBe('connect_failed');
    expect(r.failure?.code).toBe(code);
    expect(r.attempts).toBe(2);
    expect(s.requests()).toBe(2);
  });

  it('a close right after a TLS 1.3 handshake with no byte of an answer stays the likely verdict on our certificate', async () => {
    const s = await answering((socket) => socket.end());
    const r = await invokeWithRetries(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.failure).toMatchObject({ category: 'client_cert_rejected', phase: 'tls' });
    expect(r.attempts).toBe(1);
  });
});

describe('this machine out of resources is not the backend failing', () => {
  it('no file descriptor left (EMFILE): connect_failed with the limit to raise, retried; the next call after fds are freed passes', async () => {
    const s = await serve((req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    // A process of its own with a low open-files limit (prlimit), filled up before the call.
    const script = join(bank.pki.dir, 'emfile-call.mjs');
    writeFileSync(
      script,
      `import fs from 'node:fs';
const [src, profileFile, port] = process.argv.slice(2);
const { loadProfile } = await import(src + '/definitions/profiles.js');
const { invoke } = await import(src + '/invoke/execute.js');
const { retryDelay } = await import(src + '/invoke/retry.js');
const { AgentPool } = await import(src + '/tls/agents.js');
const profile = await loadProfile(profileFile);
const deps = { profile: () => profile, agents: new AgentPool() };
// An IP literal: no DNS lookup, which would need a descriptor of its own.
const node = { id: 'fd', request: { method: 'GET', url: 'https://127.0.0.1:' + port + '/' }, tls: { profile: 'bank', servername: 'localhost' }, retry: { limit: 2, backoffMs: 10 } };
const fds = [];
try { for (;;) fds.push(fs.openSync('/dev/null', 'r')); } catch {}
const starved = await invoke(node, {}, deps);
for (const fd of fds.splice(0, 32)) fs.closeSync(fd);
const freed = await invoke(node, {}, deps);
console.log(JSON.stringify({ failure: starved.failure, retryInMs: retryDelay(starved, node, 1, () => 0.5), freed: freed.ok, freedFailure: freed.failure }));
process.exit(0);
`,
    );
    // Asynchronously: the backend runs in this process and must answer while the child runs.
    const { stdout: out } = await promisify(execFile)('prlimit', ['--nofile=128:128', process.execPath, script, join(REPO_ROOT, 'dist', 'src'), bank.pki.profile('bank'), String(s.port)], { encoding: 'utf8', timeout: 30_000 });
    const { failure, retryInMs, freed, freedFailure } = JSON.parse(out) as { failure: Result['failure']; retryInMs: number | undefined; freed: boolean; freedFailure: Result['failure'] };
    expect(failure).toMatchObject({ category: 'connect_failed', code: 'EMFILE', phase: 'connect' });
    expect(failure?.message).toBe(`127.0.0.1:${s.port}: connect EMFILE 127.0.0.1:${s.port}`);
    expect(failure?.hint).toContain('no file descriptor left');
    expect(failure?.hint).toContain('ulimit -n');
    expect(retryInMs).toBeGreaterThan(0);
    expect(freed, JSON.stringify(freedFailure)).toBe(true);
  });
});
