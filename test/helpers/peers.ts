/**
 * Independent real peers for integration tests, each with its own config file in a temp dir on a
 * free loopback port: nginx as an mTLS backend, squid as a CONNECT proxy with basic auth, and a
 * TLS-terminating CONNECT proxy (Node's TLS stack on the proxy hop, so the CONNECT request and
 * its credentials can be checked to be encrypted). A missing binary fails the test: CI installs
 * nginx and squid (.ci/run).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { LOOPBACK, freePort, listen, trackSockets, waitFor } from './net.js';
import { startConnectProxy, type ConnectProxy, type TestServer } from './servers.js';

export function requireBinary(name: string, path: string): void {
  try {
    execFileSync(path, ['-v'], { stdio: 'ignore' });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${name} is not installed (apt-get install -y ${name}; .ci/run does this)`, { cause });
  }
}

/** Whether something accepts TCP connections on the loopback port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, LOOPBACK);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** Spawn a daemon in the foreground and wait until its port accepts TCP. */
export async function spawnPeer(name: string, cmd: string, args: string[], port: number, log: () => string): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const early = new Promise<never>((_resolve, reject) => child.once('exit', (code) => reject(new Error(`${name} exited early (code ${code}):\n${out}\n${log()}`))));
  early.catch(() => undefined);
  await Promise.race([waitFor(() => portOpen(port), 10_000, 50, `${name} listening on ${port}`), early]);
  return child;
}

export interface NginxOptions {
  /** PEM files: the server certificate chain and key, and the CA that verifies client certificates. */
  certFile: string;
  keyFile: string;
  clientCaFile: string;
  /** A DER OCSP response stapled from a file (`ssl_stapling_file`): no responder is contacted. `certFile` must hold the issuer too. */
  stapleFile?: string;
  /** More directives for the server block, e.g. `ssl_conf_command ClientSignatureAlgorithms …;`. */
  serverConf?: string;
  /** A default server beside it (same certificate, no client certificate asked) that answers 404 to requests whose Host is not `localhost`: name-based routing. */
  hostRouting?: boolean;
}

export interface Nginx extends TestServer {
  /** Requests logged so far for a path prefix (from nginx's own access log). */
  requests(pathPrefix?: string): number;
}

/**
 * nginx as an mTLS backend: `ssl_verify_client on`, gzip on; `/json` answers JSON, `/loop`
 * redirects to itself forever, `/gzip-raw` answers a body nginx gzips itself.
 */
export async function startNginx(o: NginxOptions): Promise<Nginx> {
  requireBinary('nginx', 'nginx');
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  const port = await freePort();
  const accessLog = join(dir, 'access.log');
  writeFileSync(accessLog, '');
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  log_format plain '$request_uri $status $connection';
  access_log ${accessLog} plain;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen ${LOOPBACK}:${port} ssl;
    server_name localhost;
    ssl_certificate ${o.certFile};
    ssl_certificate_key ${o.keyFile};
    ssl_client_certificate ${o.clientCaFile};
    ssl_verify_client on;
    ssl_verify_depth 3;
${o.stapleFile ? `    ssl_stapling on;\n    ssl_stapling_file ${o.stapleFile};\n` : ''}${o.serverConf ? `    ${o.serverConf}\n` : ''}    gzip on;
    gzip_min_length 0;
    gzip_types application/json text/plain;
    location /json { default_type application/json; return 200 '{"ok":true,"client":"$ssl_client_s_dn","padding":"${'x'.repeat(200)}"}'; }
    location /loop { return 302 /loop; }
  }
