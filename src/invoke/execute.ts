import { performance } from 'node:perf_hooks';
import type { NodeDefinition } from '../definitions/types.js';
import { InvalidInputError, errorMessage } from '../errors.js';
import { classifyError } from '../failures/classify.js';
import { failureOf, type Failure } from '../failures/failure.js';
import { dateStatus } from '../pki/inspect.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool } from '../tls/agents.js';
import { formatDn } from '../tls/identity.js';
import { authHeaders, forgetTokens, reauthenticates } from './auth.js';
import { headerSecrets, scrubSecrets } from './scrub.js';
import { clientFacts } from './client-facts.js';
import { DEFAULTS } from './defaults.js';
import { accepts, exchange, round, statusFailure, type Exchange } from './exchange.js';
import { bearerError } from './oauth2-token.js';
import { renderRequest, type RenderedRequest } from './render.js';
import { emptyResult } from './failed-result.js';
import { AUTH_RETRY_AFTER, credentialHeader, headerValue, reportedUrl, type Result } from './result.js';
import { MemoryTokenCache, type TokenCache } from './token-cache.js';
import { callSettings } from './settings.js';
import { attemptSignal } from './attempt-budget.js';

/** What a call needs from its host process (dry-run CLI or worker). */
export interface InvokeDeps {
  /**
   * Resolve a profile by name; throws (or rejects with) InvalidInputError when it is unknown or
   * failed to load. The worker answers from its registry, the dry-run loads the file.
   */
  profile(name: string): LoadedProfile | Promise<LoadedProfile>;
  agents: AgentPool;
  /** Certificate-session tokens (shared through Redis by workers). @defaultValue a process-wide in-memory cache */
  tokens?: TokenCache;
  /** Clock for certificate date checks. */
  now?: () => Date;
}

export interface InvokeOptions {
  /** Aborts the call (job cancelled, worker shutting down). */
  signal?: AbortSignal;
  requestId?: string;
  /** 1-based number of this attempt, reported in the Result. */
  attempt?: number;
  /** Told when the request was sent again because a kept-alive connection closed under it unanswered (a metric: the Result does not say). */
  onReplays?: (count: number) => void;
}

const processTokens = new MemoryTokenCache();
const SOON_MS = 90 * 86_400_000;

