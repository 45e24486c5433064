import { isIP } from 'node:net';
import { InvalidInputError } from '../errors.js';
import { bareHostname } from '../tls/endpoint.js';
import { cidrBlock } from '../tls/proxy-settings.js';
import { isFormType, isJsonType, isMultipartType, jsonSlots, mediaTypeOf, multipartBoundary } from '../invoke/render.js';
import type { NodeDefinition } from './types.js';

/** Longest DNS name getaddrinfo accepts (longer ones fail with EINVAL at call time). */
const MAX_HOST_NAME = 253;

const PROXY_CREDENTIALS_HINT = 'percent-encode special characters in the proxy credentials (# → %23, / → %2F, ? → %3F, % → %25, @ → %40)';

function invalid(file: string, field: string, reason: string, hint: string): InvalidInputError {
  return new InvalidInputError('SVCNODE_INVALID_DEFINITION', `${file}: invalid node definition:\n  ${field}: ${reason}`, { file, field, hint });
}

/** Whether percent-decoding `text` would fail ("URI malformed" at call time). */
function undecodable(text: string): boolean {
  try {
    decodeURIComponent(text);
    return false;
  } catch {
    return true;
  }
}

/**
 * proxy.url must parse exactly as written: an unencoded `#`, `?` or `/` in the password cuts the
 * userinfo (the URL then names another host, or none), a stray `%` cannot be decoded. Messages
 * never repeat the URL: it carries the proxy password.
 */
function checkProxyUrl(raw: string, file: string): void {
  const field = '/proxy/url';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(file, field, 'is not a valid URL (a special character in the credentials, or a port outside 1–65535?)', PROXY_CREDENTIALS_HINT);
  }
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || (raw.includes('@') && url.username === '' && url.password === '')) {
    throw invalid(file, field, 'must be scheme://[user:password@]host[:port] with nothing after the port; an unencoded #, ? or / in the credentials cuts the URL short', PROXY_CREDENTIALS_HINT);
  }
  if (undecodable(url.username) || undecodable(url.password)) {
    throw invalid(file, field, 'the credentials contain a % that does not start a percent-encoded byte', PROXY_CREDENTIALS_HINT);
  }
  if (url.port === '0') throw invalid(file, field, 'the port must be 1–65535', 'fix the proxy port');
}

/**
 * proxy.noProxy entries with a `/` are CIDR blocks, or nothing that could ever match (a URL, a
 * path, a prefix length the family does not have): refused instead of silently never matching.
 */
function checkNoProxy(entries: readonly string[], file: string): void {
  entries.forEach((entry, i) => {
    if (entry.includes('/') && cidrBlock(entry) === undefined) {
      throw invalid(file, `/proxy/noProxy/${i}`, `"${entry.slice(0, 100)}" is neither a host nor a CIDR block (address/prefix, prefix up to 32 for IPv4 and 128 for IPv6), so it could never match`, 'write a host name (api.example), a domain (.example), host:port, a CIDR block (10.0.0.0/8, fd00::/8) or *');
    }
  });
}

