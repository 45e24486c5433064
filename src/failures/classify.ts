import { performance } from 'node:perf_hooks';
import { InvalidInputError, ProxyError, SvcnodeError, TransportError, errorCode, errorMessage } from '../errors.js';
import type { LoadedCrl } from '../pki/crl.js';
import type { ChainEntry, ConnectionProbe } from '../tls/probe.js';
import { effectiveCode, readableMessage } from '../tls/openssl-error.js';
import { TRANSIENT_PROXY_STATUS } from '../tls/proxy-error.js';
import type { ClientKey } from '../tls/sigalgs.js';
import { refineClientVerdict, renegotiationBodyStatus, unsentCertificateStatus } from './client-cert-reason.js';
import { failureOf as failure, inputFailure, type Failure } from './failure.js';
import { ocspFailure } from './ocsp-failure.js';
import { CRL_PENDING, REVOCATION_UNKNOWN } from './revocation-failure.js';
import { serverCertFailure } from './server-cert.js';

/** What the classifier knows besides the error itself. */
export interface ClassifyContext {
  host: string;
  profileName: string;
  /** Subject of the client certificate we presented, if the profile has one. */
  clientSubject: string | undefined;
  /** Its key, to tell whether the server's signature algorithms let us send it at all. */
  clientKey?: ClientKey;
  /** Its extended key usages by name (empty: any purpose). */
  clientUsages?: readonly string[];
  /** Probe of the connection the request ran on, if one was created. */
  probe: ConnectionProbe | undefined;
  /** The chain the server presented, read from the failing connection itself. */
  serverChain?: ChainEntry[];
  proxy: boolean;
  /** Reference time for naming the expired certificate of a chain. @defaultValue now */
  now?: number;
  /** The profile's CRLs, to name the revoked certificate and its source in hints. */
  crls?: readonly LoadedCrl[];
  /** Why CRLs the profile names could not be downloaded (CRL_UNAVAILABLE findings), for the same hints. */
  crlsUnavailable?: readonly string[];
  /** The node's TLS settings that decide what the handshake offers (for protocol hints). */
  tls?: { minVersion?: string; maxVersion?: string; ciphers?: string; servername?: string };
}

/** Alerts the server sends about *our* certificate. */
const CLIENT_REJECTED_ALERT = /^ERR_SSL_(?:TLSV1|SSLV3|TLSV13)_ALERT_(?:UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR|CERTIFICATE_EXPIRED)$/;
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** Hints of connect codes that do not mean "the backend is down". */
const CONNECT_HINTS = new Map([
  ['ENOTFOUND', 'the host name does not resolve: check the URL and DNS'],
  // EAI_AGAIN: the resolver failed or could not be reached (SERVFAIL, no answer), not a name that does not exist.
  ['EAI_AGAIN', 'the DNS server failed to answer for this name (a temporary DNS failure, not a name that does not exist): check the resolver in /etc/resolv.conf and that this machine reaches it; the call is retried within retry.limit'],
]);
/**
 * This machine, not the backend, could not open the connection: no file descriptor left (the
 * process's or the system's), no kernel buffer, no free local port. Transient: retried.
 */
const LOCAL_RESOURCE_HINTS: ReadonlyMap<string, string> = new Map(Object.entries({
  EMFILE: 'this worker process has no file descriptor left (its open-files limit, ulimit -n or systemd LimitNOFILE): raise the limit or lower --concurrency; the call never left this machine',
  ENFILE: 'this machine has no file descriptor left (fs.file-max): the call never left it; check what holds them',
  ENOBUFS: 'the kernel of this machine had no buffer space for the connection: the call never left it; check its memory and network buffers',
  EADDRNOTAVAIL: 'no local address or port was free for the connection: this machine ran out of ephemeral ports (connections piling up in TIME_WAIT: keep them alive with timeouts.keepAliveMs, or widen net.ipv4.ip_local_port_range), or it has no address of the URL\'s family (IPv6)',
}));
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED', 'SVCNODE_CONNECTION_CLOSED']);
const TIMEOUT_CODES = new Set(['SVCNODE_TIMEOUT', 'ETIMEDOUT', 'SVCNODE_RESPONSE_TIMEOUT', 'SVCNODE_IDLE_TIMEOUT', 'SVCNODE_DEADLINE']);
/** Our codes of the HTTP exchange that no retry can fix. */
const RESPONSE_CODES = new Set(['SVCNODE_TOO_MANY_REDIRECTS', 'SVCNODE_BAD_REDIRECT', 'SVCNODE_BAD_RESPONSE', 'SVCNODE_DECODE_FAILED', 'SVCNODE_UNSUPPORTED_ENCODING']);

