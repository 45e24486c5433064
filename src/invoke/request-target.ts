import { bareHostname } from '../tls/endpoint.js';

/**
 * Where a request goes, in the form node:https takes it. A rendered request whose path and query
 * are already in the URL parser's normal form gets its target without a URL being parsed per
 * call: parsing the URL and turning it back into request options cost about a tenth of a
 * worker's CPU per job (npm run bench profiles). Anything else goes through `new URL`.
 */
export interface RequestTarget {
  /** The URL as the WHATWG parser serialises it. */
  href: string;
  /** `https://host[:port]`, default port omitted. */
  origin: string;
  /** `host[:port]` as in the URL (IPv6 in brackets). */
  host: string;
  /** Host name or address for the socket (IPv6 without brackets). */
  hostname: string;
  /** Port, or '' for the scheme's default. */
  port: string;
  /** Path and query. */
  path: string;
}

export function targetOf(url: URL): RequestTarget {
  return {
    href: url.href,
    origin: url.origin,
    host: url.host,
    hostname: bareHostname(url.hostname),
    port: url.port,
    path: `${url.pathname}${url.search}`,
  };
}

/** The parsed literal origin of a URL template; undefined when the parser must judge it (not https, userinfo, invalid). */
export type OriginParts = Omit<RequestTarget, 'href' | 'path'>;

export function originParts(origin: string): OriginParts | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' || url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined;
  const { origin: o, host, hostname, port } = targetOf(url);
  return { origin: o, host, hostname, port };
}

/**
 * Characters the WHATWG parser keeps as they are in the path and in the query of an https URL
 * (unreserved, sub-delimiters but `'`, `:`, `@`, `/`, `%`, and `?` in the query). A path with
 * only these, and no dot segment, serialises to itself.
 */
const NORMAL_PATH = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@/%]*$/;
const NORMAL_QUERY = /^[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*$/;
const DOT_SEGMENT_IN_PATH = /\/(?:\.|%2e){1,2}(?:\/|$)/i;

/** The target of `origin` + `rest` (path, query), when `rest` is in normal form; else undefined. */
export function normalTarget(origin: OriginParts, rest: string): RequestTarget | undefined {
  const q = rest.indexOf('?');
  const path = (q === -1 ? rest : rest.slice(0, q)) || '/';
  const query = q === -1 ? '' : rest.slice(q);
  // A lone `?` stays in the href but not in the request path: left to the parser.
  if (query === '?' || !NORMAL_PATH.test(path) || DOT_SEGMENT_IN_PATH.test(path) || (query !== '' && !NORMAL_QUERY.test(query.slice(1)))) return undefined;
  // A literal, not `{ ...origin, href, path }`: adding keys to a spread copy took V8's slow path (µs per call).
  return { origin: origin.origin, host: origin.host, hostname: origin.hostname, port: origin.port, href: `${origin.origin}${path}${query}`, path: `${path}${query}` };
}
