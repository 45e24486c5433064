/**
 * Self-test of test/helpers: every server goes up, behaves as documented, and comes down.
 * Certificates are minted here with the openssl CLI into a temp dir (never committed).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, runCli, spawnCli, waitForExit } from '../helpers/cli.js';
import { freePort, waitFor } from '../helpers/net.js';
import { startRedis } from '../helpers/redis.js';
import { assertNoSecrets } from '../helpers/secrets.js';
import {
  startConnectProxy,
  startMtlsServer,
  startOpensslServer,
  startPlainHttpServer,
  startSilentServer,
  unusedPort,
} from '../helpers/servers.js';

interface Pem {
  key: string;
  cert: string;
  keyFile: string;
  certFile: string;
}

let dir: string;
let ca: Pem;
let server: Pem;
let client: Pem;
/** Same CN as `client`, issued by a CA the servers do not trust. */
let rogue: Pem;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function load(name: string): Pem {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  return { keyFile, certFile, key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') };
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function mintCa(name: string, cn: string): Pem {
  openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', '1',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return load(name);
}

function mintLeaf(name: string, cn: string, issuer: string, ext: string): Pem {
  writeFileSync(path.join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\n${ext}\n`);
  openssl(['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`,
    '-set_serial', String(Date.now()), '-days', '1', '-out', `${name}.crt`, '-extfile', `${name}.ext`]);
  return load(name);
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'svcnode-helpers-'));
  ca = mintCa('ca', 'Helpers Test CA');
  mintCa('rogue-ca', 'Rogue CA');
  server = mintLeaf('server', 'localhost', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  client = mintLeaf('client', 'good-client', 'ca', 'extendedKeyUsage=clientAuth');
  rogue = mintLeaf('rogue', 'good-client', 'rogue-ca', 'extendedKeyUsage=clientAuth');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  status?: number;
  body?: string;
  /** `err.code` the Node client saw. */
  code?: string;
  /** OpenSSL reason from the message, e.g. 'tlsv1 alert unknown ca' (the only detail an EPROTO carries). */
  reason?: string;
  /** Whether 'secureConnect' fired before the error (TLS 1.3 post-handshake rejection). */
  secureConnected: boolean;
}

/** One HTTPS GET with a fresh connection; never rejects, reports what the client saw. */
function get(url: string, o: https.RequestOptions = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    let secureConnected = false;
    const req = https.get(url, { ca: ca.cert, agent: false, ...o }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, secureConnected }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(failure(err, secureConnected)));
    });
    req.on('socket', (s) => s.once('secureConnect', () => (secureConnected = true)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(failure(err, secureConnected)));
    req.setTimeout(5_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TEST_TIMEOUT' })));
  });
}

function failure(err: NodeJS.ErrnoException, secureConnected: boolean): Outcome {
  // An ERR_SSL_* code already names the reason; EPROTO carries it only in the message.
  const reason = err.code === 'EPROTO' ? /SSL routines:[^:]*:([^:]+):/.exec(err.message)?.[1] : undefined;
  return { code: err.code, ...(reason ? { reason } : {}), secureConnected };
}

/**
 * A bare TLS handshake that never writes application data. Unlike `get()` (https writes the
 * request before the handshake ends, so pre-handshake failures surface as `write EPROTO`), this
 * sees the `ERR_SSL_*` code. Also resolves on a clean close, which carries no error at all.
 */
function handshake(port: number, o: tls.ConnectionOptions = {}): Promise<Outcome & { closed?: boolean }> {
  return new Promise((resolve) => {
    let secureConnected = false;
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, ...o });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ code: 'TEST_TIMEOUT', secureConnected });
    }, 3_000);
    sock.once('secureConnect', () => (secureConnected = true));
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(failure(err, secureConnected));
    });
    sock.once('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve({ closed: true, secureConnected });
    });
    sock.resume();
  });
}

const withCert = (p: Pem): { key: string; cert: string } => ({ key: p.key, cert: p.cert });

