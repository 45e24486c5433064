import type { OAuth2AuthReport, SessionAuthReport } from '../invoke/auth-report.js';
import type { HandshakeResult } from '../invoke/handshake-check.js';
import type { Result } from '../invoke/result.js';
import { terminalSafe } from './io.js';

function bodyPreview(body: unknown, max = 2000): string {
  if (body === null || body === undefined) return '(empty)';
  const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

const indent = (text: string, pad: string): string => text.split('\n').join(`\n${pad}`);

const BINDING: Record<NonNullable<OAuth2AuthReport['binding']>, string> = {
  checked: 'cnf.x5t#S256 checked: bound to our certificate',
  mismatch: 'cnf.x5t#S256 MISMATCH: bound to another certificate, not used',
  unbound: 'JWT without cnf: not certificate-bound',
  opaque: 'opaque token: binding not checkable',
};

/** The token step of an OAuth 2.0 node; the token itself is never shown. */
function tokenLines(a: OAuth2AuthReport, pad: string): string[] {
  if (a.tokenEndpoint === null) {
    // Discovery failed: no token request was made.
    return [`token       not requested: no token endpoint discovered (${a.clientAuth})`, `${pad}metadata GET ${a.metadataUrl ?? '?'}: ${a.status === null ? 'no answer' : `HTTP ${a.status}`}`];
  }
  const source = a.endpointSource === 'tokenUrl' ? 'auth.tokenUrl' : `discovered ${a.endpointSource}`;
  const status = a.cached ? 'from cache' : a.status === null ? 'no answer' : `HTTP ${a.status}`;
  return [
    `token       POST ${a.tokenEndpoint} (${a.clientAuth}; ${source})`,
    `${pad}${status}${a.expiresIn === null ? '' : `, expires_in ${a.expiresIn} s`}${a.binding ? `, ${BINDING[a.binding]}` : ''}${a.token ? `, token ${a.token}` : ''}`,
  ];
}

/** The login step of a certificate-session node: one line per endpoint asked; tokens are never shown. */
function loginLines(a: SessionAuthReport, pad: string): string[] {
  return a.endpoints.map((e, i) => {
    const outcome = e.cached ? 'token from cache (no login request)' : `${e.status === null ? 'no answer' : `HTTP ${e.status}`} in ${e.ms ?? 0} ms`;
    return `${i === 0 ? 'login       ' : pad}POST ${e.url} → ${e.header}: ${outcome}`;
  });
}

/** The human-readable report of a Result (dry-run and `enqueue --wait` without --json). */
export function formatResult(result: Result): string {
  const pad = '            ';
  const lines = [`node        ${result.nodeId}${result.requestId ? `  (request ${result.requestId})` : ''}`, `request     ${result.request.method} ${result.request.url}`];
  for (const hop of result.request.redirects ?? []) lines.push(`${pad}${hop.status} → ${hop.method} ${hop.url}`);
  if (result.request.resent) lines.push(`${pad}sent ${result.request.resent + 1} times: a kept-alive connection closed under it unanswered (the backend may have received it more than once)`);
  const tls = result.tls;
  if (tls) {
    if (tls.protocol) {
      const how = tls.connectionReused ? 'kept-alive connection' : tls.sessionReused ? 'resumed session' : 'full handshake';
      lines.push(`tls         ${tls.protocol} ${tls.cipher ?? ''} (${how})`);
    }
    tls.serverChain.forEach((c, i) => {
      lines.push(`${i === 0 ? 'server      ' : pad}${c.subject}${c.sent === false ? '  [not sent by the server: from trust.ca]' : ''}`);
      lines.push(`${pad}  issuer ${c.issuer}; valid ${c.validFrom.slice(0, 10)} to ${c.validTo.slice(0, 10)}`);
    });
    // The root is never needed from the server; a missing intermediate fails every client that lacks it.
    const missing = tls.serverChain.filter((c) => c.sent === false && c.subject !== c.issuer);
    if (missing.length > 0) lines.push(`${pad}note: the server sends an incomplete chain (without ${missing.map((c) => `"${c.subject}"`).join(', ')}); svcnode completed it from trust.ca, but clients without that certificate fail: its team should send the intermediates with its leaf`);
    // Node falls back to the CN; clients that require the name in subjectAltName refuse the certificate.
    const leaf = tls.serverChain[0];
    if (leaf?.noSubjectAltName) lines.push(`${pad}note: the server certificate "${leaf.subject}" has no subjectAltName: svcnode matched the host name against its CN, but browsers, Go (1.15 and later) and many gateways refuse such a certificate: its team should reissue it with the host name as a subjectAltName`);
    if (tls.clientCertificate) lines.push(`client      ${tls.clientCertificate.subject}`, `${pad}  sha256 ${tls.clientCertificate.fingerprint256}`);
    else lines.push('client      (no client certificate presented)');
    // Every verdict: an `unknown` on a call that went through is the soft-mode warning, and must not read as a clean OK.
    (tls.revocation ?? []).forEach((v, i) => {
      const what = v.result === 'ok' ? 'ok: not revoked' : v.result === 'revoked' ? 'REVOKED' : 'UNKNOWN: not checked (no current revocation data)';
      lines.push(`${i === 0 ? 'revocation  ' : pad}${v.source ?? 'crl'} ${what}${v.subject ? ` (${v.subject})` : ''}`);
      if (v.message && v.result !== 'ok') lines.push(`${pad}  ${v.message}`);
    });
  }
  if (result.auth?.type === 'oauth2-client-credentials') lines.push(...tokenLines(result.auth, pad));
  else if (result.auth?.type === 'certificate-session') lines.push(...loginLines(result.auth, pad));
  const t = result.timings;
  // A kept-alive connection with a handshake measured: the authentication step of this call opened it.
  const whose = result.auth && tls?.connectionReused && (t.connectMs > 0 || t.handshakeMs > 0) ? ` (the connection the ${result.auth.type === 'certificate-session' ? 'login' : 'token step'} opened, which the call reused)` : '';
  lines.push(`timings     connect ${t.connectMs} ms, handshake ${t.handshakeMs} ms${whose}, total ${t.totalMs} ms${result.attempts > 1 ? `, ${result.attempts} attempts` : ''}`);
  if (result.response) {
    const type = result.response.headers['content-type'];
    lines.push(`response    HTTP ${result.response.status}${type ? ` (${String(type)})` : ''}${result.response.truncated ? ' [body truncated]' : ''}`);
    lines.push(`${pad}${indent(bodyPreview(result.response.body), pad)}`);
  }
  const f = result.failure;
  if (f) {
    lines.push(`FAILED      ${f.category} (${f.code}, phase ${f.phase})`, `${pad}${indent(f.message, pad)}`, `hint        ${f.hint}`);
  } else {
    const unchecked = (result.tls?.revocation ?? []).some((v) => v.result === 'unknown');
    lines.push(unchecked ? 'result      OK, revocation status unknown (soft mode let the call through)' : 'result      OK');
  }
  // Bodies, headers, messages and subjects hold what a backend sent.
  return terminalSafe(`${lines.join('\n')}\n`);
}

/** What an unlisted issuer means beside the verdict: a cause of a refusal, or a refusal still to come. */
function unlistedIssuerWarning(failure: Result['failure']): string {
  const what = 'WARNING: none of these CAs issued our client certificate or a CA certificate sent with it';
  if (!failure) return `${what}: the server will most likely refuse it, even though the handshake passed (nginx, for one, judges it only at the HTTP request)`;
  if (failure.category === 'client_cert_rejected') return `${what}: most likely why the server refused it`;
  return `${what}: once the failure above is fixed, the server will most likely refuse it`;
}

/** The lines `dry-run --tls-only` adds to the human report, worded after the verdict. */
export function formatHandshakeReport(result: HandshakeResult): string {
  const facts = result.handshake;
  const pad = '            ';
  const requested =
    facts.clientCertificateRequested === null
      ? 'unknown (the handshake did not get that far)'
      : facts.clientCertificateRequested
        ? 'yes'
        : 'no (a server may still ask by TLS 1.2 renegotiation once it sees the request path, as Apache does for SSLVerifyClient inside a <Location>: run without --tls-only to see)';
  const lines = ['mode        TLS handshake only: no HTTP request was sent', `cert req.   ${requested}`];
  if (facts.acceptableCAs !== null) {
    if (facts.acceptableCAs.length === 0) lines.push(`${pad}no CA names (the server accepts any issuer it trusts)`);
    facts.acceptableCAs.forEach((name, i) => lines.push(`${i === 0 ? 'CA names    ' : pad}${name}`));
  }
  if (facts.acceptableCAsSource !== 'not probed') lines.push(`${pad}(${facts.acceptableCAsSource})`);
  if (facts.clientIssuerListed === false) lines.push(`${pad}${unlistedIssuerWarning(result.failure)}`);
  if (facts.verdictWaitMs > 0) lines.push(`verdict     waited ${facts.verdictWaitMs} ms after the TLS 1.3 handshake for the server's verdict on the client certificate`);
  return terminalSafe(`${lines.join('\n')}\n`);
}
