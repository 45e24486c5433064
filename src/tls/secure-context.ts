import type { X509Certificate } from 'node:crypto';
import { createSecureContext, rootCertificates, type SecureContext, type SecureVersion } from 'node:tls';
import { BundleError } from '../errors.js';
import type { LoadedProfile } from '../pki/types.js';
import { revocationContextOptions } from './revocation.js';
import { policyKey, policyOptions, type TlsPolicy } from './tls-policy.js';

const contexts = new WeakMap<LoadedProfile, Map<string, SecureContext>>();

/** OpenSSL 3.0's default TLS groups (ecdhCurve 'auto'). */
const DEFAULT_GROUPS = ['X25519', 'P-256', 'X448', 'P-521', 'P-384'];
const DEFAULT_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);

/**
 * An EC client key on another curve (brainpool, common in European bank PKIs) is only accepted by
 * a TLS 1.2 server when the client offers that curve among its groups: OpenSSL's default list
 * leaves brainpool out, and the server then aborts with illegal_parameter.
 */
function groupsFor(leaf: X509Certificate | undefined): { ecdhCurve?: string } {
  const curve = leaf?.publicKey.asymmetricKeyDetails?.namedCurve;
  if (leaf?.publicKey.asymmetricKeyType !== 'ec' || curve === undefined || DEFAULT_CURVES.has(curve)) return {};
  return { ecdhCurve: [...DEFAULT_GROUPS, curve].join(':') };
}

/**
 * The one SecureContext of a profile and minimum TLS version: client key + certificate chain,
 * and the trust anchors that replace (or, with systemRoots, extend) Node's bundled roots.
 * Built once and reused: with the system roots it costs ~20 ms of CPU.
 */
export function secureContextFor(profile: LoadedProfile, minVersion: SecureVersion = 'TLSv1.2', policy?: TlsPolicy): SecureContext {
  let byVersion = contexts.get(profile);
  if (!byVersion) {
    byVersion = new Map();
    contexts.set(profile, byVersion);
  }
  const key = `${minVersion}\0${policyKey(policy)}`;
  const cached = byVersion.get(key);
  if (cached) return cached;
  const trust = profile.trust.certificates.map((c) => c.toString());
  const ca = trust.length === 0 ? undefined : profile.trust.systemRoots ? [...rootCertificates, ...trust] : trust;
  const client = profile.client;
  let context: SecureContext;
  try {
    const options = {
      minVersion,
      ...policyOptions(policy),
      ...revocationContextOptions(profile),
      ...(ca ? { ca } : {}),
      ...(client ? { key: client.keyPem, cert: [client.leaf, ...client.chain].map((c) => c.toString()).join('') } : {}),
    };
    const groups = groupsFor(client?.leaf);
    try {
      context = createSecureContext({ ...options, ...groups });
    } catch (cause) {
      // A curve OpenSSL cannot offer as a TLS group: the defaults, as before.
      if (groups.ecdhCurve === undefined) throw cause;
      context = createSecureContext(options);
    }
  } catch (cause) {
    throw new BundleError('SVCNODE_INVALID_BUNDLE', `profile "${profile.name}": the TLS library refused the bundle`, {
      cause,
      file: profile.file,
      hint: 'run `svcnode certs verify` on the profile to see what is wrong with its material',
    });
  }
  byVersion.set(key, context);
  return context;
}
