import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { SvcnodeError, TransportError, errorCode } from '../errors.js';
import { CERTIFICATE_STATUSES, certificateStatusFailure, classifyError, classifyHttpStatus, type ClassifyContext } from '../failures/classify.js';
import { revokedEntry } from '../failures/revocation-failure.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentPool, AgentSpec } from '../tls/agents.js';
import { tlsEndpoint } from '../tls/endpoint.js';
import { clientFacts } from './client-facts.js';
import { unusableKey } from '../tls/sigalgs.js';
import { phaseTimings, probeOf, type ConnectionProbe } from '../tls/probe.js';
import { revocationCrls } from '../tls/revocation.js';
import { onAbort } from './abort-fanout.js';
import { AttemptDeadline } from './attempt-budget.js';
import type { RenderedRequest } from './render.js';
import { keptHeaders, responseBody, type Failure, type ResponseReport, type TlsReport } from './result.js';
import { retryAfterNote } from './retry.js';
import { partialResponse, send, type CallSettings, type Redirect, type Sent } from './transport.js';

/** The outcome of one HTTP exchange over mutual TLS, classified. */
export interface Exchange {
  tls: TlsReport | null;
  response: ResponseReport | null;
  /** First 4 KiB of the body as text, for classification and token parsing. */
  bodyText: string;
  /** Null when a response arrived; the status is judged by the caller. */
  failure: Failure | null;
  /** The connection the exchange ran on: whether the server asked for a certificate bears on a 401/403. */
  probe?: ConnectionProbe;
  timings: { connectMs: number; handshakeMs: number };
  /** Times the request was sent again because a kept-alive connection closed under it unanswered. */
  replays: number;
  /** Redirects followed to the response. */
  redirects?: Redirect[];
}

export function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

export function clientCertificate(profile: LoadedProfile): TlsReport['clientCertificate'] {
  const f = clientFacts(profile);
  return f ? { subject: f.subject, fingerprint256: f.fingerprint256 } : null;
}

/**
 * Only what was sent: a server that asked for no certificate got none, and neither did one whose
 * signature algorithms our key cannot make (OpenSSL then sends an empty Certificate message), nor
 * a TLS 1.3 server whose certificate or identity failed our checks: TLS 1.3 sends ours after the
 * server's whole flight, and Node ends the connection on a failed check before that flight of
 * ours leaves (a server that logs what it receives sees no certificate).
 */
export function certificateSent(probe: ConnectionProbe, profile: LoadedProfile): boolean {
  const facts = clientFacts(profile);
  if (facts === null || probe.certificateRequested === false) return false;
  if (probe.protocol === 'TLSv1.3' && probe.secureAt !== undefined && probe.verified !== true) return false;
  return unusableKey(probe.sharedSigalgs, facts.key, probe.protocol) === undefined;
}

/**
 * The TLS part of a Result, from the connection's probe; null when no handshake completed, nor
 * got as far as our TLS 1.2 flight (whose server may then reject the certificate we sent).
 */
export function tlsReport(probe: ConnectionProbe | undefined, reused: boolean, profile: LoadedProfile): TlsReport | null {
  if (probe?.secureAt === undefined && probe?.flightAt === undefined) return null;
  return {
    protocol: probe.protocol ?? null,
    cipher: probe.cipher ?? null,
    sessionReused: probe.sessionReused,
    connectionReused: reused,
    serverChain: probe.serverChain ?? [],
    clientCertificate: certificateSent(probe, profile) ? clientCertificate(profile) : null,
    ...(probe.revocation ? { revocation: probe.revocation.map(({ profile: _profile, ...verdict }) => verdict) } : {}),
  };
}

/**
 * A chain OpenSSL itself found revoked (hard mode with trust.crl) has no verdict from our checker:
 * the Result's tls.revocation gets the one the failure states, as soft mode and OCSP give theirs.
 */
export function withRevokedVerdict(tls: TlsReport | null, failure: Failure, crls: ClassifyContext['crls']): TlsReport | null {
  if (!tls || failure.category !== 'server_cert_revoked' || tls.revocation?.some((v) => v.result === 'revoked')) return tls;
  const subject = revokedEntry(tls.serverChain, crls)?.entry.subject;
  return { ...tls, revocation: [...(tls.revocation ?? []), { source: 'crl', result: 'revoked', ...(subject ? { subject } : {}), message: failure.message }] };
}

/**
 * Network failures and timeouts without a phase of their own say how far the connection got:
 * connect, tls, or request (verified, so the request may have reached the backend).
 */
function withPhase(failure: Failure, error: unknown, probe: ConnectionProbe | undefined, proxy: boolean): Failure {
  if (failure.category !== 'connect_failed' && failure.category !== 'timeout') return failure;
  if (failure.phase === 'proxy' || (error instanceof TransportError && error.phase !== undefined)) return failure;
  // Through a proxy the probe exists only once the tunnel stands: before that, the proxy hop failed.
  const phase = probe?.verified ? 'request' : probe?.connectedAt !== undefined ? 'tls' : proxy ? 'proxy' : 'connect';
  return phase === failure.phase ? failure : { ...failure, phase };
}

