import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { IdentityError } from '../errors.js';
import { subjectPatternMatches } from './subject-pattern.js';
import { bareHostname } from './endpoint.js';

/** Server identity requirements beyond the trust chain. */
export interface IdentityRules {
  /** curl-style `sha256//BASE64` SPKI pins; one must match the server leaf. */
  pinnedPublicKeys?: readonly string[];
  /** Ant-style patterns (`?`, `*`, `**`) of which one must match the server subject DN. */
  serverSubjectPatterns?: readonly string[];
}

/** A distinguished name in certificate order (as `openssl x509 -subject` prints it), joined by ", ". */
export function formatDn(x509Name: string): string {
  return x509Name.split('\n').filter(Boolean).join(', ');
}

/** curl's `sha256//BASE64` pin of a DER SubjectPublicKeyInfo. */
export function pinOfSpki(spkiDer: Buffer): string {
  return `sha256//${createHash('sha256').update(spkiDer).digest('base64')}`;
}

const patternCache = new Map<string, RegExp>();

/** Compile an Ant-style DN pattern: `?` one character, `*` anything but ',', `**` anything. */
export function compileSubjectPattern(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (re) return re;
  const normalised = pattern.replace(/\s*,\s*/g, ',');
  let source = '';
  for (let i = 0; i < normalised.length; i++) {
    const ch = normalised[i] as string;
    if (ch === '*' && normalised[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (ch === '*') source += '[^,]*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  re = new RegExp(`^${source}$`, 'i');
  patternCache.set(pattern, re);
  return re;
}

/**
 * The DN's RDNs, split at each ',' with the blanks around it dropped. A linear scan: splitting by
 * the regular expression "blanks, comma, blanks" retries from every blank of a run, O(n²) on a
 * certificate subject holding a long run of spaces (seconds of a blocked event loop per handshake).
 */
function rdnsOf(dn: string): string[] {
  const parts = dn.split(',');
  const last = parts.length - 1;
  for (let i = 0; i <= last; i++) {
    let part = parts[i] as string;
    if (i > 0) part = part.trimStart();
    if (i < last) part = part.trimEnd();
    parts[i] = part;
  }
  return parts;
}

/** True when a pattern matches the DN in certificate order or in reverse (RFC 4514, CN first) order. */
export function subjectMatches(dn: string, patterns: readonly string[]): boolean {
  const parts = rdnsOf(dn);
  const forms = [parts.join(','), [...parts].reverse().join(',')];
  return patterns.some((p) => forms.some((form) => subjectPatternMatches(p, form)));
}

/**
 * Check pins and subject patterns of a peer certificate. Returns an IdentityError (with code
 * SVCNODE_PIN_MISMATCH or SVCNODE_SUBJECT_MISMATCH), or undefined when the rules hold.
 */
export function checkIdentityRules(cert: PeerCertificate, rules: IdentityRules): IdentityError | undefined {
  const pins = rules.pinnedPublicKeys;
  const x509 = new X509Certificate(cert.raw);
  if (pins && pins.length > 0) {
    // Computed from the certificate: PeerCertificate.pubkey is not an SPKI for EC keys.
    const actual = pinOfSpki(x509.publicKey.export({ type: 'spki', format: 'der' }));
    if (!pins.includes(actual)) {
      return new IdentityError('SVCNODE_PIN_MISMATCH', `server public key ${actual} matches none of the ${pins.length} pinned key(s)`, {
        hint: `if the backend rotated its key legitimately, add "${actual}" to tls.pinnedPublicKeys`,
      });
    }
  }
  const patterns = rules.serverSubjectPatterns;
  if (patterns && patterns.length > 0) {
    const dn = formatDn(x509.subject);
    if (!subjectMatches(dn, patterns)) {
      return new IdentityError('SVCNODE_SUBJECT_MISMATCH', `server subject "${dn}" matches none of tls.serverSubjectPatterns`, {
        hint: `check the patterns ${JSON.stringify(patterns)} against the subject shown`,
      });
    }
  }
  return undefined;
}

/**
 * A `checkServerIdentity` that keeps Node's hostname check (a custom callback replaces it)
 * and then applies the pins and subject patterns.
 */
export function identityChecker(rules: IdentityRules): (host: string, cert: PeerCertificate) => Error | undefined {
  // Through a proxy the host may arrive as `[::1]` (the CONNECT authority): Node compares IPs unbracketed.
  return (host, cert) => checkServerIdentity(bareHostname(host), cert) ?? checkIdentityRules(cert, rules);
}
