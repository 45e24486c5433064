import type { LoadedCrl } from '../pki/crl.js';
import { normalSerial } from '../pki/crl.js';
import type { ChainEntry } from '../tls/probe.js';

/** The failure code of a hard-mode call that found no current revocation data (category server_cert_untrusted). */
export const REVOCATION_UNKNOWN = 'server_cert_revocation_unknown';

/** How a hint says a distribution-point CRL is on its way; such a failure is retried (see isTransient). */
export const CRL_PENDING = 'is being downloaded in the background';

/** OpenSSL's verdicts when a CRL is missing, stale, not yet valid or unusable for a chain level. */
export const REVOCATION_UNKNOWN_CODES = new Set(['UNABLE_TO_GET_CRL', 'CRL_HAS_EXPIRED', 'CRL_NOT_YET_VALID', 'UNABLE_TO_GET_CRL_ISSUER', 'CRL_SIGNATURE_FAILURE', 'UNABLE_TO_DECRYPT_CRL_SIGNATURE', 'DIFFERENT_CRL_SCOPE']);

/**
 * Which certificate of the presented chain a CRL lists: certificate, serial, date and source.
 * Undefined when none is listed.
 */
export function revokedInChain(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined, host: string): string | undefined {
  for (const entry of chain ?? []) {
    if (!entry.serialNumber) continue;
    const serial = normalSerial(entry.serialNumber);
    for (const crl of crls ?? []) {
      const revoked = crl.issuerName === entry.issuer ? crl.revoked.get(serial) : undefined;
      if (revoked) {
        return `certificate "${entry.subject}" (serial ${serial}) of ${host} was revoked on ${revoked.revocationDate.toISOString()}${revoked.reason ? ` (${revoked.reason})` : ''} according to ${crl.source}; the backend team must replace it`;
      }
    }
  }
  return undefined;
}

/** The hint of a revoked chain, also when the diagnostic handshake could not name the certificate. */
export function revokedHint(chain: readonly ChainEntry[] | undefined, crls: readonly LoadedCrl[] | undefined, host: string): string {
  return revokedInChain(chain, crls, host) ?? `a certificate of the chain ${host} presents is listed in a CRL of trust.crl; the backend team must replace it`;
}

/** What is missing when OpenSSL could not establish revocation status: the stale or absent CRLs. */
export function unknownHint(code: string, crls: readonly LoadedCrl[] | undefined, now: Date, profileName: string): string {
  const stale = (crls ?? []).filter((c) => c.nextUpdate !== undefined && c.nextUpdate.getTime() <= now.getTime());
  if (code === 'CRL_HAS_EXPIRED' && stale.length > 0) {
    return `the CRL ${stale.map((c) => `${c.source} (of "${c.issuerName}", due ${c.nextUpdate?.toISOString() ?? ''})`).join(', ')} is past its nextUpdate: replace it with the current CRL from your PKI, or set trust.revocation.mode "soft" in profile "${profileName}"`;
  }
  if (code === 'UNABLE_TO_GET_CRL') {
    return `trust.crl of profile "${profileName}" lacks the CRL of a CA in the server chain: hard revocation checking needs one for every CA level (the issuing CA and the root); add it, or set trust.revocation.mode "soft"`;
  }
  return `the CRLs of profile "${profileName}" cannot be used for this chain (${code}): replace them with current CRLs from your PKI`;
}