export function classifyContext(host: string, profile: LoadedProfile, probe: ConnectionProbe | undefined, proxy: boolean, spec?: AgentSpec): ClassifyContext {
  const facts = clientFacts(profile);
  const unavailable = profile.trust.crlsUnavailable?.map((u) => u.message) ?? [];
  const servername = spec ? tlsEndpoint(spec.origin, spec.servername).servername : undefined;
  return {
    host,
    ...(spec ? { tls: { ...(spec.minVersion ? { minVersion: spec.minVersion } : {}), ...(spec.policy?.maxVersion ? { maxVersion: spec.policy.maxVersion } : {}), ...(spec.policy?.ciphers ? { ciphers: spec.policy.ciphers } : {}), ...(servername ? { servername } : {}) } } : {}),
    profileName: profile.name,
    clientSubject: facts?.subject,
    ...(facts ? { clientKey: facts.key, clientUsages: facts.extKeyUsage } : {}),
    probe,
    proxy,
    ...(probe?.serverChain ? { serverChain: probe.serverChain } : {}),
    ...(profile.trust.crls?.length || profile.trust.distributionPoints ? { crls: revocationCrls(profile) } : {}),
    ...(unavailable.length > 0 ? { crlsUnavailable: unavailable } : {}),
  };
}

/** Whether `status` is among the accepted ones (numbers or "2xx" classes). */
export function accepts(accept: readonly (number | string)[], status: number): boolean {
  return accept.some((a) => (typeof a === 'number' ? a === status : a[0] === String(status)[0]));
}

/** Judge an HTTP status against the accepted ones (numbers or "2xx" classes). */
export function statusFailure(exchange: Exchange, accept: readonly (number | string)[], host: string, profile: LoadedProfile): Failure | null {
  const status = exchange.response?.status ?? 0;
  const accepted = accepts(accept, status);
  // nginx's verdicts on our certificate (400/495/496) count even where the node accepts the status.
  if (accepted && !CERTIFICATE_STATUSES.has(status)) return null;
  const ctx = classifyContext(host, profile, exchange.probe, false);
  return accepted ? (certificateStatusFailure(status, exchange.bodyText, ctx) ?? null) : classifyHttpStatus(status, exchange.bodyText, ctx, exchange.response ? retryAfterNote(exchange.response) : '');
}

/** Sends again after kept-alive connections closed unanswered: several may be closing at once (a backend restart). */
const MAX_REPLAYS = 2;

/**
 * A connection ended before any byte of the response. On a kept-alive connection that is the
 * backend closing it for being idle as the request went out (or dropping the request).
 */
