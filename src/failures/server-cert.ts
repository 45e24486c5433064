import { SvcnodeError } from '../errors.js';
import type { LoadedCrl } from '../pki/crl.js';
import type { ChainEntry } from '../tls/probe.js';
import { failureOf as failure, type Failure } from './failure.js';
import { REVOCATION_UNKNOWN, REVOCATION_UNKNOWN_CODES, revokedHint, revokedInChain, unknownHint } from './revocation-failure.js';

/** What the server chain lacks, with the hint that fixes it; also name-constraint and policy codes. */
interface Ctx {
  host: string;
  profileName: string;
  serverChain?: ChainEntry[];
  now?: number;
  crls?: readonly LoadedCrl[];
  crlsUnavailable?: readonly string[];
}

const SERVER_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED',
  'CERT_REJECTED', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG', 'PATH_LENGTH_EXCEEDED',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'UNABLE_TO_GET_CRL',
  'CRL_HAS_EXPIRED', 'CRL_NOT_YET_VALID', 'HOSTNAME_MISMATCH',
]);
const SERVER_EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD']);

/**
 * Verification errors Node has no name for (code `UNSPECIFIED`, OpenSSL's reason as the
 * message), named after OpenSSL's X509_V_ERR_* constants, with what to do about each.
 */
const POLICY: readonly { reason: RegExp; code: string; hint: string }[] = [
  { reason: /permitted subtree violation|excluded subtree violation|name constraint|name syntax|has name constraints but leaf has no SANs/i, code: 'NAME_CONSTRAINTS_VIOLATION', hint: 'a CA in the server chain restricts the names it may certify, and the server certificate names a host outside them: the backend team must get a certificate within the CA\'s name constraints' },
  { reason: /signature digest algorithm too weak/i, code: 'CA_MD_TOO_WEAK', hint: 'a certificate in the server chain is signed with a weak digest (e.g. SHA-1): the backend team must reissue it with SHA-256 or better' },
  { reason: /EE certificate key too weak/i, code: 'EE_KEY_TOO_SMALL', hint: 'the server certificate\'s key is too short (RSA below 2048 bits): the backend team must reissue it with a stronger key' },
  { reason: /CA certificate key too weak/i, code: 'CA_KEY_TOO_SMALL', hint: 'a CA in the server chain has a key that is too short: the backend team must move to a CA with a stronger key' },
  { reason: /key usage does not include certificate signing|invalid or inconsistent certificate extension|invalid non-CA certificate/i, code: 'INVALID_CA_EXTENSIONS', hint: 'a CA certificate in the server chain lacks the extensions a CA needs (basicConstraints, keyCertSign): the backend team must fix their chain' },
];

function chainHint(ctx: Ctx): string {
  const chain = ctx.serverChain;
  if (!chain || chain.length === 0) return `add the CA that issued the server certificate of ${ctx.host} to trust.ca of profile "${ctx.profileName}"`;
  const last = chain[chain.length - 1] as ChainEntry;
  if (chain.length === 1 && last.subject !== last.issuer) {
    // The chain as linked: an intermediate the server sent that did not issue its leaf (a common
    // mistake after a CA renewal) is not in it, so "it sent only its leaf" would be a guess.
    return `the server's certificate "${last.subject}" was issued by "${last.issuer}", and the server sent no certificate of that issuer (none at all, or an intermediate that did not issue it, as after a CA renewal): ask the backend team to send the intermediate "${last.issuer}" with its certificate, or add "${last.issuer}" (an intermediate or a root) to trust.ca of profile "${ctx.profileName}"`;
  }
  if (last.subject === last.issuer) {
    return `the server chain ends at the root "${last.subject}", which is not in trust.ca of profile "${ctx.profileName}"; add that root if you trust it`;
  }
  return `the server chain ends at "${last.subject}", issued by "${last.issuer}", which is not in trust.ca of profile "${ctx.profileName}"; add "${last.issuer}" to trust.ca`;
}

/** The certificate of the chain that is out of its validity period, leaf first. */
function outOfDate(chain: readonly ChainEntry[] | undefined, now: number): { entry: ChainEntry; index: number } | undefined {
  const index = (chain ?? []).findIndex((c) => Date.parse(c.validTo) < now || Date.parse(c.validFrom) > now);
  const entry = index < 0 ? undefined : chain?.[index];
  return entry ? { entry, index } : undefined;
}

/**
 * Node's hostname check error carries the host it checked and the certificate: the message says
 * which name was asked for and which the certificate holds (Node's own text lists none for an
 * IP address, and shows the host with the trailing dot it checks with).
 */
function hostnameFailure(error: unknown, ctx: Ctx): Failure | undefined {
  const e = error as { host?: unknown; cert?: { subjectaltname?: unknown; subject?: { CN?: unknown } } };
  if (typeof e.host !== 'string') return undefined;
  const host = e.host.replace(/\.$/, '');
  const altnames = typeof e.cert?.subjectaltname === 'string' && e.cert.subjectaltname !== '' ? e.cert.subjectaltname.replace(/IP Address:/g, 'IP:') : undefined;
  const cn = typeof e.cert?.subject?.CN === 'string' ? e.cert.subject.CN : undefined;
  const holds = altnames ? `it names ${altnames}` : `it has no subjectAltName${cn ? `, only the subject CN=${cn}` : ''}`;
  return failure(
    'server_hostname_mismatch',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    `the server certificate of ${ctx.host} is not for "${host}": ${holds}`,
    `call the backend by a name its certificate holds (in request.url, or tls.servername when the URL must keep an address), or ask the backend team for a certificate that names "${host}"${/^[\d.]+$|:/.test(host) ? ' (an IP address must be listed as an IP subjectAltName)' : ''}`,
  );
}

