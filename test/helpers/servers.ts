/**
 * Real servers on 127.0.0.1 for integration tests: a Node mTLS backend, an `openssl s_server`
 * backend (an independent TLS stack that sends real alerts), an HTTP CONNECT proxy, and
 * misbehaving endpoints (silent, plain HTTP, refused). Every server closes without open handles.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as cryptoConstants } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { LOOPBACK, freePort, listen, trackSockets } from './net.js';

/** What every helper server returns. */
export interface TestServer {
  readonly host: string;
  readonly port: number;
  /** `https://127.0.0.1:PORT` (or `http://` for plain servers and the proxy). */
  readonly url: string;
  /** Idempotent; destroys open sockets and resolves once nothing is left listening. */
  close(): Promise<void>;
}

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/** Subject fields of a peer certificate as a plain object (`CN`, `O`, …). */
export type CertSubject = Record<string, string | string[]>;

export interface MtlsServerOptions {
  key: string;
  /** PEM; may hold the leaf followed by intermediates. */
  cert: string;
  /** Trust anchors for client certificates. */
  ca?: string | string[];
  /** @defaultValue true */
  requestCert?: boolean;
  /** @defaultValue true */
  rejectUnauthorized?: boolean;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
  /** OpenSSL cipher string; `DEFAULT@SECLEVEL=0` lets the server load a SHA-1 certificate. */
  ciphers?: string;
  /** @defaultValue 200 with JSON `{ ok, clientSubject, path, method, headers }` */
  handler?: RequestHandler;
  /** Sends `Connection: close`, forcing a new (full or resumed) handshake per request. */
  closeAfterEachResponse?: boolean;
  /**
   * `false` sets SSL_OP_NO_TICKET: no resumption at all. TLS 1.3 clients still receive
   * (stateful) NewSessionTicket messages, so the socket's 'session' event still fires.
   * @defaultValue true
   */
  sessionTickets?: boolean;
}

export interface MtlsServer extends TestServer {
  readonly server: https.Server;
  /** HTTP requests received. */
  requests: number;
  /** Raw TCP connections accepted, including handshakes the server rejected. */
  tcpConnections: number;
  /** Completed TLS handshakes ('secureConnection'). `tcpConnections - connections` were rejected or never finished. */
  connections: number;
  /** Handshakes that resumed a session (`isSessionReused()`). */
  resumedSessions: number;
  /** `err.code` of every 'tlsClientError' (e.g. OpenSSL rejecting a missing client cert). */
  tlsClientErrors: string[];
  /** Peer certificate subject of the last request; `null` when the client sent none. */
  lastClientSubject: CertSubject | null | undefined;
  /** Peer certificate subject of every request, in order (`null` = no client cert). */
  clientSubjects: Array<CertSubject | null>;
  /** SHA-256 fingerprint of every request's client cert, parallel to `clientSubjects`. */
  clientFingerprints: Array<string | null>;
}

/** A Node `https.Server` that asks for (and by default requires) a client certificate. */
export async function startMtlsServer(o: MtlsServerOptions): Promise<MtlsServer> {
  const server = https.createServer({
    key: o.key,
    cert: o.cert,
    ca: o.ca,
    requestCert: o.requestCert ?? true,
    rejectUnauthorized: o.rejectUnauthorized ?? true,
    minVersion: o.minVersion,
    maxVersion: o.maxVersion,
    ...(o.ciphers ? { ciphers: o.ciphers } : {}),
    secureOptions: o.sessionTickets === false ? cryptoConstants.SSL_OP_NO_TICKET : undefined,
  });
  const raw = trackSockets(server);
  const secureSockets = new Set<tls.TLSSocket>();

  const state: MtlsServer = {
    server,
    host: LOOPBACK,
    port: 0,
    url: '',
    requests: 0,
    tcpConnections: 0,
    connections: 0,
    resumedSessions: 0,
    tlsClientErrors: [],
    lastClientSubject: undefined,
    clientSubjects: [],
    clientFingerprints: [],
    close: once(async () => {
      for (const s of secureSockets) s.destroy();
      server.closeAllConnections();
      await raw.close();
    }),
  };

  server.on('connection', () => state.tcpConnections++);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    state.connections++;
    if (socket.isSessionReused()) state.resumedSessions++;
    secureSockets.add(socket);
    socket.once('close', () => secureSockets.delete(socket));
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    state.tlsClientErrors.push(err.code ?? err.message);
  });

  const handler = o.handler ?? defaultHandler;
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    state.requests++;
    const peer = peerCertificate(req);
    state.lastClientSubject = peer.subject;
    state.clientSubjects.push(peer.subject);
    state.clientFingerprints.push(peer.fingerprint256);
    if (o.closeAfterEachResponse) res.setHeader('Connection', 'close');
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`handler failed: ${err instanceof Error ? err.message : String(err)}`);
      });
  });

  const port = await listen(server, 0);
  return Object.assign(state, { port, url: `https://${LOOPBACK}:${port}` });
}

