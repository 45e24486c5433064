import type { KeyObject, X509Certificate } from 'node:crypto';
import type { LoadedCrl } from './crl.js';
import type { DistributionPointCrls } from './distribution-points.js';

export type FindingSeverity = 'error' | 'warning' | 'info';

/** One result of validating a bundle: an error refuses the profile, a warning does not. */
export interface Finding {
  severity: FindingSeverity;
  /** Stable code, e.g. `CERT_EXPIRES_SOON`, `KEY_MISMATCH`, `CHAIN_BROKEN`, `NO_CLIENT_AUTH_EKU`. */
  code: string;
  message: string;
  file?: string;
  hint?: string;
  /** The certificate the finding is about, if any. */
  role?: CertificateRole;
  subject?: string;
  /** ISO 8601 expiry of that certificate. */
  validTo?: string;
  /** Whole days from `now` until validTo (negative once expired). */
  daysLeft?: number;
}

/** Where a certificate sits in a profile. */
export type CertificateRole = 'client' | 'chain' | 'trust';

/** The client identity presented in handshakes. The key is never enumerable. */
export interface ClientIdentity {
  /** The leaf certificate presented. */
  readonly leaf: X509Certificate;
  /** Intermediates sent after the leaf, issuer order (leaf's issuer first). */
  readonly chain: readonly X509Certificate[];
  /** Decrypted private key (non-enumerable). */
  readonly key: KeyObject;
  /** Unencrypted PKCS#8 PEM of the key, for tls.createSecureContext (non-enumerable). */
  readonly keyPem: string;
  /** Files the identity came from, for messages. */
  readonly sources: readonly string[];
}

/** How revocation is checked (trust.revocation). */
export interface RevocationPolicy {
  /** `hard`: no current revocation data fails the call; `soft`: the call proceeds with a warning. */
  readonly mode: 'hard' | 'soft';
  readonly ocsp: 'off' | 'stapled-if-present' | 'stapled-required';
  readonly distributionPoints: boolean;
}

/** A fully loaded, validated and normalised certificate profile. No node-forge work after load. */
export interface LoadedProfile {
  /** Profile name (the file's basename without .json). */
  readonly name: string;
  /** Absolute path of the profile file. */
  readonly file: string;
  /** Hash of every byte of material + passphrase identity; changes when any file changes. */
  readonly version: string;
  readonly client: ClientIdentity | undefined;
  readonly trust: {
    /** Roots and intermediates that verify servers, in file order, deduplicated. */
    readonly certificates: readonly X509Certificate[];
    /** Also trust Node's bundled Mozilla roots. */
    readonly systemRoots: boolean;
    /** CRLs of trust.crl, signature-checked against trust.ca; absent or empty: no revocation checks. */
    readonly crls?: readonly LoadedCrl[];
    /** trust.revocation with defaults applied. */
    readonly revocation?: RevocationPolicy;
    /** With trust.revocation.distributionPoints: the CRLs learnt from server chains' distribution points. */
    readonly distributionPoints?: DistributionPointCrls;
    /** CRL URLs (trust.crl, trust.ca's distribution points) that gave no CRL at load, each with why; retried by reloads. */
    readonly crlsUnavailable?: readonly { readonly url: string; readonly message: string }[];
  };
  /** The profile's policy with defaults applied (always set by loadProfile). */
  readonly policy?: { readonly minKeyBits: number; readonly expiryWarningDays: number };
  /**
   * Findings at load time: warnings and info, plus `error` findings for an expired or not yet valid
   * client certificate (the profile loads; the call path refuses to present it).
   */
  readonly findings: readonly Finding[];
}

export type PassphraseSource = { env: string } | { file: string };

/** A certificate profile document (schemas/cert-profile.schema.json). */
export interface ProfileDocument {
  name?: string;
  client?:
    | { certificate: string; key: string; passphrase?: PassphraseSource }
    | { pkcs12: string; passphrase?: PassphraseSource };
  trust?: { ca?: string[]; systemRoots?: boolean; crl?: string[]; revocation?: { distributionPoints?: boolean; ocsp?: 'off' | 'stapled-if-present' | 'stapled-required'; mode?: 'hard' | 'soft' } };
  policy?: { minKeyBits?: 2048 | 3072 | 4096; expiryWarningDays?: number };
}
