import type { X509Certificate } from 'node:crypto';
import type { CertificateRole, LoadedProfile } from './types.js';

/** Every certificate a profile holds with its role: the client leaf, its chain, the trust anchors. */
export function profileCertificates(profile: LoadedProfile): (readonly [CertificateRole, X509Certificate])[] {
  return [
    ...(profile.client ? [['client', profile.client.leaf] as const, ...profile.client.chain.map((c) => ['chain', c] as const)] : []),
    ...profile.trust.certificates.map((c) => ['trust', c] as const),
  ];
}
