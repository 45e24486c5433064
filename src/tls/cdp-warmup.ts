import { connect } from 'node:tls';
import type { NodeDefinition } from '../definitions/types.js';
import type { LoadedProfile } from '../pki/types.js';
import { issuedCertificates } from './probe.js';
import { secureContextFor } from './secure-context.js';
import { tlsEndpoint } from './endpoint.js';

/** Bounds of the warm-up handshakes: few, short, and never in the way of calls. */
export const CDP_WARMUP_DEFAULTS = {
  /** Distinct backends probed per profile. */
  maxOrigins: 8,
  /** A handshake that takes longer is abandoned. */
  timeoutMs: 3_000,
} as const;

/** One handshake, no request: the verified chain's distribution points are learnt (downloads start in the background). */
function probe(profile: LoadedProfile, url: URL, servername: string | undefined): Promise<void> {
  return new Promise((resolve) => {
    const { host, port, servername: sni } = tlsEndpoint(url, servername);
    const socket = connect({ host, port, secureContext: secureContextFor(profile), rejectUnauthorized: true, ...(sni ? { servername: sni } : {}) });
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, CDP_WARMUP_DEFAULTS.timeoutMs);
    timer.unref();
    socket.once('secureConnect', () => {
      profile.trust.distributionPoints?.learn(issuedCertificates(socket.getPeerCertificate(true)));
      done();
    });
    socket.once('error', done);
  });
}

/**
 * Learn the leaf distribution points of the backends that nodes with distribution-point profiles
 * call, by a handshake to each (at most maxOrigins per profile, direct connections only, no
 * templated hosts), so their CRLs are there before the first call. Never throws; not awaited by
 * the call path.
 */
export async function warmDistributionPoints(nodes: Iterable<NodeDefinition>, profiles: ReadonlyMap<string, LoadedProfile>): Promise<number> {
  const origins = new Map<LoadedProfile, Map<string, { url: URL; servername: string | undefined }>>();
  for (const node of nodes) {
    const profile = profiles.get(node.tls.profile);
    if (!profile?.trust.distributionPoints || node.proxy || node.request.url.includes('{{')) continue;
    let url: URL;
    try {
      url = new URL(node.request.url);
    } catch {
      continue;
    }
    if (url.protocol !== 'https:') continue;
    const byOrigin = origins.get(profile) ?? new Map<string, { url: URL; servername: string | undefined }>();
    origins.set(profile, byOrigin);
    const key = `${url.origin}\0${node.tls.servername ?? ''}`;
    if (byOrigin.size < CDP_WARMUP_DEFAULTS.maxOrigins && !byOrigin.has(key)) byOrigin.set(key, { url, servername: node.tls.servername });
  }
  const probes = [...origins].flatMap(([profile, byOrigin]) => [...byOrigin.values()].map((o) => probe(profile, o.url, o.servername).catch(() => undefined)));
  await Promise.all(probes);
  return probes.length;
}
