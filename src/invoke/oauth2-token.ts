import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeDefinition, OAuth2ClientCredentialsAuth } from '../definitions/types.js';
import { InvalidInputError } from '../errors.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool } from '../tls/agents.js';
import type { OAuth2AuthReport as AuthReport } from './auth-report.js';
import type { AuthFailure } from './auth.js';
import { clientFacts } from './client-facts.js';
import { exchange, type Exchange } from './exchange.js';
import { certificateThumbprint, tokenBinding } from './oauth2-binding.js';
import { tokenRequestParts } from './oauth2-client-auth.js';
import { tokenEndpoint, type DiscoveryFailure, type TokenEndpoint } from './oauth2-discovery.js';
import { headerValue, reportedUrl, type Failure } from './result.js';
import { DEFAULTS } from './defaults.js';
import { askedWaitMs, askedWaitNote, authStepFailure, endpointFailedHint } from './retry.js';
import { scrubSecrets } from './scrub.js';
import { callSettings } from './settings.js';
import { tokenKey, type TokenCache } from './token-cache.js';

/** Defaults of the token step. */
export const OAUTH2_DEFAULTS = {
  /** Reuse time of a token whose response has no expires_in. @defaultValue 300 */
  defaultExpiresInSeconds: 300,
  /** Refresh this long before expires_in runs out, at most a quarter of the lifetime. @defaultValue 30 */
  refreshSkewSeconds: 30,
  /** How long another process may hold the right to fetch a token before we fetch it ourselves. @defaultValue 15000 */
  fetchLockMs: 15_000,
  /** How often a process waiting for another's token request looks for the token. @defaultValue 50 */
  fetchPollMs: 50,
  /** Longest a token is reused, whatever expires_in says (servers send Long.MAX_VALUE for "never"). @defaultValue 86400 */
  maxLifetimeSeconds: 86_400,
} as const;

/** expires_in as a number of seconds (a JSON number or a numeric string), or undefined when absent or unusable. */
function expiresInSeconds(value: unknown): number | undefined {
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : Number.NaN;
  // 1e400 parses to Infinity: "never expires", as Long.MAX_VALUE says it; both get the cap.
  return seconds > 0 ? Math.min(seconds, OAUTH2_DEFAULTS.maxLifetimeSeconds) : undefined;
}

/** A token a header can carry: visible ASCII only (RFC 6750 b64token is a subset). */
export function headerSafeToken(token: string): boolean {
  return /^[\x21-\x7e]+$/.test(token);
}

/** A token with its report, and the exchanges (metadata, token request) this call made for it. */
export type TokenOutcome = { token: string; report: AuthReport; exchanges?: Exchange[] } | AuthFailure;

/** What the shared cache holds (sealed): the token and what the report needs on a hit. */
interface CachedToken {
  t: string;
  exp: number;
  b: NonNullable<AuthReport['binding']>;
  e: string;
  s: TokenEndpoint['source'];
  /** The metadata URL the endpoint was discovered from (absent in entries cached before it was kept). */
  m?: string;
}

/** Fetches in flight per cache key: concurrent jobs wait for one token request (no stampede). */
const inflight = new Map<string, Promise<TokenOutcome>>();

/** The cache key: (profile material, endpoint or issuer, client, auth method, scope, params). */
export function oauth2TokenKey(auth: OAuth2ClientCredentialsAuth, profile: LoadedProfile): string {
  return tokenKey(profile, ['oauth2', auth.tokenUrl ?? `issuer:${auth.issuer ?? ''}`, auth.clientId, auth.clientAuth, auth.scope ?? '', JSON.stringify(auth.params ?? {})].join('\0'));
}

function report(auth: OAuth2ClientCredentialsAuth, endpoint: TokenEndpoint, fields: Partial<AuthReport>): AuthReport {
  return { type: 'oauth2-client-credentials', tokenEndpoint: endpoint.url, endpointSource: endpoint.source, ...(endpoint.metadataUrl ? { metadataUrl: endpoint.metadataUrl } : {}), clientAuth: auth.clientAuth, status: null, cached: false, expiresIn: null, binding: null, token: null, ...fields };
}

