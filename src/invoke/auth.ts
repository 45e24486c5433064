import { performance } from 'node:perf_hooks';
import type { NodeDefinition } from '../definitions/types.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool } from '../tls/agents.js';
import { exchange, round, type Exchange } from './exchange.js';
import { callSettings } from './settings.js';
import type { AuthReport, SessionLoginReport } from './auth-report.js';
import { answeredMediaType, forgetOAuth2Token, headerSafeToken, invalidTokenChallenge, oauth2Token, oversizedAnswer } from './oauth2-token.js';
import { reportedUrl, type Failure, type ResponseReport } from './result.js';
import { askedWaitMs, askedWaitNote, authStepFailure, endpointFailedHint } from './retry.js';
import { tokenKey, type TokenCache } from './token-cache.js';

/** Default reuse time of a certificate-session token (Symphony session tokens live longer). */
export const DEFAULT_TOKEN_TTL_SECONDS = 3000;

/**
 * A failed authentication step: `exchange` is the one that failed, `exchanges` those of the step
 * that went well before it (the failed one may ride a connection they opened); `retryAfterMs` is
 * the wait its endpoint asked for (a 429 or 503 with Retry-After).
 */
export type AuthFailure = { failure: Failure; exchange?: Exchange; exchanges?: Exchange[]; report?: AuthReport; retryAfterMs?: number };

/**
 * The headers an authenticated call sends, the step's report, and the exchanges it made (their
 * connections, which the call may reuse: execute takes the handshake timings from them then).
 */
type AuthOutcome = { headers: Record<string, string>; report?: AuthReport; exchanges?: Exchange[] } | AuthFailure;

/**
 * What a Result may show of a token-endpoint exchange: its TLS session and timings, never its
 * response (headers and body hold the token, and the Result is labelled with the node's URL).
 */
function withoutResponse(x: Exchange): Exchange {
  return { ...x, response: null, bodyText: '' };
}

function authFailure(url: string, message: string, hint: string, code: string): Failure {
  return { phase: 'auth', category: 'http_status', code, message: `authentication at ${reportedUrl(url)}: ${message}`, hint };
}

/**
 * A login endpoint's 401 or 403. The endpoint authenticates by the client certificate, so when it
 * got ours this is its verdict on it, as an OAuth 2.0 invalid_client is; without one it never judged it.
 */
function loginRefused(url: string, status: number, x: Exchange): Failure {
  const ours = x.tls?.clientCertificate;
  if (!ours) {
    return authFailure(url, `HTTP ${status}, without our client certificate (the endpoint did not ask for one)`, 'a TLS-terminating proxy in front of the authentication endpoint must ask for the client certificate and pass it on; or auth.tokens[].url is not the authentication endpoint', `HTTP_${status}`);
  }
  return {
    phase: 'auth',
    category: 'client_cert_rejected',
    code: 'SVCNODE_TOKEN_REJECTED',
    message: `authentication at ${reportedUrl(url)}: HTTP ${status} to our client certificate "${ours.subject}"`,
    hint: `the authentication endpoint does not accept this client certificate: register it (or its CA) for the bot account: subject "${ours.subject}", SHA-256 ${ours.fingerprint256}`,
  };
}

/** A session token (or why there is none), with what the report says of its endpoint. */
type Login = ({ token: string; exchange?: Exchange } | AuthFailure) & { step: SessionLoginReport };

/** Logins under way in this process, by token key: concurrent jobs share one (a backend rate-limits them). */
const logins = new Map<string, Promise<Login>>();

/** How long a node reuses a session token, in seconds. */
function sessionTtlSeconds(node: NodeDefinition): number {
  return node.auth?.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
}

/**
 * The cache key of a session token: per profile, endpoint and reuse time, so that nodes sharing
 * an endpoint share its token only when they reuse it as long, and each node's ttlSeconds holds.
 */
function sessionKey(node: NodeDefinition, profile: LoadedProfile, url: string): string {
  return tokenKey(profile, `${url}\0ttl=${sessionTtlSeconds(node)}`);
}

/** Get one token: from the cache, or by POSTing to the endpoint with the client certificate, once for all concurrent callers. */
async function token(endpoint: { url: string; header: string; field?: string }, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, signal: AbortSignal | undefined, fresh: boolean): Promise<Login> {
  const key = sessionKey(node, profile, endpoint.url);
  if (!fresh) {
    const cached = await cache.get(key, profile);
    if (cached) return { token: cached, step: { url: reportedUrl(endpoint.url), header: endpoint.header, cached: true, status: null, ms: null } };
  }
  let pending = logins.get(key);
  if (!pending) {
    pending = login(endpoint, node, profile, agents, cache, signal, key).finally(() => logins.delete(key));
    logins.set(key, pending);
  }
  return pending;
}

async function login(endpoint: { url: string; header: string; field?: string }, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, signal: AbortSignal | undefined, key: string): Promise<Login> {
  const started = performance.now();
  const outcome = await attemptLogin(endpoint, node, profile, agents, cache, signal, key);
  const x = outcome.exchange;
  return { ...outcome, step: { url: reportedUrl(endpoint.url), header: endpoint.header, cached: false, status: x?.response?.status ?? null, ms: round(performance.now() - started) }, ...(x ? { exchange: withoutResponse(x) } : {}) };
}

