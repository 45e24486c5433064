import type { NodeDefinition, OAuth2ClientCredentialsAuth } from '../definitions/types.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool } from '../tls/agents.js';
import type { OAuth2AuthReport as AuthReport } from './auth-report.js';
import { exchange, type Exchange } from './exchange.js';
import type { Failure } from './result.js';
import { authStepFailure, endpointFailedHint } from './retry.js';
import { callSettings } from './settings.js';

/** The token endpoint a node uses, and where it was found. */
export interface TokenEndpoint {
  url: string;
  source: Exclude<AuthReport['endpointSource'], 'discovery'>;
  /** The authorization server metadata document it was read from (issuer nodes). */
  metadataUrl?: string;
  /** The metadata request, when this call made it (its connection may carry the token request and the call). */
  exchange?: Exchange;
}

/** Discovery that found no token endpoint: the metadata URL asked last and the status it answered (null: no answer). */
export interface DiscoveryFailure {
  failure: Failure;
  exchange?: Exchange;
  metadataUrl: string;
  status: number | null;
}

export type Discovered = TokenEndpoint | DiscoveryFailure;

/** Metadata is fetched once per (profile material, issuer) and process; failures are not remembered. */
const discovered = new Map<string, TokenEndpoint>();
const MAX_ISSUERS = 256;

/** OpenID Connect's location first, then RFC 8414's (path inserted after the well-known prefix). */
function metadataUrls(issuer: string): URL[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [new URL(`${url.origin}${path}/.well-known/openid-configuration`), new URL(`${url.origin}/.well-known/oauth-authorization-server${path}`)];
}

function discoveryFailure(issuer: string, message: string, hint: string, code = 'SVCNODE_DISCOVERY_FAILED', category: Failure['category'] = 'http_status'): Failure {
  return { phase: 'auth', category, code, message: `authorization server metadata of ${issuer}: ${message}`, hint };
}

/**
 * The metadata request failed on its way (connect, TLS, timeout): phase auth like every failure of
 * the token step (the node's own request was not made), but one on the way to a proxy, and a hint
 * about the authorization server, not the node's backend.
 */
function metadataFetchFailed(f: Failure, issuer: string, url: URL): Failure {
  const failure = authStepFailure(f, `authorization server metadata at ${url.href}: ${f.message}`, 'the authorization server', 'check auth.issuer (scheme, host, port), or set auth.tokenUrl to the token endpoint instead of discovering it');
  return failure.phase === 'proxy' ? failure : { ...failure, hint: `the authorization server of issuer ${issuer} (auth.issuer): ${failure.hint}` };
}

/** Longest discovered endpoint taken, as for auth.tokenUrl: every Result of the node reports it. */
const MAX_ENDPOINT_CHARS = 2048;

/** Why a discovered endpoint breaks the rules of auth.tokenUrl (https, no userinfo, query or fragment, at most 2 KiB), or undefined. */
function endpointFault(value: string): string | undefined {
  if (value.length > MAX_ENDPOINT_CHARS) return `is ${value.length} characters long (at most ${MAX_ENDPOINT_CHARS})`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'https:') return 'is not https';
  if (url.username !== '' || url.password !== '') return 'has user:password@';
  if (value.includes('?') || value.includes('#')) return 'has a query or fragment';
  // The URL parser drops tabs and newlines that the value as written still holds.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  if (/[\s\u0000-\u001f\u007f]/.test(value)) return 'has spaces or control characters';
  return undefined;
}