${
  o.hostRouting
    ? `  server {
    listen ${LOOPBACK}:${port} ssl default_server;
    server_name _;
    ssl_certificate ${o.certFile};
    ssl_certificate_key ${o.keyFile};
    location / { return 404; }
  }
`
    : ''
}}
`,
  );
  const child = await spawnPeer('nginx', 'nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], port, () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  });
  return {
    host: LOOPBACK,
    port,
    url: `https://${LOOPBACK}:${port}`,
    requests: (prefix = '/') =>
      readFileSync(accessLog, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith(prefix)).length,
    close: async () => {
      await stop(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Squid extends TestServer {
  /** CONNECT lines squid logged so far (TCP_TUNNEL = tunnel opened, TCP_DENIED = refused). */
  accessLog(): string;
}

/** squid as a CONNECT proxy requiring basic auth (basic_ncsa_auth over an htpasswd made with `openssl passwd`). */
export async function startSquid(o: { username: string; password: string }): Promise<Squid> {
  requireBinary('squid', 'squid');
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-squid-'));
  // squid drops to its own user for helpers and logs: the directory must be theirs to use.
  chmodSync(dir, 0o777);
  return startSquidConfig(dir, () => squidBasicAuth(dir, o.username, o.password));
}

/** squid config lines that require Basic auth of one user (basic_ncsa_auth over an htpasswd in `dir`), then deny the rest. */
export function squidBasicAuth(dir: string, username: string, password: string): string {
  const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: `${password}\n` }).toString().trim();
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${username}:${hash}\n`);
  chmodSync(htpasswd, 0o644);
  return `auth_param basic program /usr/lib/squid/basic_ncsa_auth ${htpasswd}
auth_param basic children 1 startup=1 idle=1
auth_param basic realm svcnode-test
acl authed proxy_auth REQUIRED
http_access allow authed
http_access deny all
`;
}

/** A squid started from `config` (the lines after http_port, pid and logs); `dir` holds its files. */
export async function startSquidConfig(dir: string, config: (port: number) => string): Promise<Squid> {
  const accessLog = join(dir, 'access.log');
  writeFileSync(accessLog, '');
  chmodSync(accessLog, 0o666);
  const port = await freePort();
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    `http_port ${LOOPBACK}:${port}
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log stdio:${accessLog}
cache deny all
cache_mem 8 MB
coredump_dir ${dir}
netdb_filename none
shutdown_lifetime 0 seconds
${config(port)}`,
  );
  const child = await spawnPeer('squid', 'squid', ['-N', '-f', conf], port, () => {
    try {
      return readFileSync(join(dir, 'cache.log'), 'utf8');
    } catch {
      return '';
    }
  });
  return {
    host: LOOPBACK,
    port,
    url: `http://${LOOPBACK}:${port}`,
    accessLog: () => readFileSync(accessLog, 'utf8'),
    close: async () => {
      await stop(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TlsProxy extends TestServer {
  /** The CONNECT proxy behind the TLS front: counts, targets, last Proxy-Authorization. */
  inner: ConnectProxy;
  /** Every byte received on the proxy's port before TLS is removed: must all be TLS records. */
  rawBytes(): Buffer;
  /** Completed TLS handshakes with the proxy. */
  handshakes: number;
}

/**
 * An `https://` CONNECT proxy: TLS on the proxy hop (certificate given), in front of a plain
 * CONNECT proxy. Records the raw bytes the client sent, to prove nothing travels in plaintext.
 */
export async function startTlsConnectProxy(o: { key: string; cert: string; auth?: { username: string; password: string } }): Promise<TlsProxy> {
  const inner = await startConnectProxy(o.auth ? { auth: o.auth } : {});
  const chunks: Buffer[] = [];
  const state = { handshakes: 0 };
  // TLS terminates here and the plaintext CONNECT goes on to the inner proxy.
  const front = tls.createServer({ key: o.key, cert: o.cert }, (secure) => {
    state.handshakes++;
    const upstream = net.connect(inner.port, LOOPBACK);
    upstream.on('error', () => secure.destroy());
    secure.on('error', () => upstream.destroy());
    secure.pipe(upstream).pipe(secure);
    secure.once('close', () => upstream.destroy());
  });
  front.on('tlsClientError', () => undefined);
  const frontTracked = trackSockets(front);
  const frontPort = await listen(front, 0);
  // The public port only relays TCP, recording every byte the client sent as it was on the wire.
  const server = net.createServer((raw) => {
    const relay = net.connect(frontPort, LOOPBACK);
    raw.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
    raw.on('error', () => relay.destroy());
    relay.on('error', () => raw.destroy());
    raw.pipe(relay).pipe(raw);
    raw.once('close', () => relay.destroy());
  });
  const tracked = trackSockets(server);
  const port = await listen(server, 0);
  return {
    host: LOOPBACK,
    port,
    url: `https://${LOOPBACK}:${port}`,
    inner,
    rawBytes: () => Buffer.concat(chunks),
    get handshakes() {
      return state.handshakes;
    },
    close: async () => {
      await tracked.close();
      await frontTracked.close();
      await inner.close();
    },
  };
}

/** A plain TCP listener that only counts connections and bytes (the proxy's would-be plaintext port). */
export async function startByteCounter(port: number): Promise<TestServer & { connections: number; bytes: number }> {
  const state = { connections: 0, bytes: 0 };
  const server = net.createServer((s) => {
    state.connections++;
    s.on('data', (c: Buffer) => (state.bytes += c.length));
    s.on('error', () => s.destroy());
  });
  const tracked = trackSockets(server);
  const bound = await listen(server, port);
  return {
    host: LOOPBACK,
    port: bound,
    url: `http://${LOOPBACK}:${bound}`,
    get connections() {
      return state.connections;
    },
    get bytes() {
      return state.bytes;
    },
    close: () => tracked.close(),
  };
}
