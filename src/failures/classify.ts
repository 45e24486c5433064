import { InvalidInputError, SvcnodeError, errorCode, errorMessage } from '../errors.js';
import type { Failure } from '../invoke/result.js';
import type { LoadedCrl } from '../pki/crl.js';
import type { ChainEntry, ConnectionProbe } from '../tls/probe.js';
import { FAILURE_CATEGORIES, type FailureCategory } from './categories.js';
import { REVOCATION_UNKNOWN, REVOCATION_UNKNOWN_CODES, revokedHint, revokedInChain, unknownHint } from './revocation-failure.js';

/** What the classifier knows besides the error itself. */
export interface ClassifyContext {
  host: string;
  profileName: string;
  /** Subject of the client certificate we presented, if the profile has one. */
  clientSubject: string | undefined;
  /** Probe of the connection the request ran on, if one was created. */
  probe: ConnectionProbe | undefined;
  /** The server chain as captured by a diagnostic handshake, if any. */
  diagnosticChain?: ChainEntry[];
  proxy: boolean;
  /** The profile's CRLs, to name the revoked certificate and its source in hints. */
  crls?: readonly LoadedCrl[];
}

const SERVER_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
  'CERT_REJECTED', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'UNABLE_TO_GET_CRL',
  'CRL_HAS_EXPIRED', 'CRL_NOT_YET_VALID', 'HOSTNAME_MISMATCH',
]);
const SERVER_EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD']);
/** Alerts the server sends about *our* certificate. */
const CLIENT_REJECTED_ALERT = /^ERR_SSL_(?:TLSV1|SSLV3|TLSV13)_ALERT_(?:UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR|CERTIFICATE_EXPIRED)$/;
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EHOSTDOWN', 'ENETDOWN']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED']);

/** TLS alert numbers (RFC 8446 §6) and the code OpenSSL gives them when they surface with a code. */
const ALERTS: Record<string, string> = {
  '40': 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  '42': 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  '43': 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  '44': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  '45': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  '46': 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  '48': 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  '49': 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  '51': 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  '70': 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
  '71': 'ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY',
  '116': 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
};

/**
 * The code to classify by. An alert received while writing surfaces as `EPROTO` with the alert
 * only in the message ("SSL alert number 48"); name it like OpenSSL does when it has a code.
 */
function effectiveCode(code: string, message: string): string {
  if (code !== 'EPROTO') return code;
  const alert = /SSL alert number (\d+)/.exec(message)?.[1];
  if (alert && ALERTS[alert]) return ALERTS[alert];
  // A local TLS error surfacing as `write EPROTO` ("…:SSL routines:fn:wrong version number:…"): name it as Node does.
  const reason = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1];
  return reason ? `ERR_SSL_${reason.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}` : code;
}

/** OpenSSL's "8000...:error:0A000418:SSL routines:fn:tlsv1 alert unknown ca:file:line:SSL alert number 48" → its reason. */
function readableMessage(message: string): string {
  const reason = /error:[0-9A-F]+:[^:]+:[^:]+:([^:]+):/.exec(message)?.[1];
  const alert = /SSL alert number (\d+)/.exec(message)?.[1];
  return reason ? `${reason}${alert ? ` (TLS alert ${alert})` : ''}` : message;
}


function failure(category: FailureCategory, code: string, message: string, hint: string): Failure {
  return { phase: FAILURE_CATEGORIES[category].phase, category, code, message, hint };
}

function chainHint(ctx: ClassifyContext): string {
  const chain = ctx.diagnosticChain;
  if (!chain || chain.length === 0) return `add the CA that issued the server certificate of ${ctx.host} to trust.ca of profile "${ctx.profileName}"`;
  const last = chain[chain.length - 1] as ChainEntry;
  if (chain.length === 1 && last.subject !== last.issuer) {
    return `the server sent only its leaf certificate "${last.subject}"; add the intermediate "${last.issuer}" (and its root) to trust.ca of profile "${ctx.profileName}", or ask the backend team to send the full chain`;
  }
  if (last.subject === last.issuer) {
    return `the server chain ends at the root "${last.subject}", which is not in trust.ca of profile "${ctx.profileName}"; add that root if you trust it`;
  }
  return `the server chain ends at "${last.subject}", issued by "${last.issuer}", which is not in trust.ca of profile "${ctx.profileName}"; add "${last.issuer}" to trust.ca`;
}

