/**
 * The TLS front ends banks put before their APIs, as mTLS backends with their own config files in
 * a temp dir on free loopback ports: haproxy (`verify required`, `verify optional` with an ACL
 * answering 403 without a certificate, and `shortIdle`: idle connections closed after 1.5 s without
 * a Keep-Alive header), plus `tcpNoServer` (TCP mode, its only server down), and Apache mod_ssl (`SSLVerifyClient require` inside
 * a `<Location>`, which asks for the certificate by TLS 1.2 renegotiation, or by TLS 1.3
 * post-handshake authentication). Each logs its own verdict on the client certificate. Plus a
 * Node server standing in for `verify optional` + ACL where haproxy cannot limit the client
 * signature algorithms.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, freePort, listen, trackSockets, waitFor } from './net.js';
import { portOpen, stop } from './peers.js';
import type { TestServer } from './servers.js';

/** Whether a binary is on PATH (a missing peer skips its tests, with the reason in their title). */
export function installed(binary: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function spawnDaemon(name: string, cmd: string, args: string[], ports: number[]): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const early = new Promise<never>((_resolve, reject) => child.once('exit', (code) => reject(new Error(`${name} exited early (code ${code}):\n${out}`))));
  early.catch(() => undefined);
  await Promise.race([waitFor(async () => (await Promise.all(ports.map(portOpen))).every(Boolean), 10_000, 50, `${name} listening on ${ports.join(', ')}`), early]);
  return { child, output: () => out };
}

/** A gateway with several front ends; `port` and `url` are those of the first. */
export interface Gateway extends TestServer {
  /** Named ports of the gateway's front ends. */
  ports: Record<string, number>;
  /** What the gateway logged so far. */
  log(): string;
}

function gateway(ports: Record<string, number>, log: () => string, close: () => Promise<void>): Gateway {
  const port = Object.values(ports)[0] ?? 0;
  return { host: LOOPBACK, port, url: `https://${LOOPBACK}:${port}`, ports, log, close };
}

/**
 * haproxy with two front ends on one server certificate (`certKeyFile`: chain and key in one
 * PEM) and one client CA: `required` (`verify required`) and `optional` (`verify optional`, 403
 * unless a verified certificate was used). Each request is logged as
 * `<frontend> used=<ssl_c_used> err=<ssl_c_err> verify=<ssl_c_verify> <status> "<request>"`;
 * a refused handshake as haproxy's own line ("SSL client certificate not trusted", …).
 */
export function startHaproxy(o: { certKeyFile: string; caFile: string }): Promise<Gateway> {
  return retryOnBusyPort(() => spawnHaproxy(o));
}

/** The ports are chosen before the daemon binds them, so another process may take one first: try again then. */
async function retryOnBusyPort(start: () => Promise<Gateway>): Promise<Gateway> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === 3 || !/in use|cannot bind|could not bind|unable to bind/i.test(String(error))) throw error;
    }
  }
}

async function spawnHaproxy(o: { certKeyFile: string; caFile: string }): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-haproxy-'));
  const ports = { required: await freePort(), optional: await freePort(), shortIdle: await freePort(), tcpNoServer: await freePort() };
  const frontend = (name: string, port: number, verify: string, rules: string): string => `frontend ${name}
  bind ${LOOPBACK}:${port} ssl crt ${o.certKeyFile} ca-file ${o.caFile} verify ${verify}
  log-format "${name} used=%[ssl_c_used] err=%[ssl_c_err] verify=%[ssl_c_verify] %ST %{+Q}r"
${rules}  http-request return status 200 content-type application/json string "{\\"ok\\":true}"
`;
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(
    conf,
    `global
  log stdout format raw local0
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 5s
  timeout server 5s
${frontend('required', ports.required, 'required', '')}${frontend('optional', ports.optional, 'optional', '  http-request deny deny_status 403 unless { ssl_c_used } { ssl_c_verify 0 }\n')}${frontend('shortIdle', ports.shortIdle, 'required', '  timeout http-keep-alive 1500\n')}
# TCP mode (a port-forward, a Kubernetes Service) whose only server is down: it accepts, then closes.
frontend tcpNoServer
  mode tcp
  bind ${LOOPBACK}:${ports.tcpNoServer}
  default_backend down
backend down
  mode tcp
  retries 0
  server s1 ${LOOPBACK}:1
`,
  );
  const { child, output } = await spawnDaemon('haproxy', 'haproxy', ['-db', '-f', conf], Object.values(ports)).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return gateway(ports, output, async () => {
    await stop(child);
    await rm(dir, { recursive: true, force: true });
  });
}

const MODULES = '/usr/lib/apache2/modules';

