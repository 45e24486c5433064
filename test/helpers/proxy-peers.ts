/**
 * squid configured as bank egress proxies are: one that offers only Negotiate and NTLM (a
 * Windows-domain proxy; its auth helpers refuse every token), and one with Basic auth behind a
 * CONNECT port policy (`http_access deny CONNECT !SSL_ports`) that resolves names through a DNS
 * server of the test, which answers NXDOMAIN to every query. Each squid has its own config file
 * in a temp dir on a free loopback port. Also: a raw one-CONNECT client that shows what a peer
 * really answers, and a proxy whose 407 body never ends.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, listen, trackSockets } from './net.js';
import { requireBinary, squidBasicAuth, startSquidConfig, type Squid } from './peers.js';
import type { TestServer } from './servers.js';


function squidDir(): string {
  requireBinary('squid', 'squid');
  const dir = mkdtempSync(join(tmpdir(), 'svcnode-squid-'));
  // squid drops to its own user for helpers and logs: the directory must be theirs to use.
  chmodSync(dir, 0o777);
  return dir;
}

/**
 * squid offering only `Proxy-Authenticate: Negotiate` and `NTLM`, as a proxy joined to a Windows
 * domain does. The helper behind both schemes answers BH (broken helper) to any token, so no
 * credentials ever pass.
 */
export async function startNegotiateSquid(): Promise<Squid> {
  const dir = squidDir();
  const helper = join(dir, 'refuse-all');
  writeFileSync(helper, '#!/bin/sh\nwhile read -r line; do echo "BH no domain here"; done\n');
  chmodSync(helper, 0o755);
  return startSquidConfig(
    dir,
    () => `auth_param negotiate program ${helper}
auth_param negotiate children 1 startup=0 idle=1
auth_param ntlm program ${helper}
auth_param ntlm children 1 startup=0 idle=1
acl authed proxy_auth REQUIRED
http_access allow authed
http_access deny all
`,
  );
}

export interface PolicySquidOptions {
  username: string;
  password: string;
  /** Ports CONNECT may reach; CONNECT to any other port is refused with 403. */
  connectPorts: number[];
  /** IPv4 address of the DNS server squid asks (port 53). */
  dnsServer: string;
  /** `client_persistent_connections off`: every answer, the 407 too, closes the connection. */
  closeEachAnswer?: boolean;
}

/** squid with Basic auth after a CONNECT port policy, its DNS server given (see startNxDomainDns). */
export async function startPolicySquid(o: PolicySquidOptions): Promise<Squid> {
  const dir = squidDir();
  return startSquidConfig(
    dir,
    () => `dns_nameservers ${o.dnsServer}
dns_timeout 5 seconds
${o.closeEachAnswer ? 'client_persistent_connections off\n' : ''}acl SSL_ports port ${o.connectPorts.join(' ')}
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
${squidBasicAuth(dir, o.username, o.password)}`,
  );
}

/** The question section of a DNS query (RFC 1035 §4.1.2): the name's labels, then type and class. */
function questionEnd(query: Buffer): number {
  let at = 12;
  while (at < query.length && query[at] !== 0) at += (query[at] ?? 0) + 1;
  return at + 5;
}

/**
 * A DNS server on port 53 of a random 127.x.y.z address that answers NXDOMAIN to every query, so
 * a proxy's lookup fails at once and for certain (no dependency on this machine's resolver).
 * Port 53 needs root, as CI runs.
 */
export async function startNxDomainDns(): Promise<TestServer & { queries: number }> {
  const host = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const state = { queries: 0 };
  const socket = dgram.createSocket('udp4');
  socket.on('message', (query, peer) => {
    if (query.length < 17) return;
    state.queries++;
    const end = Math.min(questionEnd(query), query.length);
    const header = Buffer.from([query[0] ?? 0, query[1] ?? 0, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]); // QR RD RA, RCODE 3
    socket.send(Buffer.concat([header, query.subarray(12, end)]), peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    host,
    port: 53,
    url: `dns://${host}:53`,
    get queries() {
      return state.queries;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** A proxy's answer to one CONNECT, read raw, and whether the proxy closed the connection after it. */
export interface RawConnectAnswer {
  status: number;
  /** Each header's values, in order (a repeated Proxy-Authenticate is two entries). */
  headers: Record<string, string[] | undefined>;
  closedByProxy: boolean;
}

/**
 * Send one CONNECT to a proxy (no agent, no svcnode code) and report its answer, and whether the
 * proxy closed the connection within `waitMs` after answering: what a peer really does.
 */
export function connectOnce(proxyPort: number, target: string, authorization?: string, waitMs = 500): Promise<RawConnectAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: LOOPBACK, port: proxyPort, method: 'CONNECT', path: target, headers: { host: target, ...(authorization ? { 'proxy-authorization': authorization } : {}) } });
    request.once('error', reject);
    request.once('connect', (response, socket) => {
      socket.resume();
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ status: response.statusCode ?? 0, headers: response.headersDistinct, closedByProxy: false });
      }, waitMs);
      socket.once('end', () => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ status: response.statusCode ?? 0, headers: response.headersDistinct, closedByProxy: true });
      });
    });
    request.end();
  });
}

/**
 * A CONNECT proxy that answers every CONNECT with a 407 announcing a large Basic-auth error page,
 * sends a few bytes of it and then stalls with the connection open: whoever waits for the body hangs.
 */
export async function startStallingAuthProxy(): Promise<TestServer & { connections: number; open: number }> {
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    socket.on('error', () => socket.destroy());
    socket.once('data', () => socket.write('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="egress"\r\nContent-Type: text/html\r\nContent-Length: 1048576\r\n\r\n<html><body>'));
  });
  const tracked = trackSockets(server);
  const port = await listen(server, 0);
  return {
    host: LOOPBACK,
    port,
    url: `http://${LOOPBACK}:${port}`,
    get connections() {
      return state.connections;
    },
    get open() {
      return tracked.sockets.size;
    },
    close: () => tracked.close(),
  };
}

/** TCP states of a connection its client has not closed: ESTABLISHED, CLOSE_WAIT (/proc/net/tcp, include/net/tcp_states.h). */
const OPEN_STATES = new Set(['01', '08']);

/**
 * Connections to `port` on this machine that their client still holds open, read from
 * /proc/net/tcp and tcp6 (a server's own ends have the port as local port and are not counted).
 */
export function openClientConnections(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, , remote, state] = line.trim().split(/\s+/);
      if (remote?.endsWith(`:${hexPort}`) && state !== undefined && OPEN_STATES.has(state)) n++;
    }
  }
  return n;
}