/**
 * Failure codes that are never retried although their category (connect_failed, timeout,
 * http_status) usually is: the same request would fail the same way.
 */
export const PERMANENT_CODES: ReadonlySet<string> = new Set([...RESPONSE_CODES, 'SVCNODE_UNEXPECTED_ERROR', 'SVCNODE_PROXY_TLS', 'SVCNODE_PROXY_BAD_RESPONSE', 'EINVAL']);

/** A failure that a later attempt may get past (the node's method permitting). */
export function isTransient(failure: Failure, status: number): boolean {
  if (PERMANENT_CODES.has(failure.code)) return false;
  if (failure.code === 'SVCNODE_TOKEN_ENDPOINT_UNAVAILABLE') return true;
  // A distribution-point CRL was being downloaded: the next attempt finds it.
  if (failure.code === REVOCATION_UNKNOWN && failure.hint.includes(CRL_PENDING)) return true;
  const proxyStatus = /^PROXY_(\d{3})$/.exec(failure.code)?.[1];
  if (proxyStatus !== undefined) return TRANSIENT_PROXY_STATUS.has(Number(proxyStatus));
  if (failure.category === 'connect_failed' || failure.category === 'timeout') return true;
  return failure.category === 'http_status' && (status >= 500 || status === 429);
}

/** Close within this window after a fresh TLS 1.3 handshake, before any response: the server's verdict on our certificate. */
export const CLIENT_VERDICT_WINDOW_MS = 500;

/**
 * TLS 1.2: the server asked for a certificate, our flight (with none in it) went out, and the
 * server answered with a fatal alert before the handshake ended. Whatever alert it chose (OpenSSL
 * says handshake_failure, GnuTLS decode_error), the missing certificate is what it refused.
 */
function refusedEmptyFlight(code: string, ctx: ClassifyContext): boolean {
  const probe = ctx.probe;
  return !ctx.clientSubject && /_ALERT_/.test(code) && probe?.certificateRequested === true && probe.keylogLabel === 'CLIENT_RANDOM' && probe.secureAt === undefined;
}

function clientCertFailure(code: string, message: string, ctx: ClassifyContext): Failure | undefined {
  const who = ctx.clientSubject ? `our client certificate "${ctx.clientSubject}"` : 'no client certificate';
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (code.endsWith('ALERT_HANDSHAKE_FAILURE') && ctx.probe?.keylog && !ctx.clientSubject) || refusedEmptyFlight(code, ctx)) {
    return ctx.clientSubject
      ? failure('client_cert_rejected', code, `${ctx.host} demanded a client certificate it accepts; it did not accept ${who}`, `check that the backend trusts the CA that issued "${ctx.clientSubject}"`)
      : failure('client_cert_required', code, `${ctx.host} requires a client certificate and profile "${ctx.profileName}" has none`, `add client.certificate and client.key (or client.pkcs12) to profile "${ctx.profileName}"`);
  }
  if (CLIENT_REJECTED_ALERT.test(code) || (code.endsWith('ALERT_HANDSHAKE_FAILURE') && ctx.probe?.keylog)) {
    const expired = code.endsWith('CERTIFICATE_EXPIRED');
    return failure(expired ? 'client_cert_expired' : 'client_cert_rejected', code, `${ctx.host} rejected ${who}: ${message}`,
      expired ? 'the backend considers our client certificate expired: renew it' : `register the client certificate (or its issuing CA) with the backend team; run \`svcnode certs inspect\` to show its fingerprint`);
  }
  return undefined;
}