function peerCertificate(req: http.IncomingMessage): { subject: CertSubject | null; fingerprint256: string | null } {
  const cert = (req.socket as tls.TLSSocket).getPeerCertificate();
  // An empty object (no `subject`) means the client presented no certificate.
  if (!cert || !('subject' in cert) || !cert.subject) return { subject: null, fingerprint256: null };
  return { subject: { ...(cert.subject as unknown as CertSubject) }, fingerprint256: cert.fingerprint256 };
}

const defaultHandler: RequestHandler = (req, res) => {
  const body = JSON.stringify({
    ok: true,
    clientSubject: peerCertificate(req).subject,
    path: req.url,
    method: req.method,
    headers: req.headers,
  });
  // Drain the request body so keep-alive connections stay usable.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
};

// ---------------------------------------------------------------------------------------------
// openssl s_server

export interface OpensslServerOptions {
  certFile: string;
  keyFile: string;
  /** Intermediates sent after the leaf (`-cert_chain`). */
  chainFile?: string;
  /** Trust anchors for client certificates (`-CAfile`). */
  caFile?: string;
  /** `require`: `-Verify N -verify_return_error`; `request`: `-verify N` (a bad cert is tolerated); `none`: no CertificateRequest. */
  verify: 'require' | 'request' | 'none';
  tls: '1.2' | '1.3' | 'both';
  /**
   * Max intermediates in the client chain (the N in `-Verify N`). Depth 1 would already reject
   * leaf → two intermediates → root, which is not what a test of "rogue cert" wants.
   * @defaultValue 4
   */
  verifyDepth?: number;
  /** `false` passes `-no_ticket -num_tickets 0`: no NewSessionTicket at all, even in TLS 1.3. @defaultValue true */
  sessionTickets?: boolean;
  /** A DER OCSP response stapled to every handshake (`-status_file`). */
  statusFile?: string;
  /** More s_server options, e.g. `['-client_sigalgs', 'ECDSA+SHA256']`. */
  extraArgs?: string[];
}

export interface OpensslServer extends TestServer {
  readonly process: ChildProcess;
  /** Everything s_server wrote to stdout and stderr so far (verify errors land here). */
  output(): string;
}

/** Spawns `openssl s_server -www` on a free loopback port; resolves once it prints ACCEPT. */
export async function startOpensslServer(o: OpensslServerOptions): Promise<OpensslServer> {
  let lastError: unknown;
  // The port is chosen before openssl binds it, so another process may grab it first: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await spawnOpenssl(o, port);
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && /in use|bind/i.test(err.message))) throw err;
    }
  }
  throw lastError;
}

function opensslArgs(o: OpensslServerOptions, port: number): string[] {
  const args = ['s_server', '-accept', `${LOOPBACK}:${port}`, '-www', '-cert', o.certFile, '-key', o.keyFile];
  if (o.chainFile) args.push('-cert_chain', o.chainFile);
  if (o.caFile) args.push('-CAfile', o.caFile);
  const depth = String(o.verifyDepth ?? 4);
  if (o.verify === 'require') args.push('-Verify', depth, '-verify_return_error');
  else if (o.verify === 'request') args.push('-verify', depth);
  if (o.tls === '1.2') args.push('-tls1_2');
  else if (o.tls === '1.3') args.push('-tls1_3');
  if (o.sessionTickets === false) args.push('-no_ticket', '-num_tickets', '0');
  if (o.statusFile) args.push('-status_file', o.statusFile);
  args.push(...(o.extraArgs ?? []));
  return args;
}

