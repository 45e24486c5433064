import type { X509Certificate } from 'node:crypto';

/** Ordering of a client certificate's intermediates: leaf first, then each issuer. */

export interface OrderedChain {
  /** Issuers after the leaf, leaf's issuer first. */
  chain: X509Certificate[];
  /** Certificates that are not on the path from the leaf (a broken or foreign chain). */
  unlinked: X509Certificate[];
  /** The input order differed from leaf-then-issuers. */
  reordered: boolean;
}

/** `issuer` signed `cert` (names, key identifiers and signature all agree). */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

export function isSelfSigned(cert: X509Certificate): boolean {
  return issuedBy(cert, cert);
}

/**
 * Walk from `leaf` through `certificates` (file order, may include the leaf and duplicates) by
 * issuer, and report what does not link.
 */
export function orderChain(leaf: X509Certificate, certificates: readonly X509Certificate[]): OrderedChain {
  const seen = new Set<string>([leaf.fingerprint256]);
  const fileOrder: X509Certificate[] = [];
  for (const cert of certificates) {
    if (seen.has(cert.fingerprint256)) continue;
    seen.add(cert.fingerprint256);
    fileOrder.push(cert);
  }
  const remaining = [...fileOrder];
  const chain: X509Certificate[] = [];
  let current = leaf;
  while (!isSelfSigned(current)) {
    const index = remaining.findIndex((candidate) => issuedBy(current, candidate));
    if (index < 0) break;
    const [next] = remaining.splice(index, 1);
    if (!next) break;
    chain.push(next);
    current = next;
  }
  const leafFirst = certificates[0]?.fingerprint256 === leaf.fingerprint256 || certificates.length === 0;
  const sameOrder = chain.every((cert, i) => fileOrder[i] === cert);
  return { chain, unlinked: remaining, reordered: !leafFirst || !sameOrder };
}