/** The token step that never reached a token endpoint: discovery failed at `metadataUrl`. */
function discoveryReport(auth: OAuth2ClientCredentialsAuth, d: DiscoveryFailure): AuthReport {
  return { type: 'oauth2-client-credentials', tokenEndpoint: null, endpointSource: 'discovery', metadataUrl: reportedUrl(d.metadataUrl), clientAuth: auth.clientAuth, status: d.status, cached: false, expiresIn: null, binding: null, token: null };
}

/** Printable, bounded text from the authorization server (error_description). */
function printable(value: unknown): string {
  return typeof value === 'string' ? value.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) : '';
}

/** What to register at the authorization server so it accepts our certificate for this client. */
function registrationHint(auth: OAuth2ClientCredentialsAuth, profile: LoadedProfile): string {
  const facts = clientFacts(profile);
  const who = `subject "${facts?.subject ?? ''}", SHA-256 ${facts?.fingerprint256 ?? ''} (x5t#S256 ${certificateThumbprint(profile) ?? ''})`;
  if (auth.clientAuth === 'tls_client_auth') return `register client "${auth.clientId}" for tls_client_auth with our certificate: ${who}, or fix auth.clientId`;
  if (auth.clientAuth === 'self_signed_tls_client_auth') return `register our certificate in the jwks of client "${auth.clientId}": ${who}, or fix auth.clientId`;
  if (auth.clientAuth === 'private_key_jwt') return `register the public key of our certificate (${who}) for client "${auth.clientId}", or fix auth.clientId`;
  return `check auth.clientId and the client secret; our certificate is ${who}`;
}

/** The media type an authentication endpoint answered with, printable, for messages about an answer that is not JSON. */
export function answeredMediaType(x: Exchange): string {
  return printable(String(x.response?.headers['content-type'] ?? 'no content type').split(';')[0]?.trim());
}

/** An authentication endpoint's answer cut at the body limit, whatever JSON it began with: too large to be a token answer. */
export function oversizedAnswer(x: Exchange, endpoint: string): string {
  return `with ${answeredMediaType(x)} larger than svcnode reads from ${endpoint} (response.maxBodyBytes, at least ${DEFAULTS.response.maxBodyBytes} bytes there): not a token answer`;
}

/** What a 200 without a usable Bearer token held instead: another token type, an OAuth error, a page that is not JSON. */
function withoutBearer(x: Exchange, body: Record<string, unknown> | undefined, token: unknown, type: unknown): string {
  if (body === undefined && x.response?.truncated) return oversizedAnswer(x, 'a token endpoint');
  if (body === undefined) return `with ${answeredMediaType(x)}, not JSON (a login page or a proxy in front of the token endpoint?)`;
  if (typeof body.error === 'string') return `with an OAuth error instead of a token: ${printable(body.error)}${body.error_description ? `: ${printable(body.error_description)}` : ''}`;
  if (typeof token === 'string' && token.length > 0 && typeof type === 'string') return `a token of type ${printable(type)}; svcnode sends Bearer tokens only`;
  return 'without a Bearer access_token';
}

/** The credentials a token request carries, which an error_description may quote back. */
function requestSecrets(parts: { headers: Record<string, string>; form: URLSearchParams }): (string | undefined)[] {
  const basic = /^Basic (.+)$/i.exec(parts.headers.authorization ?? '')?.[1];
  const decoded = basic === undefined ? undefined : Buffer.from(basic, 'base64').toString('utf8');
  const password = decoded?.slice(decoded.indexOf(':') + 1);
  let plain: string | undefined;
  try {
    plain = password === undefined ? undefined : decodeURIComponent(password.replace(/\+/g, ' '));
  } catch {
    plain = password;
  }
  return [parts.form.get('client_secret') ?? undefined, parts.form.get('client_assertion') ?? undefined, basic, password, plain];
}

/**
 * Map an OAuth 2.0 error response (RFC 6749 §5.2) or another status to a coded failure.
 * `retryAfterMs`: the wait a 5xx or 429 answer asked for (undefined for other statuses). `body`
 * and `location` come with the request's credentials taken out already: their texts are cut here.
 */
