import http from 'node:http';
import https from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { ProxyError } from '../errors.js';
import { proxyCredentials, proxyLocation } from './endpoint.js';
import { proxyError, type ProxyStage } from './proxy-error.js';
import type { ProxyAnswer } from './proxy-refusal.js';
import { sharedLookup } from './lookup.js';

/** The proxy hop of a node: `proxy.url` (credentials in its userinfo) and the trust of an https:// proxy. */
export interface ProxyHop {
  proxyUrl: string;
  proxyTls?: { context: SecureContext };
  /** Ask the proxy to keep the connection (pooled agents); a one-off probe asks it to close. */
  keepAlive: boolean;
}

/**
 * Open a CONNECT tunnel to `host:port` (an IPv6 host in brackets) through the node's proxy: TLS to
 * an https:// proxy, Basic credentials from proxy.url, no answer within `timeoutMs` (0: none) is a
 * timeout. Any other answer than 200 is a ProxyError built from what the proxy said (status line,
 * Proxy-Authenticate, X-Squid-Error); the socket of a refused CONNECT is destroyed, its body unread.
 */
export function openTunnel(hop: ProxyHop, host: string, port: number, timeoutMs: number, done: (error: ProxyError | null, socket?: Socket) => void): void {
  const proxy = proxyLocation(hop.proxyUrl);
  const credentials = proxyCredentials(hop.proxyUrl);
  const authorization = credentials && `Basic ${Buffer.from(credentials.pair).toString('base64')}`;
  const target = `${host}:${port}`;
  let settled = false;
  const finish = (error: ProxyError | null, socket?: Socket): void => {
    if (settled) {
      socket?.destroy();
      return;
    }
    settled = true;
    done(error, socket);
  };
  const fail = (raw: Error, answer?: ProxyAnswer): void => finish(proxyError(raw, hop.proxyUrl, timeoutMs, answer));

  const options: https.RequestOptions = {
    method: 'CONNECT',
    host: proxy.hostname,
    port: proxy.port,
    path: target,
    setHost: false,
    headers: { host: target, connection: hop.keepAlive ? 'keep-alive' : 'close', ...(authorization ? { 'proxy-authorization': authorization } : {}) },
    agent: false,
    timeout: timeoutMs,
    lookup: sharedLookup,
    // The proxy's own TLS: a prebuilt context (nothing to throw here), SNI unless the proxy is an IP.
    ...(hop.proxyTls ? { secureContext: hop.proxyTls.context } : {}),
    ...(proxy.protocol === 'https:' && isIP(proxy.hostname) === 0 ? { servername: proxy.hostname } : {}),
  };
  const request = (proxy.protocol === 'https:' ? https : http).request(options);
  const quiet = (): void => {
    request.removeAllListeners();
    request.on('error', () => undefined);
  };
  request.once('connect', (response: http.IncomingMessage, socket: Socket, head: Buffer) => {
    quiet();
    socket.removeAllListeners();
    socket.setTimeout(0);
    const status = response.statusCode ?? 0;
    if (status === 200) {
      if (head.length > 0) socket.unshift(head);
      finish(null, socket);
      return;
    }
    // Nothing more is read from a refused CONNECT: its body (an error page) and the connection go.
    socket.destroy();
    fail(new Error(`Bad response: ${status}`), {
      status,
      statusText: response.statusMessage ?? '',
      challenges: response.headersDistinct['proxy-authenticate'] ?? [],
      squidError: response.headersDistinct['x-squid-error']?.[0],
      credentialsSent: authorization !== undefined,
      target,
    });
  });
  // How far the hop got when time ran out: the proxy's name looked up, its port connected.
  let stage: ProxyStage = isIP(proxy.hostname) === 0 ? 'lookup' : 'connect';
  request.once('socket', (socket: Socket) => {
    socket.once('lookup', () => {
      if (stage === 'lookup') stage = 'connect';
    });
    socket.once('connect', () => {
      stage = 'answer';
    });
  });
  request.once('timeout', () => request.destroy(Object.assign(new Error('Proxy timeout'), { stage, target })));
  request.once('error', (error) => {
    quiet();
    fail(error);
  });
  request.end();
}
