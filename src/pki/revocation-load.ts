import type { X509Certificate } from 'node:crypto';
import { InvalidInputError } from '../errors.js';
import { crlStatus, describeRevocation, lookup, readCrlFile, type LoadedCrl } from './crl.js';
import { oneLineName } from './inspect.js';
import { isCrlUrl, type CrlFetcher, type FetchedCrl } from './crl-fetch.js';
import type { ClientIdentity, Finding } from './types.js';

const DAY_MS = 86_400_000;
/** A CRL whose nextUpdate is this close is reported: the PKI usually publishes well before. */
const CRL_WARNING_MS = 1 * DAY_MS;

/**
 * Read every trust.crl entry, in order; each must be signed by a trust.ca certificate. A URL that
 * gives no usable CRL becomes a CRL_UNAVAILABLE finding: the profile still loads, and hard
 * revocation mode fails its calls until the CRL can be had.
 */
export async function loadCrls(entries: readonly string[], trust: readonly X509Certificate[], fetcher: CrlFetcher, findings: Finding[], mode: RevocationMode): Promise<{ crl: LoadedCrl; bytes: Buffer }[]> {
  const out: { crl: LoadedCrl; bytes: Buffer }[] = [];
  for (const entry of entries) {
    if (!isCrlUrl(entry)) {
      out.push(await readCrlFile(entry, trust));
      continue;
    }
    try {
      const fetched = await fetcher.load(entry, trust);
      out.push(fetched);
      if (fetched.refreshProblem) findings.push(refreshFailedFinding(entry, fetched));
      if (fetched.storedCopyProblem) {
        findings.push({ severity: 'warning', code: 'CRL_STORED_COPY_INVALID', file: entry, message: fetched.storedCopyProblem, hint: 'nothing to fix at the URL; if this recurs, check what else writes the svcnode:crl:* keys in Redis' });
      }
    } catch (error) {
      if (!(error instanceof InvalidInputError) || error.code !== 'SVCNODE_CRL_UNAVAILABLE') throw error;
      findings.push(unavailableFinding(entry, error.message, error.hint, mode));
    }
  }
  return out;
}

type RevocationMode = 'hard' | 'soft';

/** A held CRL that was due for refresh and could not be refreshed: still valid, so a warning until its nextUpdate (then CRL_STALE). */
export function refreshFailedFinding(url: string, fetched: FetchedCrl): Finding {
  const problem = fetched.refreshProblem as InvalidInputError;
  const why = problem.message.startsWith(`${url}: `) ? problem.message.slice(url.length + 2) : problem.message;
  const until = fetched.crl.nextUpdate ? `its nextUpdate (${fetched.crl.nextUpdate.toISOString()})` : 'a fresh copy can be downloaded';
  return {
    severity: 'warning',
    code: 'CRL_REFRESH_FAILED',
    file: url,
    message: `${url}: the CRL could not be refreshed: ${why}; the copy downloaded at ${new Date(fetched.fetchedAt).toISOString()} stays in use until ${until}`,
    hint: `${problem.hint ?? 'check that the CRL URL is reachable from this machine'}; past nextUpdate the copy is stale (CRL_STALE) and hard revocation checking fails the calls it covers`,
  };
}

/**
 * Hard mode checks every level of a chain (OpenSSL's CRL_CHECK_ALL): a trust.ca CA without a CRL
 * fails every call whose chain it is part of. An error finding per such CA, so certs verify says
 * so before the first call does. `unavailable`: CRL URLs that gave nothing (one may be that CRL).
 */
export function missingLevelFindings(crls: readonly LoadedCrl[], trust: readonly X509Certificate[], unavailable: readonly string[]): Finding[] {
  const covered = new Set(crls.map((c) => c.issuer.fingerprint256));
  const maybe = unavailable.length > 0 ? ` (unless it is the CRL ${unavailable.join(', ')} would give, which could not be downloaded)` : '';
  return trust
    .filter((cert) => cert.ca && !covered.has(cert.fingerprint256))
    .map((cert) => ({
      severity: 'error' as const,
      code: 'CRL_MISSING',
      role: 'trust' as const,
      subject: oneLineName(cert.subject),
      message: `trust.crl has no CRL of trust.ca certificate "${oneLineName(cert.subject)}"${maybe}: hard revocation checking needs one for every CA level, so every call whose server chain goes through it fails as server_cert_revocation_unknown`,
      hint: 'add the CRL this CA publishes to trust.crl (a file or its http URL), remove the CA from trust.ca if no backend uses it, or set trust.revocation.mode "soft"',
    }));
}

