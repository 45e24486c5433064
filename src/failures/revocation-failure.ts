import type { LoadedCrl } from '../pki/crl.js';
import { normalSerial } from '../pki/crl.js';
import type { ChainEntry } from '../tls/probe.js';

/** The failure code of a hard-mode call that found no current revocation data (category server_cert_untrusted). */
export const REVOCATION_UNKNOWN = 'server_cert_revocation_unknown';

/** How a hint says a distribution-point CRL is on its way; such a failure is retried (see isTransient). */
export const CRL_PENDING = 'is being downloaded in the background';

/** OpenSSL's verdicts when a CRL is missing, stale, not yet valid or unusable for a chain level. */
export const REVOCATION_UNKNOWN_CODES = new Set(['UNABLE_TO_GET_CRL', 'CRL_HAS_EXPIRED', 'CRL_NOT_YET_VALID', 'UNABLE_TO_GET_CRL_ISSUER', 'CRL_SIGNATURE_FAILURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE', 'DIFFERENT_CRL_SCOPE']);

/** The first certificate of a presented chain that one of `crls` lists, with its entry and that CRL. */
export function revokedEntry(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined): { entry: ChainEntry; serial: string; crl: LoadedCrl; revocationDate: Date; reason?: string } | undefined {
  for (const entry of chain ?? []) {
    if (!entry.serialNumber) continue;
    const serial = normalSerial(entry.serialNumber);
    for (const crl of crls ?? []) {
      const revoked = crl.issuerName === entry.issuer ? crl.revoked.get(serial) : undefined;
      if (revoked) return { entry, serial, crl, revocationDate: revoked.revocationDate, ...(revoked.reason ? { reason: revoked.reason } : {}) };
    }
  }
  return undefined;
}

/**
 * Which certificate of the presented chain a CRL lists: certificate, serial, date and source.
 * Undefined when none is listed.
 */
export function revokedInChain(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined, host: string): string | undefined {
  const r = revokedEntry(chain, crls);
  return r && `certificate "${r.entry.subject}" (serial ${r.serial}) of ${host} was revoked on ${r.revocationDate.toISOString()}${r.reason ? ` (${r.reason})` : ''} according to ${r.crl.source}; the backend team must replace it`;
}

/** The hint of a revoked chain, also when the diagnostic handshake could not name the certificate. */
export function revokedHint(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined, host: string): string {
  return revokedInChain(chain, crls, host) ?? `a certificate of the chain ${host} presents is listed in a CRL of trust.crl; the backend team must replace it`;
}

/** What the profile knows about its revocation data when a call needs it. */
export interface RevocationFacts {
  profileName: string;
  crls?: readonly LoadedCrl[] | undefined;
  /** Why trust.crl URLs (or distribution points) could not be downloaded: the CRL_UNAVAILABLE findings' messages. */
  crlsUnavailable?: readonly string[] | undefined;
  serverChain?: readonly ChainEntry[] | undefined;
}

/** The CAs of the presented chain (each certificate's issuer, leaf first) with no CRL among `crls`. */
function uncoveredIssuers(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined): ChainEntry[] {
  const have = new Set((crls ?? []).map((c) => c.issuerName));
  const seen = new Set<string>();
  return (chain ?? []).filter((e) => !have.has(e.issuer) && !seen.has(e.issuer) && seen.add(e.issuer));
}

/** What is missing when OpenSSL could not establish revocation status: the stale, undownloadable or absent CRLs. */
export function unknownHint(code: string, now: Date, facts: RevocationFacts): string {
  const { profileName, crls } = facts;
  const stale = (crls ?? []).filter((c) => c.nextUpdate !== undefined && c.nextUpdate.getTime() <= now.getTime());
  if (code === 'CRL_HAS_EXPIRED' && stale.length > 0) {
    return `the CRL ${stale.map((c) => `${c.source} (of "${c.issuerName}", due ${c.nextUpdate?.toISOString() ?? ''})`).join(', ')} is past its nextUpdate: replace it with the current CRL from your PKI, or set trust.revocation.mode "soft" in profile "${profileName}"`;
  }
  if (code === 'UNABLE_TO_GET_CRL') {
    const uncovered = uncoveredIssuers(facts.serverChain, crls);
    const which = uncovered.length > 0 ? uncovered.map((e) => `"${e.issuer}" (issuer of "${e.subject}")`).join(' and ') : 'a CA in the server chain';
    const unavailable = facts.crlsUnavailable ?? [];
    if (unavailable.length > 0) {
      return `no CRL of ${which} is loaded; profile "${profileName}" could not download one it names (${unavailable.join('; ')}): make the URL reachable from this machine (svcnode certs verify tells when it is), or set trust.revocation.mode "soft"`;
    }
    return `trust.crl of profile "${profileName}" has no CRL of ${which}: hard revocation checking needs one for every CA level (the issuing CA and the root); add it, or set trust.revocation.mode "soft"`;
  }
  return `the CRLs of profile "${profileName}" cannot be used for this chain (${code}): replace them with current CRLs from your PKI`;
}