describe('startMtlsServer', () => {
  it('reports the client subject and counts requests, connections and resumptions', async () => {
    const s = await startMtlsServer({ key: server.key, cert: server.cert, ca: ca.cert, closeAfterEachResponse: true });
    const agent = new https.Agent({ ca: ca.cert, ...withCert(client) });
    try {
      const first = await get(`${s.url}/a?x=1`, { agent });
      expect(first.status).toBe(200);
      const body = JSON.parse(first.body ?? '{}') as { ok: boolean; clientSubject: { CN: string }; path: string; method: string };
      expect(body).toMatchObject({ ok: true, clientSubject: { CN: 'good-client' }, path: '/a?x=1', method: 'GET' });

      // Connection: close + the agent's session cache → the second handshake is resumed.
      expect((await get(s.url, { agent })).status).toBe(200);
      expect(s.requests).toBe(2);
      expect(s.connections).toBe(2);
      expect(s.resumedSessions).toBe(1);
      expect(s.clientSubjects.map((x) => x?.CN)).toEqual(['good-client', 'good-client']);
      expect(s.lastClientSubject?.CN).toBe('good-client');
      expect(s.clientFingerprints[0]).toMatch(/^[0-9A-F:]{95}$/);
    } finally {
      agent.destroy();
      await s.close();
    }
    expect(s.server.listening).toBe(false);
  });

  it('without a client cert requirement, records null subjects', async () => {
    const s = await startMtlsServer({ key: server.key, cert: server.cert, requestCert: false });
    try {
      expect((await get(s.url)).status).toBe(200);
      expect(s.clientSubjects).toEqual([null]);
    } finally {
      await s.close();
    }
  });

  // Node server (requestCert + rejectUnauthorized), Node 20.20 / OpenSSL 3.0. `handshake` = bare
  // tls.connect, `https` = https.get (writes the request before the handshake completes):
  //   rogue cert, TLS 1.3: handshake: secureConnect, then a clean close with NO error (Node
  //                        verifies in JS and destroys; no alert); https: ECONNRESET "socket hang up"
  //   rogue cert, TLS 1.2: ECONNRESET before secureConnect (both)
  //   no cert,    TLS 1.3: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED after secureConnect (both;
  //                        OpenSSL enforces FAIL_IF_NO_PEER_CERT itself, so a real alert is sent)
  //   no cert,    TLS 1.2: handshake: ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE;
  //                        https: EPROTO (syscall 'write'), reason 'sslv3 alert handshake failure'
  it.each([
    ['TLSv1.3', 'rogue', { closed: true, secureConnected: true }, { code: 'ECONNRESET', secureConnected: true }],
    ['TLSv1.2', 'rogue', { code: 'ECONNRESET', secureConnected: false }, { code: 'ECONNRESET', secureConnected: false }],
    ['TLSv1.3', 'none', { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', secureConnected: true },
      { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', secureConnected: true }],
    ['TLSv1.2', 'none', { code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', secureConnected: false },
      { code: 'EPROTO', reason: 'sslv3 alert handshake failure', secureConnected: false }],
  ] as const)('Node server, %s, %s client cert', async (version, who, viaHandshake, viaHttps) => {
    const s = await startMtlsServer({ key: server.key, cert: server.cert, ca: ca.cert, maxVersion: version });
    try {
      const cert = who === 'rogue' ? withCert(rogue) : {};
      expect(await handshake(s.port, cert)).toEqual(viaHandshake);
      expect(await get(s.url, cert)).toEqual(viaHttps);
      expect(s.requests).toBe(0);
      expect(s.tcpConnections).toBe(2);
      expect(s.connections).toBe(0);
      if (who === 'none') expect(s.tlsClientErrors).toHaveLength(2);
    } finally {
      await s.close();
    }
  });
});

describe('startOpensslServer', () => {
  // openssl s_server -Verify N -verify_return_error, Node 20.20 / OpenSSL 3.0 client:
  //   rogue cert, TLS 1.3: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA after secureConnect (both clients)
  //   rogue cert, TLS 1.2: handshake: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA before secureConnect;
  //                        https: EPROTO, reason 'tlsv1 alert unknown ca'
  //   no cert,    TLS 1.3: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED after secureConnect (both)
  //   no cert,    TLS 1.2: handshake: ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE before secureConnect;
  //                        https: EPROTO, reason 'sslv3 alert handshake failure'
  it('verify=require rejects rogue and missing client certs with real alerts, accepts the good one', async () => {
    const s = await startOpensslServer({
      certFile: server.certFile,
      keyFile: server.keyFile,
      caFile: ca.certFile,
      verify: 'require',
      tls: 'both',
    });
    try {
      const good = await get(s.url, withCert(client));
      expect(good.status).toBe(200);
      expect(good.body).toContain('s_server');

      const v13 = { maxVersion: 'TLSv1.3', minVersion: 'TLSv1.3' } as const;
      const v12 = { maxVersion: 'TLSv1.2' } as const;
      const cases = [
        [{ ...withCert(rogue), ...v13 }, { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', secureConnected: true }, undefined],
        [{ ...withCert(rogue), ...v12 }, { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', secureConnected: false },
          { code: 'EPROTO', reason: 'tlsv1 alert unknown ca', secureConnected: false }],
        [v13, { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', secureConnected: true }, undefined],
        [v12, { code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', secureConnected: false },
          { code: 'EPROTO', reason: 'sslv3 alert handshake failure', secureConnected: false }],
      ] as const;
      for (const [opts, viaHandshake, viaHttps] of cases) {
        expect(await handshake(s.port, opts)).toEqual(viaHandshake);
        expect(await get(s.url, opts)).toMatchObject(viaHttps ?? viaHandshake);
      }
      expect(s.output()).toMatch(/certificate/i);
    } finally {
      await s.close();
    }
    expect(s.process.exitCode !== null || s.process.signalCode !== null).toBe(true);
  });

  it('tls=1.2 refuses a TLS 1.3-only client; verify=none serves anyone', async () => {
    const s = await startOpensslServer({ certFile: server.certFile, keyFile: server.keyFile, verify: 'none', tls: '1.2' });
    try {
      expect((await get(s.url)).status).toBe(200);
      expect((await handshake(s.port, { minVersion: 'TLSv1.3' })).code).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    } finally {
      await s.close();
    }
  });
  it('verify=request tolerates a rogue cert; sessionTickets=false sends no NewSessionTicket in TLS 1.3', async () => {
    /** Whether the client gets a TLS 1.3 NewSessionTicket ('session' event) within 300 ms. */
    const ticketSeen = (port: number) =>
      new Promise<boolean>((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, ...withCert(rogue) });
        const done = (seen: boolean) => {
          clearTimeout(timer);
          sock.destroy();
          resolve(seen);
        };
        const timer = setTimeout(() => done(false), 300);
        sock.once('session', () => done(true));
        sock.once('error', () => done(false));
      });
    const base = { certFile: server.certFile, keyFile: server.keyFile, caFile: ca.certFile, verify: 'request', tls: '1.3' } as const;
    const withTickets = await startOpensslServer(base);
    const noTickets = await startOpensslServer({ ...base, sessionTickets: false });
    try {
      expect((await get(withTickets.url, withCert(rogue))).status).toBe(200);
      expect(await ticketSeen(withTickets.port)).toBe(true);
      expect(await ticketSeen(noTickets.port)).toBe(false);
    } finally {
      await Promise.all([withTickets.close(), noTickets.close()]);
    }
  });
});

describe('startConnectProxy', () => {
  function connect(proxyPort: number, target: string, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; socket: net.Socket }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: target, headers });
      req.on('connect', (res: http.IncomingMessage, socket: net.Socket) => resolve({ status: res.statusCode ?? 0, socket }));
      req.on('error', reject);
      req.end();
    });
  }

  it('answers 407 without credentials and tunnels TLS with them', async () => {
    const backend = await startMtlsServer({ key: server.key, cert: server.cert, ca: ca.cert });
    const proxy = await startConnectProxy({ auth: { username: 'svc', password: 'pa:ss w0rd' } });
    try {
      const target = `127.0.0.1:${backend.port}`;
      const denied = await connect(proxy.port, target);
      expect(denied.status).toBe(407);
      denied.socket.destroy();

      const authorization = `Basic ${Buffer.from('svc:pa:ss w0rd').toString('base64')}`;
      const ok = await connect(proxy.port, target, { 'proxy-authorization': authorization });
      expect(ok.status).toBe(200);
      const out = await get(backend.url, { agent: undefined, createConnection: () => tls.connect({
        socket: ok.socket, ca: ca.cert, servername: 'localhost', ...withCert(client),
      }) });
      expect(out.status).toBe(200);
      expect(backend.lastClientSubject?.CN).toBe('good-client');
      expect(proxy).toMatchObject({ connects: 2, tunnels: 1, rejected: 1, targets: [target, target] });
      expect(proxy.lastAuthorization).toBe(authorization);
    } finally {
      await proxy.close();
      await backend.close();
    }
  });

  it('stall: takes the CONNECT and never answers', async () => {
    const proxy = await startConnectProxy({ stall: true });
    try {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: '127.0.0.1:1' });
      let answered = false;
      req.on('connect', () => (answered = true));
      req.on('error', () => undefined);
      req.end();
      await waitFor(() => proxy.connects === 1, 2_000);
      await new Promise((r) => setTimeout(r, 150));
      expect(answered).toBe(false);
      req.destroy();
    } finally {
      await proxy.close();
    }
  });
});

describe('misbehaving endpoints', () => {
  it('silent server: TCP accepted, TLS handshake never completes', async () => {
    const s = await startSilentServer();
    try {
      const sock = tls.connect({ host: '127.0.0.1', port: s.port, ca: ca.cert, servername: 'localhost' });
      let secure = false;
      sock.on('secureConnect', () => (secure = true));
      sock.on('error', () => undefined);
      await waitFor(() => s.connections === 1, 2_000);
      await new Promise((r) => setTimeout(r, 150));
      expect(secure).toBe(false);
      sock.destroy();
    } finally {
      await s.close();
    }
  });

  // OpenSSL 3.0: ERR_SSL_WRONG_VERSION_NUMBER; via https.get: EPROTO, reason 'wrong version number'.
  it('plain HTTP server: a TLS client gets a not-TLS error', async () => {
    const s = await startPlainHttpServer();
    try {
      const res = await fetch(s.url);
      expect(await res.text()).toBe('plain http\n');
      expect((await handshake(s.port)).code).toBe('ERR_SSL_WRONG_VERSION_NUMBER');
      expect(await get(`https://127.0.0.1:${s.port}/`)).toMatchObject({ code: 'EPROTO', reason: 'wrong version number' });
      expect(s.requests).toBe(1);
    } finally {
      await s.close();
    }
  });

  it('unusedPort: connection refused', async () => {
    const port = await unusedPort();
    expect((await get(`https://127.0.0.1:${port}/`)).code).toBe('ECONNREFUSED');
  });
});

describe('startRedis', () => {
  it('keeps an AOF-written key across SIGKILL + restart on the same port', async () => {
    const r = await startRedis({ appendonly: true, maxmemoryPolicy: 'noeviction' });
    try {
      expect(r.url).toBe(`redis://127.0.0.1:${r.port}`);
      const c1 = new Redis(r.url, { maxRetriesPerRequest: 1 });
      await c1.set('helpers:k', 'v1');
      expect(await c1.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      await c1.quit();

      r.kill();
      await r.restart();
      const c2 = new Redis(r.url, { maxRetriesPerRequest: 1 });
      expect(await c2.get('helpers:k')).toBe('v1');
      await c2.quit();
      await r.stop();
      expect(existsSync(r.dir)).toBe(true);
    } finally {
      await r.close();
    }
    expect(existsSync(r.dir)).toBe(false);
  });
});

describe('cli helpers', () => {
  it('runCli collects output, exit code, env and stdin', async () => {
    const script = path.join(dir, 'oneshot.mjs');
    writeFileSync(script, `
      let input = '';
      process.stdin.on('data', (d) => (input += d));
      process.stdin.on('end', () => {
        console.log(JSON.stringify({ argv: process.argv.slice(2), input, foo: process.env.FOO ?? null }));
        console.error('to stderr');
        process.exitCode = 3;
      });`);
    const r = await runCli(['a', 'b'], { entry: script, env: { FOO: 'bar' }, input: 'hello' });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({ argv: ['a', 'b'], input: 'hello', foo: 'bar' });
    expect(r.stderr).toBe('to stderr\n');
    expect(r.timedOut).toBe(false);
  });

  it('spawnCli waits for lines and stops a long-running process', async () => {
    const script = path.join(dir, 'longrun.mjs');
    writeFileSync(script, `
      console.log('starting');
      setTimeout(() => console.error('worker ready'), 50);
      const t = setInterval(() => {}, 1000);
      process.on('SIGTERM', () => { console.log('draining'); clearInterval(t); process.exitCode = 0; });`);
    const p = spawnCli([], { entry: script });
    expect(await p.waitForLine(/ready/, { stream: 'stderr' })).toBe('worker ready');
    await expect(p.waitForLine(/never/, { timeoutMs: 100 })).rejects.toThrow(/no line matching/);
    const since = p.lines.length;
    p.child.kill('SIGTERM');
    await p.waitForLine(/draining/, { since });
    expect(await waitForExit(p.child, 5_000)).toEqual({ code: 0, signal: null });
    expect(await p.stop()).toEqual({ code: 0, signal: null });
  });

  it('targets <repo>/dist/src/cli/main.js and explains a missing build', async () => {
    expect(path.relative(process.cwd(), CLI_PATH)).toBe(path.join('dist', 'src', 'cli', 'main.js'));
    await expect(runCli([], { entry: path.join(dir, 'missing.js') })).rejects.toThrow(/npm run build/);
  });
});

describe('assertNoSecrets', () => {
  it('catches key blocks and listed secrets without echoing them', () => {
    const passphrase = 'hunter2-"quoted"';
    expect(() => assertNoSecrets('all clean', [passphrase])).not.toThrow();
    expect(() => assertNoSecrets(`x ${server.key} y`, [])).toThrow(/PEM private key/);
    expect(() => assertNoSecrets('-----BEGIN ENCRYPTED ' + 'PRIVATE KEY-----', [])).toThrow(/PEM private key/);

    let message = '';
    try {
      assertNoSecrets(JSON.stringify({ msg: 'oops', pass: passphrase }), ['unrelated', passphrase], 'log');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/log contains secret #1/);
    expect(message).not.toContain('hunter2');
  });
});

describe('net helpers', () => {
  it('freePort returns a bindable port; waitFor resolves and times out', async () => {
    const port = await freePort();
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    await new Promise<void>((r) => srv.close(() => r()));

    let n = 0;
    expect(await waitFor(() => ++n >= 3 && n, 1_000, 5)).toBe(3);
    await expect(waitFor(() => false, 50, 10)).rejects.toThrow(/not met within 50 ms/);
  });
});

describe('cleanup', () => {
  // Runs last in this file: every server, client and child process above must be gone by now.
  it('leaves no listening servers, sockets or child processes behind', async () => {
    const leftovers = () =>
      process.getActiveResourcesInfo().filter((r) => /TCPServerWrap|TCPSocketWrap|TLSWrap|ProcessWrap/.test(r));
    await waitFor(() => leftovers().length === 0, 2_000).catch(() => undefined);
    expect(leftovers()).toEqual([]);
  });
});