/** Judge one metadata document: the issuer must be ours (RFC 8414 §3.3), the endpoint usable as auth.tokenUrl. */
function fromMetadata(issuer: string, doc: Record<string, unknown>, metadataUrl: string, exchanged: Exchange): Discovered {
  if (doc.issuer !== issuer) {
    return {
      failure: discoveryFailure(issuer, `the metadata names issuer ${JSON.stringify(String(doc.issuer)).slice(0, 200)}, not ${issuer}`, 'set auth.issuer to the exact issuer identifier of the authorization server (scheme, host, path, trailing slash); a mismatch can also mean the metadata was served by another server', 'SVCNODE_ISSUER_MISMATCH', 'server_identity_mismatch'),
      exchange: exchanged,
      metadataUrl,
      status: 200,
    };
  }
  const aliases = doc.mtls_endpoint_aliases;
  const alias = aliases !== null && typeof aliases === 'object' ? (aliases as Record<string, unknown>).token_endpoint : undefined;
  const [field, url, source] = typeof alias === 'string' ? ['mtls_endpoint_aliases.token_endpoint', alias, 'mtls_endpoint_aliases' as const] : ['token_endpoint', doc.token_endpoint, 'token_endpoint' as const];
  const failed = (failure: Failure): DiscoveryFailure => ({ failure, exchange: exchanged, metadataUrl, status: 200 });
  if (typeof url !== 'string') return failed(discoveryFailure(issuer, `${metadataUrl} names no https token_endpoint`, `the authorization server of issuer ${issuer} publishes no https token endpoint: set auth.tokenUrl to it`));
  const fault = endpointFault(url);
  if (fault) return failed(discoveryFailure(issuer, `the metadata's ${field} ${fault}`, 'a token endpoint follows the rules of auth.tokenUrl: ask the authorization server team to fix its metadata, or set auth.tokenUrl instead'));
  return { url, source, metadataUrl };
}

/**
 * The token endpoint of a node: `tokenUrl` as written, or discovered from the issuer's metadata
 * over mutual TLS with the node's profile, preferring `mtls_endpoint_aliases.token_endpoint`
 * (RFC 8705 §5).
 */
export async function tokenEndpoint(auth: OAuth2ClientCredentialsAuth, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, signal: AbortSignal | undefined): Promise<Discovered> {
  if (auth.tokenUrl) return { url: auth.tokenUrl, source: 'tokenUrl' };
  const issuer = auth.issuer ?? '';
  const key = `${profile.name}\0${profile.version}\0${issuer}`;
  const known = discovered.get(key);
  if (known) return known;
  let last: { exchange: Exchange; url: URL } | undefined;
  for (const url of metadataUrls(issuer)) {
    const x = await exchange({ method: 'GET', url, headers: { accept: 'application/json' }, body: undefined }, callSettings(node, profile, url.origin, false), profile, agents, signal);
    const seen = { ...x, response: null };
    last = { exchange: seen, url };
    if (x.failure) return { failure: metadataFetchFailed(x.failure, issuer, url), exchange: seen, metadataUrl: url.href, status: x.response?.status ?? null };
    const status = x.response?.status ?? 0;
    const failed = (failure: Failure): DiscoveryFailure => ({ failure, exchange: seen, metadataUrl: url.href, status });
    if (status === 404) continue;
    if (status >= 500 || status === 429) {
      return failed(discoveryFailure(issuer, `${url.href} answered HTTP ${status}`, endpointFailedHint(`the authorization server of issuer ${issuer}`, status), 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE'));
    }
    const body = x.response?.body;
    if (status !== 200 || body === null || typeof body !== 'object' || Array.isArray(body)) {
      const type = String(x.response?.headers['content-type'] ?? 'no content type').split(';')[0]?.trim().replace(/[^\x20-\x7e]/g, '?').slice(0, 100);
      return failed(discoveryFailure(issuer, `${url.href} answered HTTP ${status} with ${type}, not a JSON metadata document`, `${url.href} is not the metadata of an authorization server (a login page, or a proxy in front of it?): check auth.issuer, the issuer identifier of the authorization server, or set auth.tokenUrl to its token endpoint instead`));
    }
    const found = fromMetadata(issuer, body as Record<string, unknown>, url.href, seen);
    if (!('url' in found)) return found;
    if (discovered.size >= MAX_ISSUERS) discovered.clear();
    // Remembered without the exchange: its connection is no business of later calls.
    discovered.set(key, found);
    return { ...found, exchange: seen };
  }
  const tried = metadataUrls(issuer).map((u) => u.href).join(' and ');
  return {
    failure: discoveryFailure(issuer, `neither ${tried} exists (HTTP 404)`, `no authorization server publishes metadata for issuer ${issuer} there: check auth.issuer (the issuer identifier, exactly as the authorization server names itself), or set auth.tokenUrl to its token endpoint instead`),
    ...(last ? { exchange: last.exchange, metadataUrl: last.url.href } : { metadataUrl: issuer }),
    status: 404,
  };
}