function spawnOpenssl(o: OpensslServerOptions, port: number): Promise<OpensslServer> {
  const child = spawn('openssl', opensslArgs(o, port), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  return new Promise<OpensslServer>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`openssl s_server did not print ACCEPT within 10 s:\n${out}`));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      if (!settled && /^ACCEPT$/m.test(out)) {
        settled = true;
        clearTimeout(timer);
        resolve({
          process: child,
          host: LOOPBACK,
          port,
          url: `https://${LOOPBACK}:${port}`,
          output: () => out,
          close: once(() => stopChild(child, exited)),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        err.code === 'ENOENT'
          ? new Error('openssl CLI not found on PATH (apt-get install -y openssl)', { cause: err })
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`openssl s_server exited early (code ${code}, signal ${signal}):\n${out}`));
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
async function stopChild(child: ChildProcess, exited: Promise<void>, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT proxy

export interface ConnectProxyOptions {
  /** Requires `Proxy-Authorization: Basic base64(username:password)`; otherwise 407. */
  auth?: { username: string; password: string };
  /** Accepts TCP and reads the CONNECT request but never answers it. */
  stall?: boolean;
}

export interface ConnectProxy extends TestServer {
  readonly server: http.Server;
  /** CONNECT requests received (including rejected and stalled ones). */
  connects: number;
  /** Tunnels actually established to a target. */
  tunnels: number;
  /** CONNECTs answered 407. */
  rejected: number;
  /** `host:port` of every CONNECT, in order. */
  targets: string[];
  /** Raw Proxy-Authorization header of the last CONNECT. A credential: assert on it, never log it. */
  lastAuthorization: string | undefined;
}

/** An HTTP proxy that only supports CONNECT, tunnelling to any target. */
export async function startConnectProxy(o: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const server = http.createServer((_req, res) => {
    res.writeHead(501, { connection: 'close' }).end('only CONNECT is supported\n');
  });
  const tracked = trackSockets(server);
  const upstreams = new Set<net.Socket>();
  const expected = o.auth
    ? `Basic ${Buffer.from(`${o.auth.username}:${o.auth.password}`, 'utf8').toString('base64')}`
    : undefined;

  const state: ConnectProxy = {
    server,
    host: LOOPBACK,
    port: 0,
    url: '',
    connects: 0,
    tunnels: 0,
    rejected: 0,
    targets: [],
    lastAuthorization: undefined,
    close: once(async () => {
      for (const s of upstreams) s.destroy();
      await tracked.close();
    }),
  };

  server.on('connect', (req: http.IncomingMessage, client: Duplex, head: Buffer) => {
    state.connects++;
    state.targets.push(req.url ?? '');
    state.lastAuthorization = req.headers['proxy-authorization'];
    client.on('error', () => client.destroy());
    if (o.stall) return;

    if (expected !== undefined && !sameCredentials(req.headers['proxy-authorization'], expected)) {
      state.rejected++;
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\n' +
          'Proxy-Authenticate: Basic realm="svcnode-test"\r\n' +
          'Content-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }

    const target = parseAuthority(req.url);
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const upstream = net.connect(target.port, target.host);
    let established = false;
    upstreams.add(upstream);
    upstream.once('close', () => upstreams.delete(upstream));
    upstream.once('connect', () => {
      established = true;
      state.tunnels++;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => {
      if (!established) {
        client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      } else {
        client.destroy();
      }
    });
    client.once('close', () => upstream.destroy());
  });

  const port = await listen(server, 0);
  return Object.assign(state, { port, url: `http://${LOOPBACK}:${port}` });
}

function sameCredentials(received: string | undefined, expected: string): boolean {
  if (!received) return false;
  const [scheme, value] = received.trim().split(/\s+/, 2);
  return scheme?.toLowerCase() === 'basic' && `Basic ${value}` === expected;
}

function parseAuthority(authority: string | undefined): { host: string; port: number } | undefined {
  if (!authority) return undefined;
  try {
    const u = new URL(`http://${authority}`);
    const port = Number(u.port);
    if (!port) return undefined;
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Misbehaving endpoints

export interface SilentServer extends TestServer {
  readonly server: net.Server;
  /** TCP connections accepted (and then ignored). */
  connections: number;
}

/** Accepts TCP and never writes a byte: a TLS handshake that never finishes, a backend that never answers. */
export async function startSilentServer(): Promise<SilentServer> {
  const server = net.createServer();
  const tracked = trackSockets(server);
  const state: SilentServer = {
    server,
    host: LOOPBACK,
    port: 0,
    url: '',
    connections: 0,
    close: once(() => tracked.close()),
  };
  server.on('connection', (socket: net.Socket) => {
    state.connections++;
    socket.on('error', () => socket.destroy());
    socket.resume();
  });
  const port = await listen(server, 0);
  return Object.assign(state, { port, url: `https://${LOOPBACK}:${port}` });
}

export interface PlainHttpServer extends TestServer {
  readonly server: http.Server;
  requests: number;
  /** TCP connections accepted; a TLS client shows up here but never as a request. */
  connections: number;
}

/** Plain HTTP (200 "plain http"); a TLS client pointed at it fails with a not-TLS error. */
export async function startPlainHttpServer(handler?: RequestHandler): Promise<PlainHttpServer> {
  const server = http.createServer();
  const tracked = trackSockets(server);
  const state: PlainHttpServer = {
    server,
    host: LOOPBACK,
    port: 0,
    url: '',
    requests: 0,
    connections: 0,
    close: once(async () => {
      server.closeAllConnections();
      await tracked.close();
    }),
  };
  server.on('connection', () => state.connections++);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    state.requests++;
    if (handler) {
      void Promise.resolve(handler(req, res)).catch(() => res.destroy());
      return;
    }
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end('plain http\n');
  });
  const port = await listen(server, 0);
  return Object.assign(state, { port, url: `http://${LOOPBACK}:${port}` });
}

/** A loopback port with nothing listening on it (connecting gives ECONNREFUSED). */
export function unusedPort(): Promise<number> {
  return freePort();
}

/** Makes `close()` idempotent: later calls return the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
