import { canSign, describeKey, keyTypesFor, unusableKey, type ClientKey } from '../tls/sigalgs.js';
import type { ConnectionProbe } from '../tls/probe.js';
import { failureOf as failure, type Failure } from './failure.js';

/** What the classifier knows about our client certificate besides its subject. */
export interface ClientCertContext {
  host: string;
  profileName: string;
  clientSubject: string | undefined;
  probe: ConnectionProbe | undefined;
  /** The key of our client certificate. */
  clientKey?: ClientKey;
  /** Its extended key usages by name (empty: any purpose). */
  clientUsages?: readonly string[];
}

const CLIENT_AUTH = new Set(['clientAuth', 'anyExtendedKeyUsage']);
/** Verdicts that name another reason than the certificate's purpose: the issuer, the dates, revocation. */
const NOT_PURPOSE = /(UNKNOWN_CA|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED)$/;

/**
 * The server asked for a client certificate with signature algorithms our key cannot make, so
 * OpenSSL sent no certificate at all: whatever the server then said, the key type is the reason.
 */
export function keyTypeFailure(code: string, ctx: ClientCertContext): Failure | undefined {
  const probe = ctx.probe;
  const unusable = unusableKey(probe?.sharedSigalgs, ctx.clientKey, probe?.protocol);
  if (!unusable || !ctx.clientSubject) return undefined;
  const wanted = keyTypesFor(unusable.sigalgs, probe?.protocol).join(' or ');
  const have = describeKey(unusable.key);
  // Under TLS 1.2 the same algorithms may serve this key (an EC key on a brainpool curve, DSA).
  const tls12 = probe?.protocol === 'TLSv1.3' && unusable.sigalgs.some((s) => canSign(s, unusable.key, 'TLSv1.2'));
  return failure(
    'client_cert_rejected',
    code,
    `${ctx.host} accepts client certificates signed only with ${unusable.sigalgs.join(', ')} (${wanted} keys), and the key of our client certificate "${ctx.clientSubject}" is ${have}: no client certificate was sent`,
    tls12
      ? `TLS 1.3 cannot sign with this ${have} key here; TLS 1.2 can, where the server accepts the key: set tls.maxVersion: "TLSv1.2" on the node, or give profile "${ctx.profileName}" a client certificate whose key is ${wanted}`
      : `give profile "${ctx.profileName}" a client certificate whose key is ${wanted}, or ask the backend team to accept ${unusable.key.type === 'rsa' ? 'RSA' : have} client keys`,
  );
}

/** Our certificate does not allow TLS client authentication: the hint for a server that rejected it for its purpose. */
function purposeHint(ctx: ClientCertContext): string | undefined {
  const usages = ctx.clientUsages ?? [];
  if (usages.length === 0 || usages.some((u) => CLIENT_AUTH.has(u))) return undefined;
  return `our client certificate "${ctx.clientSubject ?? ''}" allows only ${usages.join(', ')}, not clientAuth (TLS client authentication), so the backend refuses it for this purpose: ask the PKI team for a certificate with extendedKeyUsage clientAuth`;
}

/**
 * Sharpen a verdict on our client certificate with what we know of it: no certificate could be
 * sent for the server's signature algorithms, or it lacks the clientAuth purpose.
 */
export function refineClientVerdict(verdict: Failure, ctx: ClientCertContext): Failure {
  if (!verdict.category.startsWith('client_cert') || !ctx.clientSubject) return verdict;
  const keyType = keyTypeFailure(verdict.code, ctx);
  if (keyType) return { ...answered(keyType), phase: verdict.phase };
  const hint = verdict.category === 'client_cert_rejected' && !NOT_PURPOSE.test(verdict.code) ? purposeHint(ctx) : undefined;
  return hint ? { ...verdict, hint } : verdict;
}

/**
 * A 401 or 403 from a server that asked for a client certificate (optionally, as haproxy's
 * `verify optional` does) and got none from us. Our key type being refused is certain; a profile
 * without a certificate is the likely reason of a 403 only (a 401 is HTTP authentication: a
 * bearer token or Basic credentials, which gateways that ask for certificates optionally check).
 */
export function unsentCertificateStatus(status: number, ctx: ClientCertContext): Failure | undefined {
  if ((status !== 401 && status !== 403) || ctx.probe?.certificateRequested !== true) return undefined;
  const code = `HTTP_${status}`;
  if (!ctx.clientSubject) {
    // A 401 is most often about credentials (it stays http_status), but this server asked for a certificate we do not have.
    if (status === 401) return failure('http_status', code, `${ctx.host} answered HTTP 401 after asking for a client certificate, which profile "${ctx.profileName}" does not have`, `if the 401 is about the certificate (a gateway's "Certificate authorization required"), add a client certificate to profile "${ctx.profileName}"; otherwise check the request's credentials (headers, auth)`);
    return failure('client_cert_required', code, `${ctx.host} asked for a client certificate, got none (profile "${ctx.profileName}" has none) and answered ${status}`, `add a client certificate to profile "${ctx.profileName}"`);
  }
  const keyType = keyTypeFailure(code, ctx);
  return keyType && answered(keyType);
}

/** A verdict the server gave as an HTTP status says so. */
function answered(f: Failure): Failure {
  return f.code.startsWith('HTTP_') ? { ...f, message: `${f.message}; it answered ${f.code.slice(5)}` } : f;
}

/**
 * A 413 on a TLS 1.2 connection whose handshake asked for no certificate although we have one:
 * besides a plain body limit, a server that asks for the certificate by renegotiation for this
 * path (Apache's SSLVerifyClient inside a <Location>) must buffer the request body first and
 * refuses a body larger than that buffer. Nothing on the wire tells the two apart: name both.
 */
export function renegotiationBodyStatus(status: number, ctx: ClientCertContext): Failure | undefined {
  const probe = ctx.probe;
  if (status !== 413 || !ctx.clientSubject || probe?.protocol !== 'TLSv1.2' || probe.certificateRequested !== false) return undefined;
  return failure(
    'http_status',
    'HTTP_413',
    `${ctx.host} answered 413: the request body is larger than it accepts. Its TLS handshake asked for no client certificate: if it asks for one by TLS 1.2 renegotiation for this path (Apache's SSLVerifyClient inside a <Location>), it must buffer the body first and refuses one larger than that buffer (Apache's SSLRenegBufferSize, 128 KiB by default)`,
    'send a smaller body, or ask the backend team to raise its body limit; if it renegotiates for the client certificate, to require the certificate at the first handshake (SSLVerifyClient for the whole virtual host) or raise SSLRenegBufferSize',
    'response',
  );
}