/**
 * Apache httpd (Debian's apache2) with mod_ssl and three virtual hosts on one server certificate:
 * `tls12` (TLS 1.2 only), `tls13` (TLS 1.2 and 1.3) and `rsaOnly` (TLS 1.2, client signature
 * algorithms RSA-PSS+SHA256 and RSA+SHA256 only). Each serves `/index.json` to anyone and
 * `/secure/index.json` under `SSLVerifyClient require`: the first handshake asks for no
 * certificate, the request for /secure makes Apache ask for one. The access log has
 * `<request> <status> verify=<SSL_CLIENT_VERIFY> dn=<SSL_CLIENT_S_DN>`, the error log mod_ssl's reasons.
 */
export function startApache(o: { certFile: string; keyFile: string; caFile: string }): Promise<Gateway> {
  return retryOnBusyPort(() => spawnApache(o));
}

async function spawnApache(o: { certFile: string; keyFile: string; caFile: string }): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-apache-'));
  // Apache's workers run as nobody: they must reach the documents (keys are read by the root parent).
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'htdocs', 'secure'), { recursive: true });
  writeFileSync(join(dir, 'htdocs', 'index.json'), '{"ok":true}\n');
  writeFileSync(join(dir, 'htdocs', 'secure', 'index.json'), '{"ok":true,"secure":true}\n');
  const ports = { tls12: await freePort(), tls13: await freePort(), rsaOnly: await freePort() };
  const vhost = (port: number, protocols: string, extra = ''): string => `Listen ${LOOPBACK}:${port}
<VirtualHost ${LOOPBACK}:${port}>
  DocumentRoot ${dir}/htdocs
  SSLEngine on
  SSLProtocol -all ${protocols}
${extra}  SSLCertificateFile ${o.certFile}
  SSLCertificateKeyFile ${o.keyFile}
  SSLCACertificateFile ${o.caFile}
  <Directory ${dir}/htdocs>
    Require all granted
  </Directory>
  <Location /secure>
    SSLVerifyClient require
    SSLVerifyDepth 3
  </Location>
</VirtualHost>
`;
  const conf = join(dir, 'httpd.conf');
  writeFileSync(
    conf,
    `ServerRoot ${dir}
ServerName localhost
PidFile ${dir}/httpd.pid
DefaultRuntimeDir ${dir}
Mutex file:${dir} default
LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule socache_shmcb_module ${MODULES}/mod_socache_shmcb.so
LoadModule ssl_module ${MODULES}/mod_ssl.so
LoadModule mime_module ${MODULES}/mod_mime.so
TypesConfig /dev/null
AddType application/json .json
User nobody
Group nogroup
ErrorLog ${dir}/error.log
LogLevel warn ssl:info
LogFormat "%r %>s verify=%{SSL_CLIENT_VERIFY}x dn=%{SSL_CLIENT_S_DN}x" plain
CustomLog ${dir}/access.log plain
SSLSessionCache shmcb:${dir}/ssl_scache(512000)
KeepAlive On
${vhost(ports.tls12, '+TLSv1.2')}${vhost(ports.tls13, '+TLSv1.2 +TLSv1.3')}${vhost(ports.rsaOnly, '+TLSv1.2', '  SSLOpenSSLConfCmd ClientSignatureAlgorithms RSA-PSS+SHA256:RSA+SHA256\n')}`,
  );
  const read = (name: string): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const { child } = await spawnDaemon('apache2', 'apache2', ['-f', conf, '-DFOREGROUND'], Object.values(ports)).catch(async (error: unknown) => {
    const log = read('error.log');
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${String(error)}\n${log}`, { cause: error });
  });
  return gateway(ports, () => `${read('access.log')}${read('error.log')}`, async () => {
    await stop(child);
    await rm(dir, { recursive: true, force: true });
  });
}

export interface AclServer extends TestServer {
  /** Per request: whether the client presented a certificate. */
  certificates: boolean[];
}

/**
 * What haproxy's `verify optional` with an ACL does, with the signature algorithms of its
 * CertificateRequest limited to `sigalgs`: a Node server that asks for a certificate, lets the
 * handshake through without one, and answers 403 unless a verified certificate came.
 */
export async function startAclServer(o: { key: string; cert: string; ca: string; sigalgs: string }): Promise<AclServer> {
  const certificates: boolean[] = [];
  const server = https.createServer({ key: o.key, cert: o.cert, ca: o.ca, requestCert: true, rejectUnauthorized: false, sigalgs: o.sigalgs }, (req, res) => {
    const socket = req.socket as TLSSocket;
    certificates.push(socket.getPeerCertificate().subject !== undefined);
    res.writeHead(socket.authorized ? 200 : 403, { 'content-type': 'text/plain' });
    res.end(socket.authorized ? 'ok' : 'forbidden');
  });
  const sockets = trackSockets(server);
  const port = await listen(server, 0);
  return { host: LOOPBACK, port, url: `https://${LOOPBACK}:${port}`, certificates, close: () => sockets.close() };
}
