import type { NodeDefinition, OAuth2ClientCredentialsAuth } from '../definitions/types.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool } from '../tls/agents.js';
import type { AuthReport } from './auth-report.js';
import { exchange, type Exchange } from './exchange.js';
import type { Failure } from './result.js';
import { endpointFailedHint } from './retry.js';
import { callSettings } from './settings.js';

/** The token endpoint a node uses, and where it was found. */
export interface TokenEndpoint {
  url: string;
  source: AuthReport['endpointSource'];
}

export type Discovered = TokenEndpoint | { failure: Failure; exchange?: Exchange };

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

function httpsUrl(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    return new URL(value).protocol === 'https:' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Judge one metadata document: the issuer must be ours (RFC 8414 §3.3), the endpoint https. */
function fromMetadata(issuer: string, doc: Record<string, unknown>): Discovered {
  if (doc.issuer !== issuer) {
    return {
      failure: discoveryFailure(issuer, `the metadata names issuer ${JSON.stringify(String(doc.issuer)).slice(0, 200)}, not ${issuer}`, 'set auth.issuer to the exact issuer identifier of the authorization server (scheme, host, path, trailing slash); a mismatch can also mean the metadata was served by another server', 'SVCNODE_ISSUER_MISMATCH', 'server_identity_mismatch'),
    };
  }
  const aliases = doc.mtls_endpoint_aliases;
  const alias = aliases !== null && typeof aliases === 'object' ? httpsUrl((aliases as Record<string, unknown>).token_endpoint) : undefined;
  if (alias) return { url: alias, source: 'mtls_endpoint_aliases' };
  const plain = httpsUrl(doc.token_endpoint);
  if (plain) return { url: plain, source: 'token_endpoint' };
  return { failure: discoveryFailure(issuer, 'the metadata has no https token_endpoint', 'check auth.issuer, or set auth.tokenUrl instead') };
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
  let last: Exchange | undefined;
  for (const url of metadataUrls(issuer)) {
    const x = await exchange({ method: 'GET', url, headers: { accept: 'application/json' }, body: undefined }, callSettings(node, profile, url.origin, false), profile, agents, signal);
    last = { ...x, response: null };
    if (x.failure) return { failure: { ...x.failure, phase: x.failure.phase === 'request' || x.failure.phase === 'response' ? 'auth' : x.failure.phase, message: `authorization server metadata at ${url.href}: ${x.failure.message}` }, exchange: last };
    const status = x.response?.status ?? 0;
    if (status === 404) continue;
    if (status >= 500 || status === 429) {
      return { failure: discoveryFailure(issuer, `${url.href} answered HTTP ${status}`, endpointFailedHint('the authorization server', status), 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE'), exchange: last };
    }
    const body = x.response?.body;
    if (status !== 200 || body === null || typeof body !== 'object') {
      return { failure: discoveryFailure(issuer, `${url.href} answered HTTP ${status} without a JSON metadata document`, 'check auth.issuer, or set auth.tokenUrl instead'), exchange: last };
    }
    const found = fromMetadata(issuer, body as Record<string, unknown>);
    if ('url' in found) {
      if (discovered.size >= MAX_ISSUERS) discovered.clear();
      discovered.set(key, found);
    }
    return found;
  }
  return { failure: discoveryFailure(issuer, 'neither /.well-known/openid-configuration nor /.well-known/oauth-authorization-server exists (HTTP 404)', 'check auth.issuer, or set auth.tokenUrl instead'), ...(last ? { exchange: last } : {}) };
}