/** How recently an answer to the same identity makes a close at the end of a handshake a dropped connection, not a verdict. */
export const RECENTLY_ANSWERED_MS = 60_000;

/**
 * A close without an alert as the server's verdict on our certificate, only where nothing else
 * explains it: TLS 1.2 after our certificate flight but before the handshake ended, or TLS 1.3
 * on a fresh connection within a short window after a handshake in which the server asked for a
 * certificate, before any byte of a response.
 */
function postHandshakeClose(code: string, ctx: ClassifyContext): Failure | undefined {
  const probe = ctx.probe;
  if (!probe || probe.responses > 0 || probe.answered || !RESET_CODES.has(code)) return undefined;
  const duringOurFlight = probe.secureAt === undefined && probe.keylogLabel === 'CLIENT_RANDOM';
  // A reset is reported before the socket's close: the error in hand is when the connection ended.
  const closedAt = probe.closedAt ?? performance.now();
  // A server that asked for no certificate has no verdict on one (a `return 444`, a Host it does not serve).
  const rightAfterTls13 = probe.secureAt !== undefined && probe.protocol === 'TLSv1.3' && !probe.sessionReused && probe.certificateRequested !== false && closedAt - probe.secureAt <= CLIENT_VERDICT_WINDOW_MS;
  if (!duringOurFlight && !rightAfterTls13) return undefined;
  // The same identity was answered on this origin moments ago: a close now is far more likely the
  // backend dropping its connections (a restart, a drain) than a verdict on the certificate.
  const answeredAt = probe.agent?.answeredAt;
  if (ctx.clientSubject && answeredAt !== undefined && closedAt - answeredAt <= RECENTLY_ANSWERED_MS) {
    return failure(
      'connect_failed',
      code,
      `${ctx.host} closed the connection at the end of the TLS handshake without answering, ${Math.max(0, Math.round((closedAt - answeredAt) / 1000))} s after it answered a call with the same client certificate: most likely it dropped its connections (a restart, a drain, a connection limit)`,
      'retried as a connection failure; if it keeps happening with no answer in between, it is judged a rejection of the client certificate (the backend\'s logs have the reason)',
      'tls',
    );
  }
  return ctx.clientSubject
    ? failure('client_cert_rejected', code, `${ctx.host} closed the connection at the end of the TLS handshake without answering: it most likely rejected our client certificate "${ctx.clientSubject}"`, 'register the client certificate (or its issuing CA) with the backend team; the server sent no alert, so its logs have the reason')
    : failure('client_cert_required', code, `${ctx.host} closed the connection right after the TLS handshake: it most likely requires a client certificate, and profile "${ctx.profileName}" has none`, `add a client certificate to profile "${ctx.profileName}"`);
}

/** The server's verdict on our certificate (an alert, or a close where nothing else explains it), sharpened by what we know of it. */
function clientVerdict(code: string, message: string, ctx: ClassifyContext): Failure | undefined {
  const verdict = clientCertFailure(code, message, ctx) ?? postHandshakeClose(code, ctx);
  return verdict && refineClientVerdict(verdict, ctx);
}

/** Every failure on the hop to the proxy: phase "proxy", never a server or client certificate category. */
function proxyFailure(error: ProxyError, ctx: ClassifyContext): Failure {
  const code = error.status !== undefined ? `PROXY_${error.status}` : error.code;
  const hint = error.hint ?? 'check proxy.url';
  if (error.code === 'SVCNODE_PROXY_TIMEOUT') return failure('timeout', error.code, `${ctx.host}: ${error.message}`, hint, 'proxy');
  return failure('connect_failed', code, error.message, hint, 'proxy');
}