function closedUnanswered(error: unknown): boolean {
  if (error instanceof TransportError && error.phase === 'response') return false;
  const code = errorCode(error instanceof SvcnodeError && error.cause !== undefined ? error.cause : error);
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** What a reset on a kept-alive connection means, and what to change, in place of "is the backend up". */
function keptAliveClosed(failure: Failure, replayable: boolean, probe: ConnectionProbe | undefined, host: string): Failure {
  const before = probe ? ` (it had answered ${probe.responses} request${probe.responses === 1 ? '' : 's'} on it)` : '';
  return {
    ...failure,
    message: `${host}: the backend closed a kept-alive connection without answering${before}`,
    hint: replayable
      ? 'the request was sent again on other connections, which closed as well: check the backend\'s health (restarting or overloaded)'
      : 'the backend most likely closed the connection for being idle as the request went out, and may have received it, so it is not sent again: set timeouts.keepAliveMs below the backend\'s keep-alive timeout, or retry.nonIdempotent when the endpoint tolerates a repeat',
  };
}

/** Classify an error of `send`: cancellation and the overall deadline first, then the error itself. */
function classifyFailure(error: unknown, ctx: ClassifyContext, settings: CallSettings, deadline: { hit: boolean }, external: AbortSignal | undefined, elapsedMs: number): Failure {
  // The attempt's budget (authentication included) ran out: a deadline, not a cancellation.
  const attempt = external?.aborted && external.reason instanceof AttemptDeadline ? external.reason : undefined;
  if (external?.aborted && !deadline.hit && !attempt) {
    return withPhase(classifyError(new TransportError('SVCNODE_ABORTED', 'the call was cancelled before it finished'), ctx), undefined, ctx.probe, ctx.proxy);
  }
  if ((deadline.hit || attempt) && !ctx.probe?.timedOut) {
    const message = attempt
      ? `no complete answer within timeouts.totalMs (${attempt.totalMs} ms) for the whole attempt, authentication included (${round(elapsedMs)} ms in this request)`
      : `no complete answer within timeouts.totalMs (${settings.totalMs} ms, ${round(elapsedMs)} ms elapsed)`;
    const hint = attempt ? 'the token or login request and the call together took too long: check both endpoints\' health, or raise timeouts.totalMs in the node' : 'the backend did not answer in time: check its health or raise timeouts in the node';
    // Headers in hand: the body or its decoding ran out of time, and the Result keeps the status.
    const deadlineError = new TransportError('SVCNODE_DEADLINE', message, { cause: error, hint, ...(partialResponse(error) ? { phase: 'response' as const } : {}) });
    return withPhase(classifyError(deadlineError, ctx), deadlineError, ctx.probe, ctx.proxy);
  }
  return withPhase(classifyError(error, ctx), error, ctx.probe, ctx.proxy);
}

/**
 * One exchange on one connection: send on the pooled agent, measure the connection, classify any
 * error. A chain that does not verify was already read from the failing socket (see instrument),
 * so the report shows it and the hint can name the missing intermediate or root.
 */
export async function exchange(rendered: RenderedRequest, settings: CallSettings, profile: LoadedProfile, agents: AgentPool, external: AbortSignal | undefined, extraHeaders: Record<string, string> = {}): Promise<Exchange> {
  let probe: ConnectionProbe | undefined;
  let reused = false;
  const onSocket = (socket: object): void => {
    probe = probeOf(socket);
    reused = probe?.secureAt !== undefined;
    if (probe?.idleSince !== undefined) {
      probe.idleWhenTaken = performance.now() - probe.idleSince;
      probe.idleSince = undefined;
    }
    // A fresh connection's first application byte (node:http's reader is attached by now): the
    // server answered, so a close after it is no verdict on our certificate. Once per connection.
    const fresh = probe;
    if (fresh && !reused) (socket as Readable).once('data', () => (fresh.answered = true));
  };
  // One timer and a destroy hook per exchange (an AbortController per call showed in profiles).
  let abortCurrent: (() => void) | undefined;
  let aborted = false;
  const abort = (): void => {
    aborted = true;
    abortCurrent?.();
  };
  const bindAbort = (fn: () => void): void => {
    abortCurrent = fn;
    if (aborted) fn();
  };
  const deadline = { hit: false };
  const timer = setTimeout(() => {
    deadline.hit = true;
    abort();
  }, settings.totalMs);
  timer.unref();
  let unbind: (() => void) | undefined;
  if (external?.aborted) abort();
  else if (external) unbind = onAbort(external, abort);
  const out: Exchange = { tls: null, response: null, bodyText: '', failure: null, timings: { connectMs: 0, handshakeMs: 0 }, replays: 0 };
  const started = performance.now();
  let error: unknown;
  try {
    let sent: Sent;
    for (let replays = 0; ; replays++) {
      try {
        sent = await send(rendered, settings, agents, bindAbort, onSocket, extraHeaders);
        break;
      } catch (caught) {
        // The pooled connection was closed under the request: the backend never answered it.
        const closed = reused && !aborted && closedUnanswered(caught);
        // Most likely its idle timeout, reached as the request went out: this agent's limit learns it.
        if (closed && probe?.idleWhenTaken !== undefined) probe.idleLimit?.observe(probe.idleWhenTaken);
        if (!(closed && settings.replayable && replays < MAX_REPLAYS)) throw caught;
        out.replays++;
      }
    }
    const { response, body, truncated } = sent;
    if (sent.redirects) out.redirects = sent.redirects;
    if (probe) {
      probe.responses++;
      if (probe.agent) probe.agent.answeredAt = performance.now();
    }
    out.response = {
      status: response.statusCode ?? 0,
      headers: keptHeaders(response.headers),
      ...responseBody(body, response.headers['content-type'], truncated),
      ...(truncated ? { truncated: true } : {}),
    };
    out.bodyText = body.toString('utf8', 0, 4096);
  } catch (caught) {
    error = caught;
  } finally {
    clearTimeout(timer);
    unbind?.();
  }
  const used: ConnectionProbe | undefined = probe;
  if (used && !reused) {
    const times = phaseTimings(used);
    out.timings = { connectMs: round(times.connectMs), handshakeMs: round(times.handshakeMs) };
  }
  out.tls = tlsReport(used, reused, profile);
  if (used) out.probe = used;
  if (out.response) return out;

  const ctx = classifyContext((rendered.target ?? rendered.url).host, profile, used, settings.spec.proxyUrl !== undefined, settings.spec);
  const failure = classifyFailure(error, ctx, settings, deadline, external, performance.now() - started);
  out.tls = withRevokedVerdict(out.tls, failure, ctx.crls);
  // Headers had arrived (the body then stalled, broke or did not decode): the status is part of the story.
  const partial = partialResponse(error);
  if (partial) out.response = { status: partial.status, headers: keptHeaders(partial.headers), body: null };
  out.failure = reused && failure.category === 'connect_failed' && closedUnanswered(error) ? keptAliveClosed(failure, settings.replayable, used, ctx.host) : failure;
  return out;
}