/**
 * A CRL URL that gave no CRL: an error in hard mode (calls through the CA it covers fail), a
 * warning in soft mode (they go through unchecked).
 */
export function unavailableFinding(url: string, message: string, hint: string | undefined, mode: RevocationMode): Finding {
  const fix = hint ?? 'check that the URL is reachable from this machine';
  return mode === 'hard'
    ? { severity: 'error', code: 'CRL_UNAVAILABLE', file: url, message, hint: `${fix}; until then hard revocation checking fails the calls whose chain that CRL covers` }
    : { severity: 'warning', code: 'CRL_UNAVAILABLE', file: url, message, hint: `${fix}; until then soft revocation checking lets the calls whose chain that CRL covers through unchecked` };
}

/**
 * CRL freshness (warning within a day of nextUpdate; past it an error in hard mode, a warning in
 * soft mode, which lets such calls through unchecked), our own client certificate or chain listed
 * in a configured CRL (error: backends that check will refuse it), and a trust.ca certificate
 * listed in one (error: every server chain through it fails as revoked).
 */
export function crlFindings(crls: readonly LoadedCrl[], o: { client: ClientIdentity | undefined; trust: readonly X509Certificate[]; mode: RevocationMode; now: Date }): Finding[] {
  const { client, now } = o;
  const findings: Finding[] = [];
  for (const crl of crls) {
    const status = crlStatus(crl, now);
    const next = crl.nextUpdate?.toISOString() ?? 'never';
    // A URL's CRL is refreshed by downloading it again; a file's by replacing it.
    const fromUrl = isCrlUrl(crl.source);
    const renew = fromUrl ? `make ${crl.source} serve a current CRL (the worker downloads it again once a minute while it is due)` : 'fetch the current CRL from your PKI and replace the file';
    if (status === 'stale') {
      findings.push(o.mode === 'hard'
        ? { severity: 'error', code: 'CRL_STALE', file: crl.source, message: `the CRL of "${crl.issuerName}" was due for renewal at ${next}; hard revocation checking fails every call until it is replaced`, hint: renew }
        : { severity: 'warning', code: 'CRL_STALE', file: crl.source, message: `the CRL of "${crl.issuerName}" was due for renewal at ${next}; soft revocation checking lets calls through without checking the certificates it covers`, hint: renew });
    } else if (status === 'not-yet-valid') {
      findings.push({ severity: 'error', code: 'CRL_NOT_YET_VALID', file: crl.source, message: `the CRL of "${crl.issuerName}" is valid only from ${crl.thisUpdate.toISOString()}`, hint: "check this machine's clock" });
    } else if (crl.nextUpdate && crl.nextUpdate.getTime() - now.getTime() < CRL_WARNING_MS) {
      findings.push({ severity: 'warning', code: 'CRL_EXPIRES_SOON', file: crl.source, message: `the CRL of "${crl.issuerName}" is due for renewal at ${next}`, hint: fromUrl ? `make sure ${crl.source} serves its successor before then` : 'make sure the CRL file is refreshed from your PKI before then' });
    }
    for (const cert of client ? [client.leaf, ...client.chain] : []) {
      const entry = lookup(crl, cert);
      if (entry) {
        findings.push({ severity: 'error', code: 'CLIENT_CERT_REVOKED', file: crl.source, subject: oneLineName(cert.subject), message: describeRevocation(cert, entry, crl.source), hint: 'our own client certificate (or its chain) is revoked: backends that check revocation will refuse it; get a new certificate from your PKI' });
      }
    }
    for (const cert of o.trust) {
      const entry = lookup(crl, cert);
      if (entry) {
        findings.push({ severity: 'error', code: 'TRUST_CA_REVOKED', file: crl.source, role: 'trust', subject: oneLineName(cert.subject), message: `trust.ca ${describeRevocation(cert, entry, crl.source)}: every server chain through it fails as server_cert_revoked`, hint: 'remove it from trust.ca and ask the backend teams it serves for chains from a current CA' });
      }
    }
  }
  return findings;
}
