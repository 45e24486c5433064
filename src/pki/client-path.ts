import type { KeyObject, X509Certificate } from 'node:crypto';
import { issuedBy, isSelfSigned } from './chain.js';
import { certificateExtensions, pathLenConstraint } from './der.js';
import { oneLineName } from './inspect.js';
import type { CertificateRole, Finding } from './types.js';

/**
 * What a server's OpenSSL refuses in the client chain it receives, beyond dates and names:
 * a critical extension it does not know, an issuer that is not a CA, a CA key below security
 * level 2, a broken pathlen.
 */

/** One certificate on the client's path, with the file it came from. */
export interface PathEntry {
  cert: X509Certificate;
  role: CertificateRole;
  file: string;
}

/** The extensions OpenSSL 3.0 processes (X509_supported_extension); any other marked critical fails verification. */
const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  '2.16.840.1.113730.1.1', // nsCertType
  '2.5.29.15', // keyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.19', // basicConstraints
  '2.5.29.30', // nameConstraints
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies
  '2.5.29.33', // policyMappings
  '2.5.29.36', // policyConstraints
  '2.5.29.37', // extKeyUsage
  '2.5.29.54', // inhibitAnyPolicy
  '1.3.6.1.5.5.7.1.7', // ipAddrBlocks (RFC 3779)
  '1.3.6.1.5.5.7.1.8', // autonomousSysIds (RFC 3779)
  '1.3.6.1.5.5.7.1.14', // proxyCertInfo
  '1.3.6.1.5.5.7.48.1.5', // OCSP noCheck
]);
const BASIC_CONSTRAINTS = '2.5.29.19';
/** OpenSSL security level 2 (the default of current distributions): RSA and DSA keys need 2048 bits. */
const MIN_CA_KEY_BITS = 2048;
/** The smallest EC key of the same level (112-bit security): a 224-bit curve. */
const MIN_EC_CA_KEY_BITS = 224;

/** A named curve's size in bits, read from its name (prime192v1, secp160k1, brainpoolP512r1, sect163k1); undefined when it carries none. */
function curveBits(curve: string | undefined): number | undefined {
  const bits = curve ? /\d{3}/.exec(curve)?.[0] : undefined;
  return bits === undefined ? undefined : Number(bits);
}

/** How a CA key under security level 2 is described ("1024-bit RSA key", "192-bit EC key (prime192v1)"); undefined when it is strong enough. */
function weakCaKey(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  if ((type === 'rsa' || type === 'rsa-pss' || type === 'dsa') && details?.modulusLength !== undefined && details.modulusLength < MIN_CA_KEY_BITS) return `${details.modulusLength}-bit ${type === 'dsa' ? 'DSA' : 'RSA'} key`;
  const bits = type === 'ec' ? curveBits(details?.namedCurve) : undefined;
  if (bits !== undefined && bits < MIN_EC_CA_KEY_BITS) return `${bits}-bit EC key (${details?.namedCurve ?? ''})`;
  return undefined;
}

/**
 * The path a server verifies: the client certificate, the chain sent with it, then the trust.ca
 * certificates that carry it to a root (the server holds its own copy of that root).
 */
export function clientPath(leaf: PathEntry, chain: readonly PathEntry[], trusted: readonly PathEntry[]): PathEntry[] {
  const path = [leaf, ...chain];
  for (let top = path[path.length - 1]; top && !isSelfSigned(top.cert);) {
    const current: X509Certificate = top.cert;
    const next = trusted.find((t) => !path.some((p) => p.cert.fingerprint256 === t.cert.fingerprint256) && issuedBy(current, t.cert));
    if (next) path.push(next);
    top = next;
  }
  return path;
}

const WHAT: Record<CertificateRole, string> = { client: 'the client certificate', chain: 'the intermediate', trust: 'the trust.ca certificate' };

function about(entry: PathEntry): Pick<Finding, 'file' | 'role' | 'subject'> {
  return { file: entry.file, role: entry.role, subject: oneLineName(entry.cert.subject) };
}