function serverCertFailure(code: string, message: string, ctx: ClassifyContext): Failure | undefined {
  const leaf = ctx.diagnosticChain?.[0];
  if (code === 'CERT_REVOKED' || code === 'SVCNODE_CERT_REVOKED') {
    return failure('server_cert_revoked', code, `server certificate chain of ${ctx.host} is revoked: ${message}`, revokedHint(ctx.diagnosticChain, ctx.crls, ctx.host));
  }
  // OpenSSL reports the last error of the chain: a missing CRL at a higher level masks a revoked leaf.
  const masked = REVOCATION_UNKNOWN_CODES.has(code) ? revokedInChain(ctx.diagnosticChain, ctx.crls, ctx.host) : undefined;
  if (masked) return failure('server_cert_revoked', code, `server certificate chain of ${ctx.host} is revoked (OpenSSL also reported ${code})`, masked);
  if (REVOCATION_UNKNOWN_CODES.has(code) && ctx.crls && ctx.crls.length > 0) {
    return failure('server_cert_untrusted', REVOCATION_UNKNOWN, `revocation status of the server chain of ${ctx.host} is unknown (${code}): revocation mode is hard`, unknownHint(code, ctx.crls, new Date(), ctx.profileName));
  }
  if (SERVER_EXPIRED.has(code)) {
    const when = leaf ? ` (valid ${leaf.validFrom} to ${leaf.validTo})` : '';
    return failure('server_cert_expired', code, `server certificate of ${ctx.host} is ${code === 'CERT_NOT_YET_VALID' ? 'not yet valid' : 'expired'}${when}`, 'ask the backend team to renew the server certificate; check this machine\'s clock if the dates look right');
  }
  if (SERVER_UNTRUSTED.has(code)) {
    return failure('server_cert_untrusted', code, `server certificate of ${ctx.host} is not trusted: ${message}`, chainHint(ctx));
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return failure('server_hostname_mismatch', code, message, `connect with the host name the certificate names, or set tls.servername${leaf ? ` (server certificate subject "${leaf.subject}")` : ''}`);
  }
  if (code === 'SVCNODE_PIN_MISMATCH' || code === 'SVCNODE_SUBJECT_MISMATCH') {
    return failure('server_identity_mismatch', code, message, 'the server presented a different identity than the node expects: verify the backend before changing tls.pinnedPublicKeys or tls.serverSubjectPatterns');
  }
  return undefined;
}

