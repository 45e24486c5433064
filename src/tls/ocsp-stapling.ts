import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { SvcnodeError } from '../errors.js';
import { oneLineName } from '../pki/inspect.js';
import { normalSerial } from '../pki/crl.js';
import { verifyStaple } from '../pki/ocsp.js';
import type { LoadedProfile } from '../pki/types.js';
import type { ConnectionProbe } from './probe.js';
import { revocationEvents, type RevocationCheck } from './revocation.js';

/**
 * OCSP stapling (trust.revocation.ocsp): each connection asks for a staple, remembers what its
 * socket received in 'OCSPResponse' (which fires before checkServerIdentity), and judges it in
 * its own checkServerIdentity, so a bad verdict destroys the socket before any HTTP byte is sent.
 */

type Checker = (host: string, cert: PeerCertificate) => Error | undefined;

/** One staple verdict: the check to record, and the error that fails the handshake, if any. */
export interface StapleVerdict {
  check: RevocationCheck;
  error?: SvcnodeError;
}

/** The issuer of the leaf as the verified chain shows it (the leaf itself when self-signed). */
function leafAndIssuer(peer: PeerCertificate): { leaf: X509Certificate; issuer: X509Certificate } {
  const leaf = new X509Certificate(peer.raw);
  const up = (peer as DetailedPeerCertificate).issuerCertificate as DetailedPeerCertificate | undefined;
  return { leaf, issuer: up?.raw ? new X509Certificate(up.raw) : leaf };
}

/**
 * Judge what a connection received: `staple` is the DER OCSPResponse, or null/undefined when
 * the server stapled nothing. Forged or foreign staples always fail; missing, stale or
 * "unknown" ones fail in hard mode and are recorded as `unknown` in soft mode.
 */
export function judgeStaple(profile: LoadedProfile, host: string, peer: PeerCertificate, staple: Uint8Array | null | undefined, now: Date): StapleVerdict | undefined {
  const policy = profile.trust.revocation;
  if (!policy || policy.ocsp === 'off') return undefined;
  const soft = policy.mode === 'soft';
  const { leaf, issuer } = leafAndIssuer(peer);
  const subject = oneLineName(leaf.subject);
  const serial = normalSerial(leaf.serialNumber);
  const base = { profile: profile.name, source: 'ocsp', subject } as const;
  const name = `certificate "${subject}" (serial ${serial}) of ${host}`;
  const noStatus = (message: string, hint: string): StapleVerdict => {
    const check: RevocationCheck = { ...base, result: 'unknown', message };
    if (soft) return { check };
    return { check, error: new SvcnodeError('SVCNODE_OCSP_NO_STATUS', `revocation status of the server ${name} is unknown: ${message} (revocation mode is hard)`, { hint: `${hint}, or set trust.revocation.mode "soft" in profile "${profile.name}"` }) };
  };
  if (!staple || staple.length === 0) {
    if (policy.ocsp !== 'stapled-required') return undefined;
    return noStatus(`${host} sent no OCSP staple and profile "${profile.name}" requires one`, `ask the backend team to enable OCSP stapling (nginx ssl_stapling, Apache SSLUseStapling), or set trust.revocation.ocsp "stapled-if-present"`);
  }
  const verdict = verifyStaple(staple, leaf, issuer, now);
  if (!verdict.ok) {
    if (verdict.problem === 'stale') return noStatus(`the OCSP staple of ${name} is not current: ${verdict.reason}`, 'the backend team must make its server refresh the stapled response (its OCSP responder may be unreachable from the server)');
    const mismatch = verdict.problem === 'mismatch';
    return {
      check: { ...base, result: 'unknown', message: verdict.reason },
      error: new SvcnodeError(mismatch ? 'SVCNODE_OCSP_STAPLE_MISMATCH' : 'SVCNODE_OCSP_STAPLE_INVALID', `the OCSP staple of the server ${name} cannot be used: ${verdict.reason}`, {
        hint: mismatch
          ? 'the server staples the OCSP response of another certificate (often a staple file left from before a certificate renewal): the backend team must refresh it'
          : `the server staples an OCSP response that does not verify against "${oneLineName(issuer.subject)}" in trust.ca: the backend team must fix its stapling configuration`,
      }),
    };
  }
  if (verdict.status === 'unknown') return noStatus(`the OCSP responder "${verdict.signer}" does not know ${name}`, 'the backend team must staple a response from the OCSP responder of the CA that issued its certificate');
  if (verdict.status === 'good') return { check: { ...base, result: 'ok' } };
  const message = `${name} was revoked on ${verdict.revocationTime?.toISOString() ?? 'an unknown date'}${verdict.reason ? ` (${verdict.reason})` : ''} according to its OCSP staple (signed by "${verdict.signer}")`;
  return {
    check: { ...base, result: 'revoked', message },
    error: new SvcnodeError('SVCNODE_OCSP_REVOKED', `server ${message}`, { hint: `${message}; the backend team must replace the revoked certificate` }),
  };
}