/** Findings for every certificate of `path` (leaf first) that a server refuses, each naming its file and subject. */
export function clientPathFindings(path: readonly PathEntry[]): Finding[] {
  const findings: Finding[] = [];
  path.forEach((entry, depth) => {
    const name = `${WHAT[entry.role]} "${oneLineName(entry.cert.subject)}"`;
    const extensions = certificateExtensions(entry.cert.raw) ?? [];
    for (const unknown of extensions.filter((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid))) {
      findings.push({
        severity: 'warning',
        code: 'CLIENT_CHAIN_CRITICAL_EXTENSION',
        message: `${name} in ${entry.file} has the critical extension ${unknown.oid}, which OpenSSL does not know: a server refuses the client chain ("unhandled critical extension", alert 46 certificate_unknown)`,
        hint: `ask the PKI team to reissue "${oneLineName(entry.cert.subject)}" without extension ${unknown.oid}, or with it marked non-critical`,
        ...about(entry),
      });
    }
    // A self-signed root without basicConstraints (an X.509 v1 root) is a CA to OpenSSL. (An issuer
    // whose keyUsage lacks keyCertSign never gets here: OpenSSL does not link it, see client-identity.)
    const v1Root = !extensions.some((e) => e.oid === BASIC_CONSTRAINTS) && isSelfSigned(entry.cert);
    if (depth > 0 && !entry.cert.ca && !v1Root) {
      findings.push({
        severity: 'warning',
        code: 'CLIENT_CHAIN_NOT_CA',
        message: `${name} in ${entry.file} issued "${oneLineName((path[depth - 1] as PathEntry).cert.subject)}" but is not a CA certificate (basicConstraints without CA:TRUE): a server refuses the client chain ("invalid CA certificate", alert 48 unknown_ca)`,
        hint: `the certificate that signed "${oneLineName((path[depth - 1] as PathEntry).cert.subject)}" must be a CA: ask the PKI team for a client certificate issued by a proper issuing CA, with that CA's chain`,
        ...about(entry),
      });
    }
    const weak = depth > 0 ? weakCaKey(entry.cert.publicKey) : undefined;
    if (weak) {
      findings.push({
        severity: 'warning',
        code: 'CLIENT_CHAIN_WEAK_CA_KEY',
        message: `${name} in ${entry.file} has a ${weak}: a server at OpenSSL security level 2 refuses the client chain ("CA certificate key too weak", alert 42 bad_certificate)`,
        hint: `ask the PKI team for a client certificate issued under a CA with an RSA key of ${MIN_CA_KEY_BITS} bits or more, or an EC key on a curve of ${MIN_EC_CA_KEY_BITS} bits or more (P-256), with that CA's chain`,
        ...about(entry),
      });
    }
    const constraint = extensions.find((e) => e.oid === BASIC_CONSTRAINTS);
    const pathLen = constraint ? pathLenConstraint(constraint.value) : undefined;
    if (pathLen === undefined || depth < 2) return;
    // RFC 5280 §4.2.1.9: intermediates between it and the leaf, self-issued ones not counted.
    const below = path.slice(1, depth).filter((p) => p.cert.subject !== p.cert.issuer);
    if (below.length <= pathLen) return;
    findings.push({
      severity: 'warning',
      code: 'CLIENT_CHAIN_PATH_LENGTH',
      message: `${name} in ${entry.file} allows ${pathLen} intermediate CA${pathLen === 1 ? '' : 's'} below it (pathlen:${pathLen}), but the client chain has ${below.length} (${below.map((p) => `"${oneLineName(p.cert.subject)}"`).join(', ')}): a server refuses it ("path length constraint exceeded", alert 48 unknown_ca)`,
      hint: `ask the PKI team to issue the client certificate ${pathLen === 0 ? 'directly from' : `from a CA at most ${pathLen} level${pathLen === 1 ? '' : 's'} below`} "${oneLineName(entry.cert.subject)}", or to reissue that CA with pathlen:${below.length} or more`,
      ...about(entry),
    });
  });
  return findings;
}