/** request.url's literal origin must parse, and its host name be one DNS can look up. */
function checkRequestOrigin(raw: string, file: string): void {
  const field = '/request/url';
  const origin = /^https:\/\/[^/?#]+/.exec(raw)?.[0];
  if (origin === undefined) return; // the schema has refused it already
  // The URL parser reads `\` in an https path as `/`, rendering splits the path at `/`: `v1\{{context.a}}` let ".." move it.
  const path = raw.slice(origin.length).split(/[?#]/, 1)[0] ?? '';
  if (path.includes('\\')) {
    throw invalid(file, field, 'the path holds a backslash, which URL parsers read as "/" (a context value ".." next to it would move the path)', 'write "/" to separate path segments, or "%5C" for a literal backslash');
  }
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw invalid(file, field, `the origin "${origin}" is not a valid URL (check the host name and that the port is 1–65535)`, 'write the origin as https://host[:port]');
  }
  if (url.port === '0') throw invalid(file, field, 'the port must be 1–65535', 'fix the port of request.url');
  if (url.hostname.length > MAX_HOST_NAME) {
    throw invalid(file, field, `the host name is ${url.hostname.length} characters long; DNS names have at most ${MAX_HOST_NAME}`, 'fix the host name of request.url');
  }
}

/**
 * Headers that frame the message or the connection: svcnode writes them itself. One from the
 * definition would go out beside svcnode's own (Transfer-Encoding with Content-Length is the
 * request-smuggling ambiguity RFC 9112 forbids), or describe a body that is not sent.
 */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

/**
 * Headers that gateways and reverse proxies trust to pick the virtual host or path (Spring's
 * ForwardedHeaderFilter, IIS URL Rewrite, Symfony's trusted proxies): a value from the context
 * would let an invocation choose the backend, which only the definition may (the origin rule).
 */
const ROUTING_HEADERS = new Set(['forwarded', 'x-forwarded-host', 'x-forwarded-server', 'x-forwarded-prefix', 'x-host', 'x-original-host', 'x-original-url', 'x-rewrite-url', 'x-http-host-override']);

function checkRequestHeaders(headers: Record<string, string> | undefined, file: string): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (ROUTING_HEADERS.has(lower) && value.includes('{{')) {
      throw invalid(file, `/request/headers/${name}`, 'takes a value from the invocation context, and gateways that trust it route by it: the context would pick the backend', `write "${name}" as a fixed value, or remove it; what the call reaches must come from the definition`);
    }
    // Gateways and load balancers route by Host: one from the definition (or the context) would call another backend than request.url names.
    if (lower === 'host') {
      throw invalid(file, `/request/headers/${name}`, 'would send the request to the virtual host it names, which request.url does not show (gateways route by Host)', `remove "${name}" from request.headers: put the host in request.url (svcnode sends it as Host), and use tls.servername for another SNI name`);
    }
    if (!FRAMING_HEADERS.has(lower)) continue;
    throw invalid(file, `/request/headers/${name}`, 'frames the message or the connection, which svcnode does itself (Content-Length from the rendered body, kept-alive connections per origin)', `remove "${name}" from request.headers`);
  }
}

/**
 * A body its content type cannot carry safely: an array under a form type (its JSON text would go
 * out labelled as a form, "&" and "=" in it read as fields), a JSON text whose template follows a
 * backslash inside a string (the value would complete the escape).
 */
function checkBody(request: NodeDefinition['request'], file: string): void {
  let contentType: string | undefined;
  let headerName = 'content-type';
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (name.toLowerCase() !== 'content-type') continue;
    contentType = value;
    headerName = name;
  }
  if (contentType === undefined || request.body === undefined) return;
  const type = mediaTypeOf(contentType);
  if (isMultipartType(type)) {
    if (typeof request.body !== 'string') {
      throw invalid(file, '/request/body', `is ${Array.isArray(request.body) ? 'an array' : 'a JSON value'}, which would go out as JSON text labelled ${type}`, `write request.body as the ${type} text itself (parts between --boundary lines), or send JSON with content-type application/json`);
    }
    if (!contentType.includes('{{') && multipartBoundary(contentType) === undefined) {
      throw invalid(file, `/request/headers/${headerName}`, `${type} needs a boundary parameter: without one no server can find the parts`, `write it as "${type}; boundary=…" with the boundary request.body uses`);
    }
  }
  if (isFormType(type) && Array.isArray(request.body)) {
    throw invalid(file, '/request/body', `is an array, which cannot be sent as ${type} fields`, 'write request.body as an object of fields, or send JSON with content-type application/json');
  }
  if (typeof request.body === 'string' && isJsonType(type) && jsonSlots(request.body).includes('escape')) {
    throw invalid(file, '/request/body', 'has a template right after a backslash inside a JSON string', 'remove the backslash: svcnode JSON-escapes values placed inside quotes; or write request.body as a JSON object');
  }
}

/** Addresses, headers and a body of a node that would only fail (or go wrong) at call time: refused at load instead. */
export function checkAddresses(node: NodeDefinition, file: string): void {
  checkRequestOrigin(node.request.url, file);
  checkRequestHeaders(node.request.headers, file);
  if (node.request.body !== undefined && (node.request.method === 'GET' || node.request.method === 'HEAD')) {
    throw invalid(file, '/request/body', `is never sent with ${node.request.method} (it would be dropped without a word)`, 'remove request.body, or use the method the backend takes a body with (POST, PUT, PATCH)');
  }
  checkBody(node.request, file);
  if (node.proxy) {
    checkProxyUrl(node.proxy.url, file);
    checkNoProxy(node.proxy.noProxy ?? [], file);
  }
  const servername = node.tls.servername;
  if (servername !== undefined && isIP(bareHostname(servername)) !== 0) {
    // Node sends it all the same (with a deprecation warning it says it will stop honouring), and strict servers abort the handshake.
    throw invalid(file, '/tls/servername', `is an IP address, which TLS may not send as a server name (RFC 6066)`, 'leave tls.servername unset: a URL with an IP address is verified against the certificate\'s IP addresses; set it only to a DNS name the backend serves');
  }
}
