import type { X509Certificate } from 'node:crypto';

/** The key of a client certificate, as far as TLS signature algorithms care. */
export interface ClientKey {
  /** Node's `asymmetricKeyType`: rsa, rsa-pss, ec, ed25519, ed448, dsa. */
  type: string;
  /** OpenSSL's curve name of an EC key (prime256v1, secp384r1, …). */
  curve?: string;
  bits?: number;
}

const CURVE_NAMES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
/** TLS 1.3 binds each ECDSA scheme to one curve (RFC 8446 §4.2.3): ecdsa_secp256r1_sha256 and so on. */
const TLS13_ECDSA_HASH: Record<string, string> = { prime256v1: 'SHA256', secp384r1: 'SHA384', secp521r1: 'SHA512' };
/** The key type each signature of Node's getSharedSigalgs() names ("RSA-PSS+SHA256" → RSA). */
/** The curves TLS 1.3 signs with here, by OpenSSL's name and by the name describeKey gives them. */
const TLS13_CURVES: ReadonlySet<string> = new Set([...Object.keys(TLS13_ECDSA_HASH), ...Object.values(CURVE_NAMES)]);

/**
 * Whether TLS 1.3 here can sign with this key at all: never with DSA, with EC only on P-256, P-384
 * and P-521 (OpenSSL 3.0 has no TLS 1.3 scheme for brainpool or secp256k1). Unknown curves count as
 * able, as in canSign.
 */
export function signsTls13(key: ClientKey): boolean {
  if (key.type === 'dsa') return false;
  return key.type !== 'ec' || key.curve === undefined || TLS13_CURVES.has(key.curve);
}

const KEY_OF_SIGNATURE: Record<string, string> = { RSA: 'RSA', 'RSA-PSS': 'RSA', ECDSA: 'EC', Ed25519: 'Ed25519', Ed448: 'Ed448', DSA: 'DSA' };

export function clientKeyOf(cert: X509Certificate): ClientKey {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails;
  return { type: key.asymmetricKeyType ?? 'unknown', ...(details?.namedCurve ? { curve: details.namedCurve } : {}), ...(details?.modulusLength ? { bits: details.modulusLength } : {}) };
}

/** "EC P-256", "RSA 2048", "Ed25519". */
export function describeKey(key: ClientKey): string {
  if (key.type === 'ec') return `EC ${key.curve ? (CURVE_NAMES[key.curve] ?? key.curve) : ''}`.trim();
  if (key.type === 'rsa' || key.type === 'rsa-pss') return `${key.type === 'rsa' ? 'RSA' : 'RSA-PSS'}${key.bits ? ` ${key.bits}` : ''}`;
  return key.type === 'ed25519' ? 'Ed25519' : key.type === 'ed448' ? 'Ed448' : key.type.toUpperCase();
}

/**
 * Whether OpenSSL can sign a CertificateVerify with this key under one of the signature
 * algorithms the server's CertificateRequest allows. Unknown key types count as usable: the
 * verdict "no certificate was sent" is only given when it is certain.
 */
export function canSign(sigalg: string, key: ClientKey, protocol: string | undefined): boolean {
  const [signature = '', hash = ''] = sigalg.split('+');
  const tls13 = protocol === 'TLSv1.3';
  switch (key.type) {
    case 'rsa':
      // RSA-PSS covers rsa_pss_rsae_* (an ordinary RSA key); PKCS#1 v1.5 signs no TLS 1.3 handshake.
      return signature === 'RSA-PSS' || (signature === 'RSA' && !tls13);
    case 'rsa-pss':
      return signature === 'RSA-PSS';
    case 'ec': {
      if (signature !== 'ECDSA') return false;
      // TLS 1.3 schemes name their curve; this OpenSSL (3.0) has none for brainpool or secp256k1 keys.
      if (!tls13 || key.curve === undefined) return true;
      return hash === TLS13_ECDSA_HASH[key.curve];
    }
    case 'ed25519':
      return signature === 'Ed25519';
    case 'ed448':
      return signature === 'Ed448';
    case 'dsa':
      return signature === 'DSA' && !tls13;
    default:
      return true;
  }
}

const TLS13_ECDSA_CURVE: Record<string, string> = { SHA256: 'P-256', SHA384: 'P-384', SHA512: 'P-521' };

/** The key types a list of signature algorithms asks for ("RSA", "EC", under TLS 1.3 "EC P-256"), each once. */
export function keyTypesFor(sigalgs: readonly string[], protocol: string | undefined): string[] {
  return [
    ...new Set(
      sigalgs.map((s) => {
        const [signature = '', hash = ''] = s.split('+');
        const curve = signature === 'ECDSA' && protocol === 'TLSv1.3' ? TLS13_ECDSA_CURVE[hash] : undefined;
        return curve ? `EC ${curve}` : (KEY_OF_SIGNATURE[signature] ?? s);
      }),
    ),
  ];
}

/**
 * The server asked for a client certificate with signature algorithms none of which this key can
 * make, so OpenSSL sent no certificate at all. Undefined when that is not known for certain.
 */
export function unusableKey(sigalgs: readonly string[] | undefined, key: ClientKey | undefined, protocol: string | undefined): { sigalgs: readonly string[]; key: ClientKey } | undefined {
  if (!sigalgs?.length || !key) return undefined;
  return usable(sigalgs, key, protocol) ? undefined : { sigalgs, key };
}

/**
 * The last verdict per list of signature algorithms. A connection keeps its list (resumed ones
 * share their agent's) until a renegotiation brings a new one, and every response asks again.
 */
const verdicts = new WeakMap<readonly string[], { key: ClientKey; protocol: string | undefined; usable: boolean }>();

function usable(sigalgs: readonly string[], key: ClientKey, protocol: string | undefined): boolean {
  const known = verdicts.get(sigalgs);
  if (known?.key === key && known.protocol === protocol) return known.usable;
  const verdict = sigalgs.some((s) => canSign(s, key, protocol));
  verdicts.set(sigalgs, { key, protocol, usable: verdict });
  return verdict;
}
