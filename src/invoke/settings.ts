import type { NodeDefinition } from '../definitions/types.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentSpec } from '../tls/agents.js';
import { bypassesProxy, proxyTlsFor } from '../tls/proxy-settings.js';
import { DEFAULTS } from './defaults.js';
import { IDEMPOTENT } from './retry.js';
import type { CallSettings } from './transport.js';

const cache = new WeakMap<NodeDefinition, Map<string, CallSettings>>();
/** The last settings of each node: a busy node calls one origin with one profile object. */
const last = new WeakMap<NodeDefinition, { profile: LoadedProfile; origin: string; forNodeOrigin: boolean; settings: CallSettings }>();

/**
 * The agent and transport settings of a node's calls to one origin (`https://host[:port]`). Cached per (node, profile
 * material, origin): the same settings object keeps its agent key, so a call does no option
 * building or key serialisation.
 */
export function callSettings(node: NodeDefinition, profile: LoadedProfile, origin: string, forNodeOrigin: boolean): CallSettings {
  const recent = last.get(node);
  if (recent && recent.profile === profile && recent.origin === origin && recent.forNodeOrigin === forNodeOrigin && current(recent.settings, node)) return recent.settings;
  let byOrigin = cache.get(node);
  if (!byOrigin) {
    byOrigin = new Map();
    cache.set(node, byOrigin);
  }
  const key = `${profile.name}\0${profile.version}\0${origin}\0${forNodeOrigin ? 1 : 0}`;
  let settings = byOrigin.get(key);
  if (!settings || !current(settings, node)) {
    if (byOrigin.size >= 64) byOrigin.clear();
    settings = buildSettings(node, profile, new URL(origin), forNodeOrigin);
    byOrigin.set(key, settings);
  }
  last.set(node, { profile, origin, forNodeOrigin, settings });
  return settings;
}

/** Settings built with a proxy.tls.ca whose files have changed since are stale: new connections get the new trust (see proxyTlsFor). */
function current(settings: CallSettings, node: NodeDefinition): boolean {
  const trust = settings.spec.proxyTls;
  return trust === undefined || node.proxy?.tls?.ca === undefined || proxyTlsFor(node.proxy.tls.ca) === trust;
}

function buildSettings(node: NodeDefinition, profile: LoadedProfile, url: URL, forNodeOrigin: boolean): CallSettings {
  const spec: AgentSpec = {
    profile,
    origin: new URL(url.origin),
    ...(forNodeOrigin && node.tls.servername ? { servername: node.tls.servername } : {}),
    ...(node.tls.minVersion ? { minVersion: node.tls.minVersion } : {}),
    ...(node.tls.maxVersion || node.tls.ciphers || node.tls.legacyServerConnect
      ? { policy: { ...(node.tls.maxVersion ? { maxVersion: node.tls.maxVersion } : {}), ...(node.tls.ciphers ? { ciphers: node.tls.ciphers } : {}), ...(node.tls.legacyServerConnect ? { legacyServerConnect: true } : {}) } }
      : {}),
    rules: forNodeOrigin
      ? {
          ...(node.tls.pinnedPublicKeys ? { pinnedPublicKeys: node.tls.pinnedPublicKeys } : {}),
          ...(node.tls.serverSubjectPatterns ? { serverSubjectPatterns: node.tls.serverSubjectPatterns } : {}),
        }
      : {},
    ...(node.proxy && !bypassesProxy(url, node.proxy.noProxy, process.env.NO_PROXY ?? process.env.no_proxy)
      ? { proxyUrl: node.proxy.url, ...(node.proxy.url.startsWith('https:') && node.proxy.tls?.ca ? { proxyTls: proxyTlsFor(node.proxy.tls.ca) } : {}) }
      : {}),
    limits: {
      connectMs: node.timeouts?.connectMs ?? DEFAULTS.timeouts.connectMs,
      handshakeMs: node.timeouts?.handshakeMs ?? DEFAULTS.timeouts.handshakeMs,
    },
    keepAliveMs: node.timeouts?.keepAliveMs ?? DEFAULTS.timeouts.keepAliveMs,
  };
  return {
    spec,
    followRedirects: forNodeOrigin && (node.request.followRedirects ?? false),
    // A node's own limit is about its API's answers: token and discovery answers get at least the default.
    maxBodyBytes: forNodeOrigin ? (node.response?.maxBodyBytes ?? DEFAULTS.response.maxBodyBytes) : Math.max(node.response?.maxBodyBytes ?? 0, DEFAULTS.response.maxBodyBytes),
    responseMs: node.timeouts?.responseMs ?? DEFAULTS.timeouts.responseMs,
    idleMs: node.timeouts?.idleMs ?? DEFAULTS.timeouts.idleMs,
    totalMs: node.timeouts?.totalMs ?? DEFAULTS.timeouts.totalMs,
    // Token and discovery requests fetch a token or a document: repeating one changes nothing.
    replayable: !forNodeOrigin || IDEMPOTENT.has(node.request.method) || (node.retry?.nonIdempotent ?? DEFAULTS.retry.nonIdempotent),
  };
}
