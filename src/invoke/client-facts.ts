import { extKeyUsage } from '../pki/inspect.js';
import type { LoadedProfile } from '../pki/types.js';
import { formatDn } from '../tls/identity.js';
import { clientKeyOf, type ClientKey } from '../tls/sigalgs.js';

/** What every call needs to know about a profile's client certificate, computed once per profile. */
export interface ClientFacts {
  subject: string;
  fingerprint256: string;
  notBefore: number;
  notAfter: number;
  /** URL-encoded PEM of the leaf, for tls.clientCertHeader. */
  headerValue: string;
  /** The leaf's key type, to tell whether a server's signature algorithms allow it. */
  key: ClientKey;
  /** The leaf's extended key usages by name; empty when it has none (any purpose). */
  extKeyUsage: string[];
}

const facts = new WeakMap<LoadedProfile, ClientFacts | null>();

/** X509Certificate getters parse and allocate on every access; calls read these instead. */
export function clientFacts(profile: LoadedProfile): ClientFacts | null {
  let f = facts.get(profile);
  if (f === undefined) {
    const leaf = profile.client?.leaf;
    f = leaf
      ? {
          subject: formatDn(leaf.subject),
          fingerprint256: leaf.fingerprint256,
          notBefore: new Date(leaf.validFrom).getTime(),
          notAfter: new Date(leaf.validTo).getTime(),
          headerValue: encodeURIComponent(leaf.toString()),
          key: clientKeyOf(leaf),
          extKeyUsage: extKeyUsage(leaf),
        }
      : null;
    facts.set(profile, f);
  }
  return f;
}
