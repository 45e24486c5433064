import { isIP } from 'node:net';

/** A URL's hostname as net and tls take it: an IPv6 literal without its brackets. */
export function bareHostname(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '');
}

/** Where a TLS connection for an https origin goes. */
export interface TlsEndpoint {
  host: string;
  /** The URL's port, 443 when it has none. */
  port: number;
  /** SNI: the node's `tls.servername`, else the host name; never an IP address (RFC 6066). */
  servername: string | undefined;
}

/** The host, port and SNI name of a connection to `origin` (a URL or anything with its hostname and port). */
export function tlsEndpoint(origin: { hostname: string; port: string }, servername?: string): TlsEndpoint {
  const host = bareHostname(origin.hostname);
  return { host, port: Number(origin.port || 443), servername: servername ?? (isIP(host) === 0 ? host : undefined) };
}

/** A host as the authority of a CONNECT request takes it: an IPv6 literal in brackets (RFC 9110). */
export function authorityHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** Where a proxy URL points, for the CONNECT request (`hostname` without IPv6 brackets, so it resolves). */
export interface ProxyLocation {
  protocol: string;
  hostname: string;
  port: string;
  username: string;
  password: string;
}

/** The proxy of `proxy.url`: its IPv6 literal unbracketed, which http.request needs; credentials as written. */
export function proxyLocation(proxyUrl: string): ProxyLocation {
  const url = new URL(proxyUrl);
  return { protocol: url.protocol, hostname: bareHostname(url.hostname), port: url.port, username: url.username, password: url.password };
}

/**
 * proxy.url's userinfo percent-decoded, or undefined without one: what the Basic
 * Proxy-Authorization carries and what messages must mask (loading checked that it decodes).
 */
export function proxyCredentials(proxyUrl: string): { password: string; pair: string } | undefined {
  const url = new URL(proxyUrl);
  if (!url.username && !url.password) return undefined;
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  return { password, pair: `${user}:${password}` };
}