/** Refuse to present a client certificate outside its validity period. */
export function clientDateFailure(profile: LoadedProfile, now: Date): Failure | undefined {
  const facts = clientFacts(profile);
  if (!facts || (now.getTime() >= facts.notBefore && now.getTime() <= facts.notAfter)) return undefined;
  const leaf = profile.client?.leaf;
  if (!leaf) return undefined;
  const from = new Date(facts.notBefore);
  const to = new Date(facts.notAfter);
  const expired = now > to;
  return failureOf(
    'client_cert_expired',
    expired ? 'SVCNODE_CLIENT_CERT_EXPIRED' : 'SVCNODE_CLIENT_CERT_NOT_YET_VALID',
    `client certificate "${formatDn(leaf.subject)}" of profile "${profile.name}" is ${expired ? `expired since ${to.toISOString()}` : `not valid before ${from.toISOString()}`}; it was not presented`,
    expired ? `renew the client certificate and replace it in ${profile.file}` : "check this machine's clock, or wait until the certificate becomes valid",
  );
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * The server's verdict on our certificate, sharpened by its dates as this machine sees them: a CA
 * certificate sent with it that has expired is named (servers refuse the chain for it, with
 * certificate_expired or a plain access_denied); a certificate_expired verdict on a leaf that is
 * valid here says that the clocks disagree instead of "renew it"; one close to expiry is noted.
 */
export function withClientDates(failure: Failure, profile: LoadedProfile, now: Date): Failure {
  const client = profile.client;
  // Our own refusal to present it (clientDateFailure) already says what is out of date.
  if (!client || !failure.category.startsWith('client_cert') || failure.code === 'SVCNODE_CLIENT_CERT_EXPIRED' || failure.code === 'SVCNODE_CLIENT_CERT_NOT_YET_VALID') return failure;
  const stale = client.chain.find((c) => dateStatus(c, now) !== 'valid');
  if (stale) {
    const expired = dateStatus(stale, now) === 'expired';
    const file = client.sources.join(', ');
    return { ...failure, hint: `the CA certificate "${formatDn(stale.subject)}" sent with our client certificate ${expired ? `expired on ${day(new Date(stale.validTo).getTime())}` : `is not valid before ${day(new Date(stale.validFrom).getTime())}`}, which is reason enough for the backend to refuse the chain: replace it in ${file} with the CA's current certificate (the PKI team publishes it); ${failure.hint}` };
  }
  const validTo = new Date(client.leaf.validTo).getTime();
  if (/ALERT_CERTIFICATE_EXPIRED$/.test(failure.code)) {
    return {
      ...failure,
      hint: `by this machine's clock (${now.toISOString()}) our client certificate "${formatDn(client.leaf.subject)}" and the CA certificates sent with it are valid (the certificate until ${day(validTo)}): either the backend's clock is wrong, or the chain it builds holds an expired CA certificate of its own (an old copy of our issuing CA): ask the backend team which certificate it found expired; if this machine's clock is the wrong one (check NTP), renew the certificate`,
    };
  }
  const left = validTo - now.getTime();
  if (left > SOON_MS) return failure;
  return { ...failure, hint: `${failure.hint}; note: the client certificate expires on ${day(validTo)} (${Math.floor(left / 86_400_000)} days left)` };
}

/** A 401 on the retry with a token or session obtained just before: what the backend refuses is the credential itself. */
function freshCredentialsRefused(node: NodeDefinition, x: Exchange, host: string): Failure {
  const oauth = node.auth?.type === 'oauth2-client-credentials';
  const said = bearerError(x.response?.headers);
  return failureOf(
    'http_status',
    'HTTP_401',
    `${host} answered 401 again to a ${oauth ? 'token' : 'session'} obtained just before (the cached one was dropped after its first 401)${said ? `: ${said}` : ''}`,
    oauth
      ? 'the backend does not accept tokens this authorization server issues for this client: check auth.scope and the audience or resource in auth.params, and that the backend trusts the token issuer (and, for certificate-bound tokens, sees our client certificate)'
      : 'the backend refuses the session its login endpoint gave: check that auth.tokens name the login endpoint of this backend, and the header each token goes into',
    'response',
  );
}

/** Statuses a name-based gateway gives a request whose Host names no virtual host it serves, or another one than the TLS server name (421 Misdirected Request). */
const MISROUTED_STATUSES = new Set([400, 404, 421]);

/**
 * A 400/404/421 when tls.servername differs from the URL's host: the handshake reached the
 * virtual host the server name chose, but the request's Host header still names the URL's host,
 * and gateways (nginx, haproxy, ingress controllers) route requests by Host. The definition cannot
 * set Host, so the hint says how to put the name in the URL instead.
 */
function routedByHost(failure: Failure | null, node: NodeDefinition, target: { hostname: string; host: string; port: string }, x: Exchange): Failure | null {
  const servername = node.tls.servername;
  const status = x.response?.status;
  if (!failure || failure.category !== 'http_status' || status === undefined || !MISROUTED_STATUSES.has(status) || !servername) return failure;
  if (x.redirects?.length || servername.toLowerCase() === target.hostname.toLowerCase()) return failure;
  return {
    ...failure,
    hint: `the handshake named "${servername}" (tls.servername) but the request's Host header is "${target.host}" (request.url): gateways that serve several names route requests by Host, so this one may have gone to another virtual host${status === 421 ? ' (421: the server says so)' : ''}: write the name in request.url (https://${servername}${target.port ? `:${target.port}` : ''}/…) and let DNS or /etc/hosts give its address; otherwise ${failure.hint}`,
  };
}

/** The exchange of this invocation that opened the kept-alive connection `x` ran on, if one did. */
function openerOf(x: Exchange, earlier: readonly Exchange[]): Exchange | undefined {
  return x.probe === undefined ? undefined : earlier.find((e) => e.probe === x.probe && e.tls?.connectionReused === false);
}

/** Render, with anything the renderer throws besides its own errors (a context nested too deep to serialise, an unpaired surrogate) as bad input. */
function renderOrRefuse(node: NodeDefinition, context: Record<string, unknown>): RenderedRequest {
  try {
    return renderRequest(node, context);
  } catch (error) {
    if (error instanceof InvalidInputError) throw error;
    throw new InvalidInputError('SVCNODE_INVALID_REQUEST', `the request cannot be rendered from the context: ${errorMessage(error)}`, {
      cause: error,
      field: '/context',
      hint: 'check the invocation context: values must be JSON of reasonable depth and well-formed text',
    });
  }
}

/**
 * A Result without any of the secrets the call sent (`sent`), wherever a peer's text reached:
 * the request's URL and redirects (a backend chose their Locations), the response, the token
 * step and the failure (in pieces too: a message may have cut what it quotes).
 */
function withoutSent(result: Result, sent: readonly string[]): void {
  const { request, response } = result;
  const redirects = request.redirects?.map((hop) => ({ ...hop, url: reportedUrl(hop.url, sent) }));
  const urls = { ...request, url: reportedUrl(request.url, sent), ...(redirects ? { redirects } : {}) };
  const location = headerValue(response?.headers.location);
  const answer = response && location !== undefined ? { ...response, headers: { ...response.headers, location: reportedUrl(location, sent) } } : response;
  const parts = scrubSecrets({ request: urls, tls: result.tls, response: answer, ...(result.auth ? { auth: result.auth } : {}) }, sent);
  result.request = parts.request;
  result.tls = parts.tls;
  result.response = parts.response;
  if (parts.auth) result.auth = parts.auth;
  result.failure = scrubSecrets(result.failure, sent, { cutShort: true });
}

/**
 * THE execution path of a service node, shared by dry-run and worker: render, check, authenticate
 * when the node asks, call over mutual TLS, classify, report. For a node that passed validation
 * (the registry's and dry-run's) it never throws: every outcome is a Result.
 */
export async function invoke(node: NodeDefinition, context: Record<string, unknown>, deps: InvokeDeps, options: InvokeOptions = {}): Promise<Result> {
  const started = performance.now();
  const now = deps.now?.() ?? new Date();
  const result = emptyResult(node.id, { method: node.request.method, url: reportedUrl(node.request.url) }, options);
  /** Credentials the request carried (its own credential headers, those of `auth`): what an echoing peer must not get into the Result. */
  const sent: string[] = [];
  const finish = (failure: Failure | null, profile?: LoadedProfile): Result => {
    result.failure = failure && profile ? withClientDates(failure, profile, now) : failure;
    result.ok = failure === null;
    result.timings.totalMs = round(performance.now() - started);
    if (sent.length > 0) withoutSent(result, sent);
    return result;
  };
  const record = (x: Exchange): void => {
    if (x.replays > 0) options.onReplays?.(x.replays);
    result.tls = x.tls ?? result.tls;
    result.response = x.response;
    result.timings.connectMs = x.timings.connectMs || result.timings.connectMs;
    result.timings.handshakeMs = x.timings.handshakeMs || result.timings.handshakeMs;
  };

  let rendered: RenderedRequest;
  let profile: LoadedProfile;
  try {
    rendered = renderOrRefuse(node, context);
    result.request.url = reportedUrl((rendered.target ?? rendered.url).href);
    for (const name in rendered.headers) if (credentialHeader(name)) sent.push(...headerSecrets(name, rendered.headers[name] as string));
    const loaded = deps.profile(node.tls.profile);
    profile = loaded instanceof Promise ? await loaded : loaded;
  } catch (error) {
    return finish(classifyError(error, { host: '', profileName: node.tls.profile, clientSubject: undefined, probe: undefined, proxy: false }));
  }
  const expired = clientDateFailure(profile, now);
  if (expired) return finish(expired);

  const settings = callSettings(node, profile, (rendered.target ?? rendered.url).origin, true);
  const headers: Record<string, string> = {};
  if (node.tls.clientCertHeader && profile.client) {
    headers[node.tls.clientCertHeader.toLowerCase()] = clientFacts(profile)?.headerValue ?? '';
  }
  const tokens = deps.tokens ?? processTokens;
  /** The exchanges of the authentication step: the call may ride a connection one of them opened. */
  const authExchanges: Exchange[] = [];
  // A node that authenticates first spends one timeouts.totalMs on authentication and call together.
  const budget = node.auth ? attemptSignal(settings.totalMs, options.signal) : undefined;
  const signal = budget?.signal ?? options.signal;
  try {
    for (let authAttempt = 0; ; authAttempt++) {
      if (node.auth) {
        const auth = await authHeaders(node, profile, deps.agents, tokens, signal, authAttempt > 0);
        if (auth.report) result.auth = auth.report;
        if ('failure' in auth) {
          if (auth.exchange) {
            record(auth.exchange);
            const opener = auth.exchange.tls?.connectionReused ? openerOf(auth.exchange, [...authExchanges, ...(auth.exchanges ?? [])]) : undefined;
            if (opener) result.timings = { ...result.timings, connectMs: opener.timings.connectMs, handshakeMs: opener.timings.handshakeMs };
          }
          if (auth.retryAfterMs !== undefined) result[AUTH_RETRY_AFTER] = auth.retryAfterMs;
          return finish(auth.failure, profile);
        }
        authExchanges.push(...(auth.exchanges ?? []));
        Object.assign(headers, auth.headers);
        for (const [name, value] of Object.entries(auth.headers)) sent.push(...headerSecrets(name, value));
      }
      const x = await exchange(rendered, settings, profile, deps.agents, signal, headers);
      record(x);
      // On the connection the login or token request just opened: its connect and handshake are the ones behind `tls`.
      const opener = x.tls?.connectionReused ? openerOf(x, authExchanges) : undefined;
      if (opener) result.timings = { ...result.timings, connectMs: opener.timings.connectMs, handshakeMs: opener.timings.handshakeMs };
      // What happened to the request itself: sent again on a new connection, redirected.
      if (x.replays > 0) result.request.resent = x.replays;
      if (x.redirects) result.request.redirects = x.redirects;
      if (x.failure) return finish(x.failure, profile);
      // A 401 with cached tokens: they expired server-side; authenticate once more, then accept the verdict.
      if (reauthenticates(node, x.response)) {
        if (authAttempt === 0) {
          await forgetTokens(node, profile, tokens, headers);
          continue;
        }
        // Refused again with credentials fetched a moment ago: not an expiry, and no status to accept.
        if (!accepts(node.response?.acceptStatus ?? DEFAULTS.response.acceptStatus, 401)) return finish(freshCredentialsRefused(node, x, (rendered.target ?? rendered.url).host), profile);
      }
      const target = rendered.target ?? rendered.url;
      return finish(routedByHost(statusFailure(x, node.response?.acceptStatus ?? DEFAULTS.response.acceptStatus, target.host, profile), node, target, x), profile);
    }
  } finally {
    budget?.done();
  }
}