/** What to change when the server and the node agree on no TLS version or cipher, from the node's own settings. */
function negotiationHint(code: string, ctx: ClassifyContext): string {
  const t = ctx.tls ?? {};
  if (/ALERT_PROTOCOL_VERSION$|UNSUPPORTED_PROTOCOL$/.test(code)) {
    if (t.minVersion === 'TLSv1.3') return 'the node asks for TLS 1.3 at least (tls.minVersion) and the server does not offer it: set tls.minVersion to TLSv1.2, or ask the backend team to enable TLS 1.3';
    if (t.maxVersion === 'TLSv1.2') return 'the node offers TLS 1.2 at most (tls.maxVersion) and the server does not accept it: remove tls.maxVersion, or ask the backend team to enable TLS 1.2';
    return 'the server accepts neither TLS 1.2 nor TLS 1.3: it most likely speaks only TLS 1.0/1.1, which svcnode does not use (tls.minVersion cannot go lower); the backend team must enable TLS 1.2 or later';
  }
  if (/ALERT_HANDSHAKE_FAILURE$|NO_SHARED_CIPHER$|NO_CIPHERS_AVAILABLE$/.test(code)) {
    return t.ciphers
      ? `the server accepts none of the ciphers in the node's tls.ciphers ("${t.ciphers}"): widen the list (\`openssl s_client -connect HOST:PORT -cipher ALL\` shows what the server takes), or drop it to offer OpenSSL's defaults`
      : "the server accepts none of the ciphers offered (OpenSSL's defaults; TLS 1.3's cannot be changed): if it needs an older TLS 1.2 cipher, set tls.ciphers to it (and tls.maxVersion TLSv1.2); `openssl s_client -connect HOST:PORT -cipher ALL` shows what it takes";
  }
  return "the server and the node share no TLS version or cipher: check tls.minVersion, tls.maxVersion and tls.ciphers against the server's TLS configuration";
}

/** Unwrap our generic network wrapper to the raw error it carries. */
function rawOf(error: unknown): unknown {
  return error instanceof TransportError && error.code === 'SVCNODE_NETWORK' ? error.cause : error;
}

/**
 * A host name with several addresses that all failed: Node (autoSelectFamily) throws an
 * AggregateError whose own message is empty, one error per address tried. Its message lists
 * them; its code is ECONNREFUSED when any address refused (the host answered: it is down, not
 * out of reach), else the first address's.
 */
function everyAddressFailed(root: unknown): { code: string | undefined; message: string } | undefined {
  if (!(root instanceof AggregateError) || !Array.isArray(root.errors) || root.errors.length === 0) return undefined;
  const errors = root.errors as unknown[];
  const codes = errors.map(errorCode);
  return {
    code: codes.find((c) => c === 'ECONNREFUSED') ?? codes.find((c) => c !== undefined) ?? errorCode(root),
    message: `no address of the host took the connection: ${errors.map((e) => errorMessage(e)).join('; ')}`,
  };
}