function tokenError(auth: OAuth2ClientCredentialsAuth, profile: LoadedProfile, url: string, status: number, body: Record<string, unknown> | undefined, location: string | undefined, retryAfterMs: number | undefined): Failure {
  const error = typeof body?.error === 'string' ? body.error : undefined;
  // A redirect names where it points (reported without credentials): that is usually the token endpoint to configure.
  const target = status >= 300 && status < 400 && location !== undefined ? ` to ${printable(reportedUrl(location))}` : '';
  const said = `${url} answered HTTP ${status}${target}${error ? ` ${printable(error)}` : ''}${body?.error_description ? `: ${printable(body.error_description)}` : ''}${askedWaitNote(retryAfterMs)}`;
  const fail = (code: string, category: Failure['category'], hint: string): Failure => ({ phase: 'auth', category, code, message: `token endpoint ${said}`, hint });
  if (status >= 500 || status === 429) return fail('SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE', 'http_status', endpointFailedHint('the token endpoint', status));
  if (target) return fail('SVCNODE_TOKEN_REQUEST_REFUSED', 'http_status', 'a token endpoint answers a POST itself: set auth.tokenUrl to the URL it redirects to, if that is the token endpoint');
  // RFC 6749 §5.2: an authorization server may refuse client authentication with a bare 401.
  if (error === 'invalid_client' || (status === 401 && error === undefined)) {
    return fail('SVCNODE_TOKEN_REJECTED', auth.clientAuth.endsWith('tls_client_auth') ? 'client_cert_rejected' : 'http_status', registrationHint(auth, profile));
  }
  if (error === 'invalid_scope') {
    return fail('SVCNODE_TOKEN_INVALID_SCOPE', 'http_status', auth.scope === undefined
      ? `the node sends no auth.scope, and the authorization server gives client "${auth.clientId}" no default scope it accepts: set auth.scope to a scope the client is registered for, or ask its team to grant one`
      : `ask the authorization server to grant client "${auth.clientId}" the scope "${auth.scope}", or fix auth.scope`);
  }
  if (error === 'unauthorized_client') return fail('SVCNODE_TOKEN_UNAUTHORIZED_CLIENT', 'http_status', `ask the authorization server to allow the client_credentials grant for client "${auth.clientId}"`);
  return fail('SVCNODE_TOKEN_REQUEST_REFUSED', 'http_status', 'check auth.tokenUrl or auth.issuer, auth.params and the client registration');
}

function jsonBody(x: Exchange): Record<string, unknown> | undefined {
  let body = x.response?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      return undefined;
    }
  }
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
}

/** POST the token request over mutual TLS, judge the answer and the binding, store a usable token. */
async function fetchToken(auth: OAuth2ClientCredentialsAuth, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, key: string, signal: AbortSignal | undefined, now: () => Date): Promise<TokenOutcome> {
  const endpoint = await tokenEndpoint(auth, node, profile, agents, signal);
  if ('failure' in endpoint) return { failure: endpoint.failure, ...(endpoint.exchange ? { exchange: endpoint.exchange } : {}), report: discoveryReport(auth, endpoint) };
  const outcome = await requestToken(auth, endpoint, node, profile, agents, cache, key, signal, now);
  // The metadata request's connection may be the one the token request and the call ride.
  return endpoint.exchange ? { ...outcome, exchanges: [endpoint.exchange, ...(outcome.exchanges ?? [])] } : outcome;
}