/**
 * Node calls checkServerIdentity without a try: an exception there would be uncaught and end
 * the process, so anything unexpected in a staple becomes an unusable-staple verdict.
 */
function safely(judge: () => StapleVerdict | undefined, profileName: string, host: string): StapleVerdict | undefined {
  try {
    return judge();
  } catch (cause) {
    const message = `the OCSP staple of ${host} cannot be read: ${cause instanceof Error ? cause.message : String(cause)}`;
    return {
      check: { profile: profileName, source: 'ocsp', result: 'unknown', message },
      error: new SvcnodeError('SVCNODE_OCSP_STAPLE_INVALID', message, { cause, hint: 'the server staples a response svcnode cannot read: the backend team must fix its stapling configuration' }),
    };
  }
}

/** The per-connection part of OCSP stapling; undefined when the profile does not staple. */
export interface StaplingConnection {
  /** The connection's TLS options: `requestOCSP`, and a checkServerIdentity that also judges this connection's staple. */
  options<T extends { checkServerIdentity?: Checker; port?: number | string | null | undefined }>(options: T): T & { requestOCSP: true; checkServerIdentity: Checker };
  /** Listen for the staple on the connection's socket (right after it is created). */
  watch(socket: TLSSocket): void;
}

/**
 * OCSP stapling for one new connection of `profile`: verdicts go to revocationEvents (when the
 * call proceeds, or fails as revoked) and to the connection's probe (always).
 */
export function ocspStapling(profile: LoadedProfile, probe: ConnectionProbe, now: () => Date = () => new Date()): StaplingConnection | undefined {
  if ((profile.trust.revocation?.ocsp ?? 'off') === 'off') return undefined;
  let staple: Buffer | null = null;
  return {
    options: (options) => {
      // Replacing Node's default checker must not drop the host name check.
      const inner = options.checkServerIdentity ?? checkServerIdentity;
      const judged: Checker = (host, cert) => {
        const first = inner(host, cert);
        if (first) return first;
        // Named host:port, as every other message about the backend names it.
        const where = options.port ? `${host}:${String(options.port)}` : host;
        const verdict = safely(() => judgeStaple(profile, where, cert, staple, now()), profile.name, where);
        if (!verdict) return undefined;
        (probe.revocation ??= []).push(verdict.check);
        // Events are what the worker counts and logs as allowed: a hard-mode unknown is counted from its
        // failure code (server_cert_revocation_unknown) like OpenSSL's CRL verdicts; an unusable staple is a failure only.
        if (!verdict.error || verdict.check.result === 'revoked') revocationEvents.emit('check', verdict.check);
        return verdict.error;
      };
      return { ...options, requestOCSP: true, checkServerIdentity: judged };
    },
    watch: (socket) => {
      socket.once('OCSPResponse', (response: Buffer | null) => {
        staple = response;
      });
    },
  };
}

/**
 * TLS sessions cached per agent: none when stapling is on. A resumed session carries no staple
 * and skips checkServerIdentity, so every new connection makes a full handshake with a fresh staple.
 */
export function sessionCacheSize(profile: LoadedProfile, maxCachedSessions: number): number {
  return (profile.trust.revocation?.ocsp ?? 'off') === 'off' ? maxCachedSessions : 0;
}