function clientCertFailure(code: string, message: string, ctx: ClassifyContext): Failure | undefined {
  const who = ctx.clientSubject ? `our client certificate "${ctx.clientSubject}"` : 'no client certificate';
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (code.endsWith('ALERT_HANDSHAKE_FAILURE') && ctx.probe?.keylog && !ctx.clientSubject)) {
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

/** TLS 1.3: the server's verdict on our certificate arrives after secureConnect. */
function postHandshakeClose(code: string, ctx: ClassifyContext): Failure | undefined {
  const probe = ctx.probe;
  // TLS 1.2: a close after we derived the master secret (our Certificate/Finished flight was sent) is the Node-server rejection.
  const afterOurFlight = probe?.secureAt !== undefined || probe?.keylogLabel === 'CLIENT_RANDOM';
  if (!probe || !afterOurFlight || probe.responses > 0 || !RESET_CODES.has(code)) return undefined;
  return ctx.clientSubject
    ? failure('client_cert_rejected', code, `${ctx.host} closed the connection at the end of the TLS handshake without answering: it most likely rejected our client certificate "${ctx.clientSubject}"`, 'register the client certificate (or its issuing CA) with the backend team; the server sent no alert, so its logs have the reason')
    : failure('client_cert_required', code, `${ctx.host} closed the connection right after the TLS handshake: it most likely requires a client certificate, and profile "${ctx.profileName}" has none`, `add a client certificate to profile "${ctx.profileName}"`);
}

/** Map any error of a call to a Failure with one of the failure categories. */
export function classifyError(error: unknown, ctx: ClassifyContext): Failure {
  if (error instanceof InvalidInputError) {
    return failure('invalid_input', error.code, error.message, error.hint ?? 'fix the input and try again');
  }
  const root = error;
  const raw = errorMessage(root).trim();
  const code = effectiveCode(errorCode(root) ?? 'UNKNOWN', raw);
  const message = readableMessage(raw);
  const classified = serverCertFailure(code, message, ctx) ?? clientCertFailure(code, message, ctx) ?? postHandshakeClose(code, ctx);
  if (classified) return classified;

  if (code === 'SVCNODE_TIMEOUT' || code === 'ETIMEDOUT' || message === 'Proxy timeout' || (root instanceof DOMException && root.name === 'TimeoutError')) {
    const hint = root instanceof SvcnodeError && root.hint ? root.hint : ctx.proxy && message === 'Proxy timeout' ? 'the proxy did not answer the CONNECT request in time: check proxy.url' : 'the backend did not answer in time: check its health or raise timeouts in the node';
    return failure('timeout', code, `${ctx.host}: ${message}`, hint);
  }
  const proxyStatus = /^Bad response: (\d{3})$/.exec(message);
  if (proxyStatus) {
    const status = proxyStatus[1];
    return failure('connect_failed', `PROXY_${status}`, `the proxy refused to open a tunnel to ${ctx.host} (HTTP ${status})`,
      status === '407' ? 'the proxy requires authentication: put the credentials in proxy.url (http://user:pass@proxy:port)' : 'check that the proxy allows CONNECT to this host and port');
  }
  if (code === 'ERR_SSL_UNSAFE_LEGACY_RENEGOTIATION_DISABLED') {
    return failure('protocol_mismatch', code, `${ctx.host} does not support secure renegotiation (RFC 5746), which OpenSSL 3 requires by default`, 'set tls.legacyServerConnect: true on the node to allow this server, and ask the backend team to upgrade its TLS stack');
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return failure('protocol_mismatch', code, `${ctx.host} does not speak TLS on this port (${message})`, 'check the port in the URL: it may be a plain HTTP port');
  }
  if (code.startsWith('ERR_SSL_')) {
    return failure('protocol_mismatch', code, `${ctx.host}: TLS negotiation failed: ${message}`, 'the server and the node share no TLS version or cipher: check tls.minVersion and the server\'s TLS configuration');
  }
  if (CONNECT_CODES.has(code) || RESET_CODES.has(code)) {
    return failure('connect_failed', code, `${ctx.host}: ${message}`, code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'the host name does not resolve: check the URL and DNS' : 'check that the backend is up and reachable from this machine (host, port, firewall, proxy)');
  }
  return failure('connect_failed', code, `${ctx.host}: ${message}`, 'an unexpected network error: check connectivity to the backend');
}

/** nginx answers a bad or missing client certificate with HTTP 400/495/496 after the handshake. */
export function classifyHttpStatus(status: number, bodyText: string, ctx: ClassifyContext): Failure {
  const required = status === 496 || (status === 400 && bodyText.includes('No required SSL certificate was sent'));
  const rejected = status === 495 || (status === 400 && bodyText.includes('The SSL certificate error'));
  if (required && !ctx.clientSubject) {
    return failure('client_cert_required', `HTTP_${status}`, `${ctx.host} answered ${status}: it requires a client certificate and profile "${ctx.profileName}" has none`, `add a client certificate to profile "${ctx.profileName}"`);
  }
  if (required || rejected) {
    return failure('client_cert_rejected', `HTTP_${status}`, `${ctx.host} answered ${status}: it rejected our client certificate "${ctx.clientSubject ?? ''}"`, 'register the client certificate (or its issuing CA) with the backend team');
  }
  if (status === 403 && /Cannot perform Post-Handshake Authentication/i.test(bodyText)) {
    return failure('http_status', `HTTP_${status}`, `${ctx.host} answered 403: it asked for a client certificate by TLS 1.3 post-handshake authentication, which this client does not offer`, 'set tls.maxVersion: "TLSv1.2" on the node so the server asks for the certificate during the handshake');
  }
  return failure('http_status', `HTTP_${status}`, `${ctx.host} answered HTTP ${status}, which the node does not accept`, status >= 500 ? 'the backend failed; it may succeed on retry' : 'check the request (URL, headers, body) or add the status to response.acceptStatus');
}