/** The token request to a known endpoint. */
async function requestToken(auth: OAuth2ClientCredentialsAuth, endpoint: TokenEndpoint, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, key: string, signal: AbortSignal | undefined, now: () => Date): Promise<TokenOutcome> {
  const url = new URL(endpoint.url);
  let parts;
  try {
    parts = tokenRequestParts(auth, profile, endpoint.url, now());
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    return { failure: { phase: 'input', category: 'invalid_input', code: error.code, message: error.message, hint: error.hint ?? 'fix the node definition' } };
  }
  const x = await exchange({ method: 'POST', url, headers: parts.headers, body: { payload: parts.form.toString(), contentType: 'application/x-www-form-urlencoded' } }, callSettings(node, profile, url.origin, false), profile, agents, signal);
  // The token response is never reported: only its status, timing and a redacted summary.
  const seen: Exchange = { ...x, response: null, bodyText: '' };
  if (x.failure) {
    const check = endpoint.source === 'tokenUrl' ? 'check auth.tokenUrl (scheme, host, port)' : `check the ${endpoint.source} the metadata of auth.issuer names, or set auth.tokenUrl instead`;
    return { failure: authStepFailure(x.failure, `token endpoint ${endpoint.url}: ${x.failure.message}`, 'the authorization server', check), exchange: seen, report: report(auth, endpoint, {}) };
  }
  const status = x.response?.status ?? 0;
  const body = jsonBody(x);
  const secrets = requestSecrets(parts);
  // What the endpoint said is quoted cut to size: its credentials go before the cut, and any the endpoint cut itself.
  const quotable = (): Record<string, unknown> | undefined => scrubSecrets(body, secrets, { cutShort: true });
  const heard = (): Exchange => (x.response ? { ...x, response: { ...x.response, headers: scrubSecrets(x.response.headers, secrets, { cutShort: true }) } } : x);
  if (status !== 200) {
    // A rate limit's Retry-After (429, 503) is honoured by the retry policy.
    const retryAfterMs = status >= 500 || status === 429 ? askedWaitMs(x.response?.headers['retry-after'], Date.now()) : undefined;
    const failure = scrubSecrets(tokenError(auth, profile, endpoint.url, status, quotable(), headerValue(heard().response?.headers.location), retryAfterMs), secrets);
    return { failure, exchange: seen, report: report(auth, endpoint, { status }), ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  }
  const token = body?.access_token;
  const type = body?.token_type;
  if (typeof token !== 'string' || token.length === 0 || typeof type !== 'string' || type.toLowerCase() !== 'bearer') {
    return {
      failure: scrubSecrets({ phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_BAD_RESPONSE', message: `token endpoint ${endpoint.url} answered HTTP 200 ${withoutBearer(heard(), quotable(), token, type)}`, hint: 'check that auth.tokenUrl is the token endpoint and that the client is set up for Bearer tokens' }, secrets),
      exchange: seen,
      report: report(auth, endpoint, { status }),
    };
  }
  if (!headerSafeToken(token)) {
    // Never cached, never blamed on the invocation context: the server's answer is wrong.
    return {
      failure: { phase: 'auth', category: 'http_status', code: 'SVCNODE_TOKEN_BAD_RESPONSE', message: `token endpoint ${endpoint.url} answered an access_token with characters an Authorization header cannot carry (control characters, spaces or non-ASCII)`, hint: 'the authorization server issues malformed tokens: its team must fix it' },
      exchange: seen,
      report: report(auth, endpoint, { status }),
    };
  }
  const binding = tokenBinding(token, profile);
  const expiresIn = expiresInSeconds(body?.expires_in) ?? OAUTH2_DEFAULTS.defaultExpiresInSeconds;
  const step = report(auth, endpoint, { status, expiresIn, binding, token: '[redacted]' });
  if (binding === 'mismatch') {
    return {
      failure: { phase: 'auth', category: 'client_cert_rejected', code: 'SVCNODE_TOKEN_BINDING_MISMATCH', message: `token endpoint ${endpoint.url} issued an access token bound (cnf.x5t#S256) to another certificate than ours (x5t#S256 ${certificateThumbprint(profile) ?? ''}); it was not used`, hint: 'a TLS-terminating proxy in front of the token endpoint may pass another client certificate to the authorization server: it must forward the certificate the client presented' },
      exchange: seen,
      report: step,
    };
  }
  const reuseSeconds = expiresIn - Math.min(OAUTH2_DEFAULTS.refreshSkewSeconds, expiresIn / 4);
  const entry: CachedToken = { t: token, exp: now().getTime() + reuseSeconds * 1000, b: binding, e: endpoint.url, s: endpoint.source, ...(endpoint.metadataUrl ? { m: endpoint.metadataUrl } : {}) };
  await cache.set(key, JSON.stringify(entry), reuseSeconds * 1000, profile);
  return { token, report: step, exchanges: [seen] };
}

async function cached(cache: TokenCache, key: string, profile: LoadedProfile, now: number): Promise<CachedToken | undefined> {
  const raw = await cache.get(key, profile);
  if (raw === undefined) return undefined;
  try {
    const entry = JSON.parse(raw) as CachedToken;
    return typeof entry.t === 'string' && entry.exp > now ? entry : undefined;
  } catch {
    return undefined;
  }
}

function fromCache(auth: OAuth2ClientCredentialsAuth, hit: CachedToken, at: number): TokenOutcome {
  return { token: hit.t, report: report(auth, { url: hit.e, source: hit.s, ...(hit.m ? { metadataUrl: hit.m } : {}) }, { cached: true, expiresIn: Math.max(0, Math.round((hit.exp - at) / 1000)), binding: hit.b, token: '[redacted]' }) };
}

/**
 * One token request across processes sharing the cache: whoever takes the lock fetches, the
 * others wait for the token to appear; a holder that never delivers is overtaken at the lock's end.
 */
async function fetchShared(auth: OAuth2ClientCredentialsAuth, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, key: string, signal: AbortSignal | undefined, now: () => Date): Promise<TokenOutcome> {
  const lock = cache.lock?.bind(cache);
  if (!lock) return fetchToken(auth, node, profile, agents, cache, key, signal, now);
  const giveUp = Date.now() + OAUTH2_DEFAULTS.fetchLockMs;
  for (;;) {
    const release = await lock(key, OAUTH2_DEFAULTS.fetchLockMs);
    if (release) {
      try {
        const hit = await cached(cache, key, profile, now().getTime());
        return hit ? fromCache(auth, hit, now().getTime()) : await fetchToken(auth, node, profile, agents, cache, key, signal, now);
      } finally {
        await release();
      }
    }
    await sleep(OAUTH2_DEFAULTS.fetchPollMs, undefined, signal ? { signal } : undefined).catch(() => undefined);
    const hit = await cached(cache, key, profile, now().getTime());
    if (hit) return fromCache(auth, hit, now().getTime());
    if (signal?.aborted || Date.now() > giveUp) return fetchToken(auth, node, profile, agents, cache, key, signal, now);
  }
}

/**
 * The access token of an OAuth 2.0 node: from the cache while it is fresh, else one token
 * request shared by every concurrent caller in this process (and, through the cache's lock,
 * across processes).
 */
export async function oauth2Token(auth: OAuth2ClientCredentialsAuth, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, signal: AbortSignal | undefined, now: () => Date = () => new Date()): Promise<TokenOutcome> {
  const key = oauth2TokenKey(auth, profile);
  const at = now().getTime();
  const hit = await cached(cache, key, profile, at);
  if (hit) return fromCache(auth, hit, at);
  let pending = inflight.get(key);
  if (!pending) {
    pending = fetchShared(auth, node, profile, agents, cache, key, signal, now).finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  return pending;
}

/** Drop the cached token after the resource server refused it, unless a newer one replaced it already. */
export async function forgetOAuth2Token(auth: OAuth2ClientCredentialsAuth, profile: LoadedProfile, cache: TokenCache, rejected: string | undefined): Promise<void> {
  const key = oauth2TokenKey(auth, profile);
  const raw = await cache.get(key, profile);
  if (raw === undefined) return;
  try {
    if (rejected !== undefined && (JSON.parse(raw) as CachedToken).t !== rejected) return;
  } catch {
    // An unreadable entry is dropped as well.
  }
  await cache.delete(key);
}

/** The WWW-Authenticate challenges of a response, as one text. */
function challenges(headers: Record<string, string | string[]> | undefined): string {
  const value = headers?.['www-authenticate'];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/** RFC 6750 §3.1: only an invalid (expired, revoked) token is worth one new token request. */
export function invalidTokenChallenge(headers: Record<string, string | string[]> | undefined): boolean {
  return /\bBearer\b[^]*\berror\s*=\s*"?invalid_token"?/i.test(challenges(headers));
}

/** The backend's words in a `WWW-Authenticate: Bearer error="…", error_description="…"` challenge, if any. */
export function bearerError(headers: Record<string, string | string[]> | undefined): string | undefined {
  const text = challenges(headers);
  const error = /\berror\s*=\s*"?([\w.-]+)"?/i.exec(text)?.[1];
  const description = /\berror_description\s*=\s*"([^"]{0,200})"/i.exec(text)?.[1];
  return error ? `${error}${description ? `: ${description}` : ''}` : undefined;
}
