import { crlStatus } from '../pki/crl.js';
import type { LoadedProfile } from '../pki/types.js';
import { formatTable } from './table.js';

const DAY_MS = 86_400_000;

/** One CRL of a profile in `certs status`. */
export interface CrlStatusRow {
  profile: string;
  source: string;
  issuer: string;
  /** Null for a URL that gave no CRL. */
  thisUpdate: string | null;
  nextUpdate: string | null;
  /**
   * STALE past nextUpdate, NOT_YET_VALID, SOON within a day of it; REVOKES_CLIENT when it lists our
   * own certificate, REVOKES_TRUST_CA a trust.ca one; UNAVAILABLE for a URL that gave no CRL.
   */
  flags: string[];
}

/** CRL freshness of a profile, whether a CRL lists our own client certificate, and the CRL URLs that gave none (UNAVAILABLE). */
export function crlStatusRows(p: LoadedProfile, now: Date): CrlStatusRow[] {
  const unavailable = (p.trust.crlsUnavailable ?? []).map((u) => ({ profile: p.name, source: u.url, issuer: 'unknown', thisUpdate: null, nextUpdate: null, flags: ['UNAVAILABLE'] }));
  return [...(p.trust.crls ?? []).map((crl) => {
    const status = crlStatus(crl, now);
    const flags: string[] = [];
    if (status === 'stale') flags.push('STALE');
    else if (status === 'not-yet-valid') flags.push('NOT_YET_VALID');
    else if (crl.nextUpdate && crl.nextUpdate.getTime() - now.getTime() < DAY_MS) flags.push('SOON');
    if (p.findings.some((f) => f.code === 'CLIENT_CERT_REVOKED' && f.file === crl.source)) flags.push('REVOKES_CLIENT');
    if (p.findings.some((f) => f.code === 'TRUST_CA_REVOKED' && f.file === crl.source)) flags.push('REVOKES_TRUST_CA');
    return { profile: p.name, source: crl.source, issuer: crl.issuerName, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString() ?? null, flags };
  }), ...unavailable];
}

/** The CRL table of `certs status`, or undefined when no profile has CRLs. */
export function formatCrlTable(rows: readonly CrlStatusRow[]): string | undefined {
  if (rows.length === 0) return undefined;
  return formatTable(['PROFILE', 'CRL', 'ISSUER', 'NEXT UPDATE', 'FLAG'], rows.map((r) => [r.profile, r.source, r.issuer, r.nextUpdate ?? 'none', r.flags.join(',')]));
}
