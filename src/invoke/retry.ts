import type { HttpMethod, NodeDefinition } from '../definitions/types.js';
import { isTransient } from '../failures/classify.js';
import { DEFAULTS } from './defaults.js';
import { AUTH_RETRY_AFTER, headerValue, type Failure, type ResponseReport, type Result } from './result.js';

/** Methods whose repetition has the effect of one request (RFC 9110 §9.2.2). */
export const IDEMPOTENT: ReadonlySet<HttpMethod> = new Set<HttpMethod>(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** A Retry-After value (delay-seconds or HTTP-date) in ms from `now`; undefined when absent or unreadable. */
export function askedWaitMs(header: string | string[] | undefined, now: number): number | undefined {
  const value = headerValue(header)?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The hint of an authentication, token or discovery endpoint that answered 5xx or 429 (`who`: e.g. "the token endpoint"). */
export function endpointFailedHint(who: string, status?: number): string {
  if (status === 429) return `${who} is rate-limiting this client (HTTP 429): the call is retried within its retry.limit, after the wait it asks for (Retry-After); if it persists, ask its team to raise the limit for this client`;
  return `${who} failed on its side (temporary as a rule): the call is retried within its retry.limit; if it persists, ask its team`;
}

/**
 * A failure of an authentication step's own request (discovery, token, login) on its way (connect,
 * TLS, timeout): phase auth, as the node's own request was not made, but one on the way to a proxy
 * stays phase proxy. The classifier's hint speaks of "the backend": said here of `who` (the server
 * the step called), with `check` added when it could not be reached.
 */
export function authStepFailure(f: Failure, message: string, who: string, check: string): Failure {
  if (f.phase === 'proxy') return { ...f, message };
  const unreachable = f.category === 'connect_failed' || f.category === 'timeout';
  const hint = f.hint.replace(/\bthe backend team\b/g, `${who}'s team`).replace(/\bthe backend\b/g, who);
  return { ...f, phase: 'auth', message, hint: unreachable ? `${hint}; ${check}` : hint };
}

/** How a failure message mentions the wait an endpoint asked for. */
export function askedWaitNote(ms: number | undefined): string {
  return ms === undefined ? '' : ` (Retry-After: ${ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`})`;
}

/** Statuses whose Retry-After the retry policy honours: 429 and 5xx. */
function asksToWait(status: number): boolean {
  return status === 429 || status >= 500;
}

/** How the failure of a 429 or 5xx answer quotes the wait it asked for (` (Retry-After: 30 s)`), as the retry policy reads it; '' for other statuses or no readable wait. */
export function retryAfterNote(response: ResponseReport, now: number = Date.now()): string {
  return asksToWait(response.status) ? askedWaitNote(askedWaitMs(response.headers['retry-after'], now)) : '';
}

/** The wait the Result's backend, or the authentication endpoint that failed it, asked for. */
export function retryAfterMs(result: Result, now: number): number | undefined {
  return result[AUTH_RETRY_AFTER] ?? askedWaitMs(result.response?.headers['retry-after'], now);
}

/**
 * The retry policy shared by dry-run and worker: the delay before the next attempt, or undefined
 * when the Result is final. Only transient failures are retried (connect failures, timeouts, 5xx
 * and 429; never a redirect loop, an undecodable body or bad input); a request that may have
 * reached the backend is retried only for idempotent methods unless the node sets
 * retry.nonIdempotent. The delay has full jitter, so jobs that failed together do not retry
 * together; a server's Retry-After (the backend's, or that of the authentication endpoint that
 * failed the attempt) is honoured when it is within retry.maxBackoffMs, and ends the retries when longer.
 */
export function retryDelay(result: Result, node: NodeDefinition, attemptsMade: number, random: () => number = Math.random, now: number = Date.now()): number | undefined {
  const failure = result.failure;
  if (!failure) return undefined;
  const policy = { ...DEFAULTS.retry, ...node.retry };
  if (attemptsMade > policy.limit) return undefined;
  if (!isTransient(failure, result.response?.status ?? 0)) return undefined;
  const mayHaveReachedBackend = failure.phase === 'request' || failure.phase === 'response';
  if (mayHaveReachedBackend && !IDEMPOTENT.has(node.request.method) && !policy.nonIdempotent) return undefined;
  // A wait longer than the node may take ends the retries: a retry sooner than asked hammers a
  // backend that asked for quiet, and a later one outlives the platform's wait.
  const asked = retryAfterMs(result, now);
  if (asked !== undefined) return asked <= policy.maxBackoffMs ? asked : undefined;
  return Math.floor(random() * Math.min(policy.backoffMs * 2 ** (attemptsMade - 1), policy.maxBackoffMs));
}

/**
 * A Result as the retry policy leaves it: when it gives up on a 429 or 5xx, the hint says how many
 * attempts were made and why no more, instead of promising a retry. Other Results are unchanged.
 */
export function settledResult(result: Result, node: NodeDefinition): Result {
  const failure = result.failure;
  const status = result.response?.status ?? 0;
  if (!failure || failure.code !== `HTTP_${status}` || !asksToWait(status) || retryDelay(result, node, result.attempts, () => 0) !== undefined) return result;
  const policy = { ...DEFAULTS.retry, ...node.retry };
  const said = `${status === 429 ? 'the backend rate-limited this client' : 'the backend failed'} (HTTP ${status})`;
  const advice = status === 429 ? "call it less often, or ask the backend team to raise this client's limit" : 'check its health, or ask its team';
  const n = result.attempts;
  const on = n === 1 ? 'on the only attempt' : `on the last of ${n} attempts`;
  let hint: string;
  if (n > policy.limit) hint = `${said} ${on} (retry.limit ${policy.limit}): ${advice}`;
  else if (!IDEMPOTENT.has(node.request.method) && !policy.nonIdempotent) hint = `${said} ${on}: a ${node.request.method} that reached the backend is retried only with retry.nonIdempotent: true; ${advice}`;
  else if ((retryAfterMs(result, Date.now()) ?? 0) > policy.maxBackoffMs) hint = `${said} ${on}, and asked to be called again later than retry.maxBackoffMs (${policy.maxBackoffMs} ms) allows: not retried sooner than it asked; ${advice}`;
  else return result;
  return { ...result, failure: { ...failure, hint } };
}