/** Map any error of a call to a Failure with one of the failure categories. */
export function classifyError(error: unknown, ctx: ClassifyContext): Failure {
  if (error instanceof InvalidInputError) {
    const input = inputFailure(error);
    // The definition must change (exit 2), but the request was sent: the refused redirect is a response.
    return error.code === 'SVCNODE_CROSS_ORIGIN_REDIRECT' ? { ...input, phase: 'response' } : input;
  }
  if (error instanceof ProxyError) return proxyFailure(error, ctx);
  const root = rawOf(error);
  const addresses = everyAddressFailed(root);
  const raw = addresses?.message ?? errorMessage(root).trim();
  const rawCode = addresses?.code ?? errorCode(root);
  const code = effectiveCode(rawCode ?? 'UNKNOWN', raw);
  const message = readableMessage(raw);
  const phase = error instanceof TransportError ? error.phase : undefined;
  if (error instanceof TransportError && RESPONSE_CODES.has(error.code)) {
    return failure('http_status', error.code, `${ctx.host}: ${message}`, error.hint ?? 'the backend answered in a way no retry can fix', 'response');
  }
  const classified = ocspFailure(root) ?? serverCertFailure(code, message, ctx, root) ?? clientVerdict(code, message, ctx);
  if (classified) return classified;

  if (TIMEOUT_CODES.has(code) || (root instanceof DOMException && root.name === 'TimeoutError')) {
    // Each address had Node's 250 ms (autoSelectFamilyAttemptTimeout), whatever the node's timeouts say.
    const unanswered = addresses ? 'no address of the host answered the connection attempt (each is tried for 250 ms before the next): check that the host is reachable from this machine (firewall, routing, proxy)' : undefined;
    const hint = root instanceof SvcnodeError && root.hint ? root.hint : (unanswered ?? 'the backend did not answer in time: check its health or raise timeouts in the node');
    return failure('timeout', code, `${ctx.host}: ${message}`, hint, phase);
  }
  if (code === 'SVCNODE_ABORTED') return failure('timeout', code, message, 'the worker was shutting down or the job was cancelled; it is safe to retry idempotent requests', phase ?? 'request');
  if (code === 'ERR_SSL_UNSAFE_LEGACY_RENEGOTIATION_DISABLED') {
    return failure('protocol_mismatch', code, `${ctx.host} does not support secure renegotiation (RFC 5746), which OpenSSL 3 requires by default`, 'set tls.legacyServerConnect: true on the node to allow this server, and ask the backend team to upgrade its TLS stack');
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return failure('protocol_mismatch', code, `${ctx.host} does not speak TLS on this port (${message})`, 'check the port in the URL: it may be a plain HTTP port');
  }
  if (code === 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME') {
    return failure('protocol_mismatch', code, `${ctx.host} does not serve the host name it was asked for (TLS alert unrecognized_name)`, 'set tls.servername to a name the backend serves (usually the name in its certificate); a URL with an IP address sends no name unless tls.servername is set');
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') {
    return failure('protocol_mismatch', code, `${ctx.host} does not speak HTTP/1.1 on this port: it refused the protocol svcnode offers in the TLS handshake (alert no_application_protocol), as a server of HTTP/2 only (gRPC) does`, 'svcnode calls HTTP/1.1 endpoints: ask the backend team for an HTTP/1.1 listener (most gateways serve both on one port), or check the port in the URL');
  }
  if (code.startsWith('ERR_SSL_')) return failure('protocol_mismatch', code, `${ctx.host}: TLS negotiation failed: ${message}`, negotiationHint(code, ctx));
  const local = LOCAL_RESOURCE_HINTS.get(code);
  if (local) return failure('connect_failed', code, `${ctx.host}: ${message}`, local, phase ?? 'connect');
  // TCP stood and the server hung up before it answered our ClientHello: not a backend that is down.
  if (RESET_CODES.has(code) && ctx.probe?.connectedAt !== undefined && !ctx.probe.keylog && ctx.probe.protocol === undefined && !ctx.proxy) {
    return failure('connect_failed', code, `${ctx.host} closed the connection during the TLS handshake, before answering: ${message}`, `the port accepts TCP but its TLS server hung up on our ClientHello: a server that routes by SNI does this for a name it has no route for (this call sent ${ctx.tls?.servername ? `"${ctx.tls.servername}"` : 'no name: the URL holds an IP address'}; set tls.servername to the name the backend expects), as does one that accepts none of the versions or ciphers offered, and so does a TCP load balancer or port-forward (haproxy in TCP mode, a Kubernetes Service) with no healthy server behind it; the backend's TLS log (or the balancer's) has the reason`, phase);
  }
  if (CONNECT_CODES.has(code) || RESET_CODES.has(code)) {
    const own = root instanceof SvcnodeError ? root.hint : undefined;
    return failure('connect_failed', code, `${ctx.host}: ${message}`, own ?? CONNECT_HINTS.get(code) ?? 'check that the backend is up and reachable from this machine (host, port, firewall, proxy)', phase);
  }
  if (code === 'EINVAL') {
    return failure('connect_failed', code, `${ctx.host}: the address cannot be used as written (${message})`, 'an IPv6 link-local address needs its zone (fe80::1%eth0) and a host name has at most 253 characters: fix the URL', phase);
  }
  // Not silently a network failure: a code of its own, logged by the caller with the raw code, never retried.
  return failure('connect_failed', 'SVCNODE_UNEXPECTED_ERROR', `${ctx.host}: unexpected error ${rawCode ?? '(no code)'}: ${message}`, 'this error is not one svcnode knows; the worker log has its raw code: report it with the log line', phase);
}

