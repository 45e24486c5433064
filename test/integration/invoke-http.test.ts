/**
 * invoke() at the HTTP layer against real mTLS servers: request bodies, redirects (same origin
 * only), compressed and oversized responses, the response-header timeout.
 */
import { gzipSync } from 'node:zlib';
import type http from 'node:http';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { invokeWithRetries } from '../../src/invoke/attempts.js';
import { invoke } from '../../src/invoke/execute.js';
import { useBankFixture } from '../helpers/bank-fixture.js';
import { freePort } from '../helpers/net.js';
import type { MtlsServer, RequestHandler } from '../helpers/servers.js';

const bank = useBankFixture();

function serve(handler: RequestHandler): Promise<MtlsServer> {
  return bank.serve({ handler });
}

function node(url: string, extra: Omit<Partial<NodeDefinition>, 'id'> = {}, method: NodeDefinition['request']['method'] = 'GET'): NodeDefinition {
  return { id: 'http', request: { method, url }, tls: { profile: 'bank' }, retry: { limit: 0 }, timeouts: { responseMs: 3_000 }, ...extra };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

describe('request bodies', () => {
  it('sends a rendered JSON body with content-length and typed template values', async () => {
    const seen: { headers?: http.IncomingHttpHeaders; body?: string } = {};
    const s = await serve(async (req, res) => {
      seen.headers = req.headers;
      seen.body = await readBody(req);
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"created":true}');
    });
    const n = node(`https://localhost:${s.port}/transfers`, { request: { method: 'POST', url: `https://localhost:${s.port}/transfers`, body: { amount: '{{context.amount}}', to: 'acct-{{context.to}}', tags: ['{{context.tag}}'] } } });
    const r = await invoke(n, { amount: 12.5, to: 7, tag: 'bot' }, bank.deps);
    expect(r.ok).toBe(true);
    expect(r.response?.body).toEqual({ created: true });
    expect(JSON.parse(seen.body ?? '')).toEqual({ amount: 12.5, to: 'acct-7', tags: ['bot'] });
    expect(seen.headers?.['content-type']).toBe('application/json');
    expect(seen.headers?.['content-length']).toBe(String(Buffer.byteLength(seen.body ?? '')));
    expect(seen.headers?.['transfer-encoding']).toBeUndefined();
  });
});

describe('redirects', () => {
  it('are not followed unless the node asks', async () => {
    const s = await serve((req, res) => {
      if (req.url === '/old') res.writeHead(302, { location: '/new' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"at":"new"}');
    });
    const plain = await invoke(node(`https://localhost:${s.port}/old`), {}, bank.deps);
    expect(plain.failure?.category).toBe('http_status');
    expect(plain.response?.status).toBe(302);
    const followed = await invoke(node(`https://localhost:${s.port}/old`, { request: { method: 'GET', url: `https://localhost:${s.port}/old`, followRedirects: true } }), {}, bank.deps);
    expect(followed.ok).toBe(true);
    expect(followed.response?.body).toEqual({ at: 'new' });
  });

  it('turn a POST into a GET on 303', async () => {
    const methods: string[] = [];
    const s = await serve(async (req, res) => {
      methods.push(`${req.method ?? ''} ${req.url ?? ''} ${await readBody(req)}`);
      if (req.url === '/submit') res.writeHead(303, { location: '/result' }).end();
      else res.writeHead(200).end('done');
    });
    const r = await invoke(node(`https://localhost:${s.port}/submit`, { request: { method: 'POST', url: `https://localhost:${s.port}/submit`, body: 'x=1', followRedirects: true } }), {}, bank.deps);
    expect(r.ok).toBe(true);
    expect(methods).toEqual(['POST /submit x=1', 'GET /result ']);
  });

  it('never carry the client certificate to another origin', async () => {
    const other = await serve((_req, res) => void res.writeHead(200).end('should not be reached'));
    const s = await serve((_req, res) => void res.writeHead(302, { location: `https://127.0.0.1:${other.port}/steal` }).end());
    const r = await invoke(node(`https://localhost:${s.port}/`, { request: { method: 'GET', url: `https://localhost:${s.port}/`, followRedirects: true } }), {}, bank.deps);
    expect(r.failure?.category).toBe('invalid_input');
    expect(r.failure?.code).toBe('SVCNODE_CROSS_ORIGIN_REDIRECT');
    expect(other.tcpConnections).toBe(0);
  });
});

describe('responses', () => {
  it('decodes a gzip body and parses it as JSON', async () => {
    const s = await serve((_req, res) => void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync('{"balance":"1234.56"}')));
    const r = await invoke(node(`https://localhost:${s.port}/`), {}, bank.deps);
    expect(r.ok).toBe(true);
    expect(r.response?.body).toEqual({ balance: '1234.56' });
  });

  it('cuts a body larger than response.maxBodyBytes and marks it truncated', async () => {
    const s = await serve((_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(100_000)));
    const r = await invoke(node(`https://localhost:${s.port}/`, { response: { maxBodyBytes: 1000 } }), {}, bank.deps);
    expect(r.ok).toBe(true);
    expect(r.response?.truncated).toBe(true);
    expect(r.response?.body).toBe('x'.repeat(1000));
  });

  it('times out when the response headers do not arrive within responseMs', async () => {
    const s = await serve(() => undefined);
    const started = Date.now();
    const r = await invoke(node(`https://localhost:${s.port}/`, { timeouts: { responseMs: 400 } }), {}, bank.deps);
    expect(r.failure?.category).toBe('timeout');
    expect(r.failure?.code).toBe('SVCNODE_RESPONSE_TIMEOUT');
    expect(r.failure?.phase).toBe('request');
    expect(Date.now() - started).toBeLessThan(1_400);
  });
});