/** POST to a login endpoint with the client certificate and read the token; the exchange is returned with its response, which login() strips. */
async function attemptLogin(endpoint: { url: string; header: string; field?: string }, node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, signal: AbortSignal | undefined, key: string): Promise<{ token: string; exchange: Exchange } | AuthFailure> {
  const url = new URL(endpoint.url);
  const x = await exchange({ method: 'POST', url, headers: { accept: 'application/json' }, body: undefined }, callSettings(node, profile, url.origin, false), profile, agents, signal);
  if (x.failure) return { failure: authStepFailure(x.failure, `authentication at ${reportedUrl(endpoint.url)}: ${x.failure.message}`, 'the authentication endpoint', 'check its url in auth.tokens (scheme, host, port)'), exchange: x };
  const status = x.response?.status ?? 0;
  if (status >= 500 || status === 429) {
    // A pod restarting or shedding load: transient, as for an OAuth 2.0 token endpoint; a rate limit's Retry-After is honoured.
    const retryAfterMs = askedWaitMs(x.response?.headers['retry-after'], Date.now());
    return {
      failure: authFailure(endpoint.url, `HTTP ${status}${askedWaitNote(retryAfterMs)}`, endpointFailedHint('the authentication endpoint', status), 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE'),
      exchange: x,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
  if (status === 401 || status === 403) return { failure: loginRefused(endpoint.url, status, x), exchange: x };
  if (status < 200 || status > 299) {
    return { failure: authFailure(endpoint.url, `HTTP ${status}`, 'check the authentication endpoint URL and its health', `HTTP_${status}`), exchange: x };
  }
  const field = endpoint.field ?? 'token';
  const body = x.response?.body;
  if (body === null || typeof body !== 'object') {
    const what = x.response?.truncated ? oversizedAnswer(x, 'an authentication endpoint') : `with ${answeredMediaType(x)}, not a JSON object (a login page or a proxy in front of the endpoint?)`;
    return { failure: authFailure(endpoint.url, `HTTP ${status} ${what}`, 'check auth.tokens[].url: it must be the authentication endpoint itself', 'SVCNODE_AUTH_NO_TOKEN'), exchange: x };
  }
  const value = (body as Record<string, unknown>)[field];
  if (typeof value !== 'string' || value.length === 0) {
    return { failure: authFailure(endpoint.url, `the JSON answer has no string "${field}"`, 'set auth.tokens[].field to the property that holds the token', 'SVCNODE_AUTH_NO_TOKEN'), exchange: x };
  }
  if (!headerSafeToken(value)) {
    // Never cached, never blamed on the invocation context: the endpoint's answer is wrong.
    return { failure: authFailure(endpoint.url, `the "${field}" it answered has characters a header cannot carry (control characters, spaces or non-ASCII)`, 'the authentication endpoint issues malformed tokens: its team must fix it', 'SVCNODE_TOKEN_BAD_RESPONSE'), exchange: x };
  }
  await cache.set(key, value, sessionTtlSeconds(node) * 1000, profile);
  return { token: value, exchange: x };
}

/**
 * Headers of an authenticating node: `Authorization: Bearer` for OAuth 2.0 client credentials;
 * for a certificate-session node (e.g. sessionToken and keyManagerToken for a Symphony
 * bot): one token per endpoint, cached per profile, endpoint and ttlSeconds across jobs.
 */
export async function authHeaders(node: NodeDefinition, profile: LoadedProfile, agents: AgentPool, cache: TokenCache, signal: AbortSignal | undefined, fresh: boolean): Promise<AuthOutcome> {
  const auth = node.auth;
  if (!auth) return { headers: {} };
  if (!profile.client) {
    return { failure: { phase: 'input', category: 'invalid_input', code: 'SVCNODE_AUTH_NO_CLIENT_CERT', message: `node "${node.id}" uses ${auth.type} auth but profile "${profile.name}" has no client certificate`, hint: `add a client certificate to profile "${profile.name}"` } };
  }
  if (auth.type === 'oauth2-client-credentials') {
    const got = await oauth2Token(auth, node, profile, agents, cache, signal);
    return 'failure' in got ? got : { headers: { authorization: `Bearer ${got.token}` }, report: got.report, ...(got.exchanges ? { exchanges: got.exchanges } : {}) };
  }
  const headers: Record<string, string> = {};
  const endpoints: SessionLoginReport[] = [];
  const exchanges: Exchange[] = [];
  for (const endpoint of auth.tokens) {
    const got = await token(endpoint, node, profile, agents, cache, signal, fresh);
    endpoints.push(got.step);
    const report: AuthReport = { type: 'certificate-session', endpoints: [...endpoints] };
    if ('failure' in got) return { failure: got.failure, report, exchanges, ...(got.exchange ? { exchange: got.exchange } : {}), ...(got.retryAfterMs === undefined ? {} : { retryAfterMs: got.retryAfterMs }) };
    headers[endpoint.header.toLowerCase()] = got.token;
    if (got.exchange) exchanges.push(got.exchange);
  }
  return { headers, report: { type: 'certificate-session', endpoints }, exchanges };
}

/** Whether a response means the tokens are stale: any 401 for a session, a 401 invalid_token challenge for OAuth 2.0. */
export function reauthenticates(node: NodeDefinition, response: ResponseReport | null): boolean {
  if (!node.auth || response?.status !== 401) return false;
  return node.auth.type === 'certificate-session' || invalidTokenChallenge(response.headers);
}

/** Drop a node's cached tokens (after a 401); `sent` are the auth headers the backend refused. */
export async function forgetTokens(node: NodeDefinition, profile: LoadedProfile, cache: TokenCache, sent: Record<string, string> = {}): Promise<void> {
  const auth = node.auth;
  if (auth?.type === 'oauth2-client-credentials') return forgetOAuth2Token(auth, profile, cache, sent.authorization?.replace(/^Bearer /, ''));
  await Promise.all((auth?.tokens ?? []).map((t) => cache.delete(sessionKey(node, profile, t.url))));
}