/** The statuses nginx answers a missing or rejected client certificate with. */
export const CERTIFICATE_STATUSES: ReadonlySet<number> = new Set([400, 495, 496]);

/**
 * nginx's verdict on our certificate, sent as HTTP after the handshake (400 with its SSL error
 * page, 495, 496): a certificate failure even when the node accepts the status for business answers.
 */
export function certificateStatusFailure(status: number, bodyText: string, ctx: ClassifyContext): Failure | undefined {
  if (!CERTIFICATE_STATUSES.has(status)) return undefined;
  const required = status === 496 || (status === 400 && bodyText.includes('No required SSL certificate was sent'));
  const rejected = status === 495 || (status === 400 && bodyText.includes('The SSL certificate error'));
  if (required && !ctx.clientSubject) {
    return failure('client_cert_required', `HTTP_${status}`, `${ctx.host} answered ${status}: it requires a client certificate and profile "${ctx.profileName}" has none`, `add a client certificate to profile "${ctx.profileName}"`);
  }
  if (required || rejected) {
    return refineClientVerdict(failure('client_cert_rejected', `HTTP_${status}`, `${ctx.host} answered ${status}: it rejected our client certificate "${ctx.clientSubject ?? ''}"`, 'register the client certificate (or its issuing CA) with the backend team'), ctx);
  }
  return undefined;
}

/** Any status the node does not accept: nginx's certificate verdicts first, then the status itself. */
export function classifyHttpStatus(status: number, bodyText: string, ctx: ClassifyContext, askedWait = ''): Failure {
  const verdict = certificateStatusFailure(status, bodyText, ctx);
  if (verdict) return verdict;
  if (status === 403 && /Cannot perform Post-Handshake Authentication/i.test(bodyText)) {
    return failure('http_status', `HTTP_${status}`, `${ctx.host} answered 403: it asked for a client certificate by TLS 1.3 post-handshake authentication, which this client does not offer`, 'set tls.maxVersion: "TLSv1.2" on the node: the server then asks for the certificate by TLS 1.2 renegotiation, which this client answers');
  }
  const unsent = unsentCertificateStatus(status, ctx) ?? renegotiationBodyStatus(status, ctx);
  if (unsent) return unsent;
  // The server asked for a certificate and got ours: a 403 may be its verdict on it, given at the HTTP layer.
  if (status === 403 && ctx.probe?.certificateRequested === true && ctx.clientSubject) {
    return failure('http_status', `HTTP_${status}`, `${ctx.host} answered HTTP 403 after asking for a client certificate and getting ours ("${ctx.clientSubject}")`, `if the 403 is about the certificate (nginx "ssl_verify_client optional_no_ca" checked by the application, an error_page for 495/496; the body may say), register it or its issuing CA with the backend team (\`svcnode certs inspect\` shows its fingerprint); otherwise check the request (URL, headers, body) and the bot account's rights`);
  }
  return failure('http_status', `HTTP_${status}`, `${ctx.host} answered HTTP ${status}${askedWait}, which the node does not accept`, statusHint(status));
}

/** What to do about a status the node does not accept, as far as the status alone tells. */
function statusHint(status: number): string {
  if (status === 429) return "the backend is rate-limiting this client: an idempotent call is retried within retry.limit, after the wait it asks for (Retry-After); if it persists, call it less often or ask the backend team to raise this client's limit";
  if (status >= 500) return 'the backend failed; it may succeed on retry';
  return 'check the request (URL, headers, body) or add the status to response.acceptStatus';
}