describe('certificate-session endpoint answers', () => {
  /** A session endpoint answering `session` in turn (then the last one), and an API that records the header. */
  async function sessionBackend(session: { status: number; body: unknown }[], delayMs = 0): Promise<{ server: MtlsServer; hits: { session: number; api: number }; seen: (string | undefined)[] }> {
    const hits = { session: 0, api: 0 };
    const seen: (string | undefined)[] = [];
    const server = await serve(async (req, res) => {
      req.resume();
      if (req.url === '/session') {
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        const answer = session[Math.min(hits.session, session.length - 1)] as { status: number; body: unknown };
        hits.session++;
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
        return;
      }
      hits.api++;
      seen.push(req.headers.sessiontoken as string | undefined);
      // /echo returns the request's headers, as debug endpoints and some gateway error pages do;
      // /echo-encoded quotes the token as a URL and as a form body would carry it.
      if (req.url === '/echo-encoded') {
        const token = String(req.headers.sessiontoken);
        res.writeHead(200, { 'content-type': 'application/json', location: `https://localhost/next?t=${encodeURIComponent(token)}` }).end(JSON.stringify({ query: `t=${encodeURIComponent(token)}`, form: new URLSearchParams({ t: token }).toString() }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', ...(req.url === '/echo' ? { 'x-echo': String(req.headers.sessiontoken) } : {}) }).end(req.url === '/echo' ? JSON.stringify({ headers: req.headers }) : '{"ok":true}');
    });
    return { server, hits, seen };
  }
  const sessionNode = (port: number): NodeDefinition =>
    node(`https://localhost:${port}/api`, { auth: { type: 'certificate-session', tokens: [{ url: `https://localhost:${port}/session`, header: 'sessionToken' }] }, retry: { limit: 2, backoffMs: 10, maxBackoffMs: 20 } });

  it('a 503 from the session endpoint (a pod restarting) is retried, as at an OAuth 2.0 token endpoint', async () => {
    const { server, hits, seen } = await sessionBackend([{ status: 503, body: {} }, { status: 200, body: { token: 'session-token-1' } }]);
    const r = await invokeWithRetries(sessionNode(server.port), {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(r.attempts).toBe(2);
    expect(hits).toEqual({ session: 2, api: 1 });
    expect(seen).toEqual(['session-token-1']);
  });

  it('a session endpoint that refuses connections: phase auth, a hint about the authentication endpoint, not the backend', async () => {
    const r = await invoke(sessionNode(await freePort()), {}, bank.deps);
    expect(r.failure).toMatchObject({ phase: 'auth', category: 'connect_failed', code: 'ECONNREFUSED' });
    // Before: "check that the backend is up and reachable", when the backend was never called.
    expect(r.failure?.hint).toBe('check that the authentication endpoint is up and reachable from this machine (host, port, firewall, proxy); check its url in auth.tokens (scheme, host, port)');
  });

  it("a token with a line break is the endpoint's fault (phase auth), never sent and never cached", async () => {
    const { server, hits } = await sessionBackend([{ status: 200, body: { token: 'abc\nX-Injected: 1' } }]);
    for (let i = 0; i < 2; i++) {
      const r = await invoke(sessionNode(server.port), {}, bank.deps);
      expect(r.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_TOKEN_BAD_RESPONSE' });
      expect(r.failure?.hint).not.toContain('invocation context');
    }
    expect(hits).toEqual({ session: 2, api: 0 });
  });

  it('an API that echoes the request headers: the session token it echoes is redacted in the Result', async () => {
    const { server } = await sessionBackend([{ status: 200, body: { token: 'session-token-echoed-back' } }]);
    const n = sessionNode(server.port);
    const r = await invoke({ ...n, request: { ...n.request, url: `https://localhost:${server.port}/echo` } }, {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    expect(JSON.stringify(r)).not.toContain('session-token-echoed-back');
    expect((r.response?.body as { headers: Record<string, string> }).headers.sessiontoken).toBe('[redacted]');
    expect(r.response?.headers['x-echo']).toBe('[redacted]');
  });

  it('an API that quotes the session token percent- or form-encoded: redacted in those forms too', async () => {
    const token = 'sess/tok+en=echo&more~x';
    const { server } = await sessionBackend([{ status: 200, body: { token } }]);
    const n = sessionNode(server.port);
    const r = await invoke({ ...n, request: { ...n.request, url: `https://localhost:${server.port}/echo-encoded` } }, {}, bank.deps);
    expect(r.failure, JSON.stringify(r.failure)).toBeNull();
    const text = JSON.stringify(r);
    for (const form of [token, encodeURIComponent(token), new URLSearchParams({ t: token }).toString().slice(2)]) expect(text).not.toContain(form);
    expect(r.response?.body).toEqual({ query: 't=[redacted]', form: 't=[redacted]' });
  });

  it('an HTML page instead of the session JSON (a login page in front of it) says so, not "set auth.tokens[].field"', async () => {
    const { server } = await sessionBackend([{ status: 200, body: '<html>Sign in</html>' }]);
    const r = await invoke(sessionNode(server.port), {}, bank.deps);
    expect(r.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_AUTH_NO_TOKEN' });
    expect(r.failure?.message).toContain('not a JSON object (a login page or a proxy in front of the endpoint?)');
    expect(r.failure?.hint).not.toContain('field');
  });

  it('a session answer larger than svcnode reads says so, not "not a JSON object"', async () => {
    const { server } = await sessionBackend([{ status: 200, body: { token: 'session-token-big', pad: 'x'.repeat(5 * 1024 * 1024) } }]);
    const r = await invoke(sessionNode(server.port), {}, bank.deps);
    expect(r.failure).toMatchObject({ phase: 'auth', code: 'SVCNODE_AUTH_NO_TOKEN' });
    expect(r.failure?.message).toContain('larger than svcnode reads from an authentication endpoint');
    expect(r.failure?.message).not.toContain('not a JSON object');
    expect(JSON.stringify(r)).not.toContain('session-token-big');
  });

  it('twenty concurrent jobs with no session yet log in once (Symphony pods rate-limit session logins)', async () => {
    const { server, hits } = await sessionBackend([{ status: 200, body: { token: 'shared-session-token' } }], 150);
    const results = await Promise.all(Array.from({ length: 20 }, () => invoke(sessionNode(server.port), {}, bank.deps)));
    expect(results.map((r) => r.ok)).toEqual(Array.from({ length: 20 }, () => true));
    expect(hits).toEqual({ session: 1, api: 20 });
  });
});