/** Classify a verification error of the backend's certificate chain; `error` is the raw error (our own checker's carries a hint, Node's hostname check the names). */
export function serverCertFailure(code: string, message: string, ctx: Ctx, error?: unknown): Failure | undefined {
  const hint = error instanceof SvcnodeError ? error.hint : undefined;
  const chain = ctx.serverChain;
  const leaf = chain?.[0];
  if (code === 'SVCNODE_REVOCATION_UNKNOWN') {
    return failure('server_cert_untrusted', REVOCATION_UNKNOWN, `revocation status of the server chain of ${ctx.host} is unknown: ${message}`, hint || `no current CRL covers the server chain: add it to trust.crl of profile "${ctx.profileName}", or set trust.revocation.mode "soft"`);
  }
  if (code === 'CERT_REVOKED' || code === 'SVCNODE_CERT_REVOKED') {
    return failure('server_cert_revoked', code, `server certificate chain of ${ctx.host} is revoked: ${message}`, revokedHint(chain, ctx.crls, ctx.host));
  }
  // OpenSSL reports the last error of the chain: a missing CRL at a higher level masks a revoked leaf.
  const masked = REVOCATION_UNKNOWN_CODES.has(code) ? revokedInChain(chain, ctx.crls, ctx.host) : undefined;
  if (masked) return failure('server_cert_revoked', 'CERT_REVOKED', `server certificate chain of ${ctx.host} is revoked (OpenSSL also reported ${code})`, masked);
  if (REVOCATION_UNKNOWN_CODES.has(code) && ((ctx.crls?.length ?? 0) > 0 || (ctx.crlsUnavailable?.length ?? 0) > 0)) {
    return failure('server_cert_untrusted', REVOCATION_UNKNOWN, `revocation status of the server chain of ${ctx.host} is unknown (${code}): revocation mode is hard`, unknownHint(code, new Date(ctx.now ?? Date.now()), ctx));
  }
  if (SERVER_EXPIRED.has(code)) {
    const bad = outOfDate(chain, ctx.now ?? Date.now());
    const notYet = code === 'CERT_NOT_YET_VALID';
    if (bad && bad.index > 0) {
      return failure('server_cert_expired', code, `CA certificate "${bad.entry.subject}" in the server chain of ${ctx.host} is ${notYet ? 'not yet valid' : 'expired'} (valid ${bad.entry.validFrom} to ${bad.entry.validTo}); the server certificate itself is valid`,
        `the backend team must send a current intermediate; if "${bad.entry.subject}" comes from trust.ca of profile "${ctx.profileName}", replace it there`);
    }
    const shown = bad?.entry ?? leaf;
    const when = shown ? ` (valid ${shown.validFrom} to ${shown.validTo})` : '';
    return failure('server_cert_expired', code, `server certificate of ${ctx.host} is ${notYet ? 'not yet valid' : 'expired'}${when}`, 'ask the backend team to renew the server certificate; check this machine\'s clock if the dates look right');
  }
  if (code === 'INVALID_PURPOSE') {
    return failure('server_cert_untrusted', code, `server certificate of ${ctx.host}${leaf ? ` ("${leaf.subject}")` : ''} is not valid for TLS server authentication: ${message}`,
      'its extendedKeyUsage lacks serverAuth (it may be a client certificate): the backend team must install a certificate issued for server authentication');
  }
  if (SERVER_UNTRUSTED.has(code)) {
    return failure('server_cert_untrusted', code, `server certificate of ${ctx.host} is not trusted: ${message}`, chainHint(ctx));
  }
  if (code === 'UNSPECIFIED') {
    const policy = POLICY.find((p) => p.reason.test(message));
    if (policy) return failure('server_cert_untrusted', policy.code, `server certificate of ${ctx.host} breaks certificate policy: ${message}`, policy.hint);
    return failure('server_cert_untrusted', code, `server certificate of ${ctx.host} failed verification: ${message}`, 'run `openssl s_client -connect HOST:PORT -showcerts` to see the chain and ask the backend team to fix it');
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return hostnameFailure(error, ctx) ?? failure('server_hostname_mismatch', code, message, `connect with the host name the certificate names, or set tls.servername${leaf ? ` (server certificate subject "${leaf.subject}")` : ''}`);
  }
  if (code === 'SVCNODE_PIN_MISMATCH' || code === 'SVCNODE_SUBJECT_MISMATCH') {
    return failure('server_identity_mismatch', code, message, 'the server presented a different identity than the node expects: verify the backend before changing tls.pinnedPublicKeys or tls.serverSubjectPatterns');
  }
  return undefined;
}
