import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, SecureContext, SecureVersion, TLSSocket } from 'node:tls';
import type { LoadedProfile } from '../pki/types.js';
import { identityChecker, type IdentityRules } from './identity.js';
import { ocspStapling, sessionCacheSize, type StaplingConnection } from './ocsp-stapling.js';
import { instrument, newProbe, probeOf, type AgentMemo, type ConnectionProbe, type PhaseLimits, type ResumedCheck } from './probe.js';
import { openTunnel, type ProxyHop } from './proxy-connect.js';
import { connectionChecker, resumedRevocationCheck } from './revocation.js';
import { secureContextFor } from './secure-context.js';
import { policyKey, type TlsPolicy } from './tls-policy.js';
import { authorityHost, tlsEndpoint } from './endpoint.js';
import { IdleLimit, type IdleLearned } from './idle-limit.js';
import { sharedLookup } from './lookup.js';

/** Everything that decides which connections may be shared. */
export interface AgentSpec {
  profile: LoadedProfile;
  origin: URL;
  servername?: string;
  minVersion?: SecureVersion;
  /** maxVersion, ciphers, legacyServerConnect: they change the handshake, so they are part of the key. */
  policy?: TlsPolicy;
  rules: IdentityRules;
  proxyUrl?: string;
  /** Trust of an `https://` proxy (proxy.tls.ca); with none, the system roots verify the proxy. */
  proxyTls?: { context: SecureContext; id: string };
  limits: PhaseLimits;
  /** Longest a pooled connection waits unused (timeouts.keepAliveMs). */
  keepAliveMs: number;
}

type Callback = (error: Error | null, stream: Duplex) => void;
type CreateConnection = (this: unknown, options: https.RequestOptions, callback?: Callback) => Duplex | null | undefined;

/** Options shared by both agent kinds: the prebuilt SecureContext and SNI (checks are per connection, see connectionOptions). */
function agentOptions(spec: AgentSpec): https.AgentOptions {
  const { servername } = tlsEndpoint(spec.origin, spec.servername);
  return {
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 256,
    scheduling: 'lifo',
    secureContext: secureContextFor(spec.profile, spec.minVersion, spec.policy),
    rejectUnauthorized: true,
    // Said in the handshake, as curl does: a backend that serves only HTTP/2 (gRPC gateways, Node's
    // http2 server) then refuses with no_application_protocol instead of answering HTTP/1.1 with a 403.
    ALPNProtocols: ['http/1.1'],
    // Calls to one host name share its lookup: a name the DNS server does not answer holds one lookup slot of libuv's pool, not one per call.
    lookup: sharedLookup,
    ...(servername ? { servername } : {}),
  };
}

type Checker = (host: string, cert: PeerCertificate) => Error | undefined;

/** node:http's TCP keep-alive probe delay (its agent's default keepAliveMsecs). */
const TCP_KEEPALIVE_MS = 1_000;

/**
 * node:http's keepSocketAlive with an idle limit (see IdleLimit): a pooled connection closes
 * after the agent's limit unused (node:http's agent keeps it until the server closes it, and a
 * call that picks it as the close arrives gets no answer). The socket timeout is set when the
 * limit changes; the agent destroys a free socket when it fires. A close by the backend while the
 * connection waits in the pool teaches the limit.
 */
function keepIdle(socket: Duplex, idle: IdleLimit): boolean {
  const net = socket as TLSSocket;
  const probe = probeOf(socket);
  const limit = idle.limit(probe?.serverKeepAliveMs);
  if (limit <= 0) return false;
  net.setKeepAlive(true, TCP_KEEPALIVE_MS);
  net.unref();
  if (net.timeout !== limit) net.setTimeout(limit);
  if (probe) {
    probe.idleSince = performance.now();
    if (probe.idleLimit === undefined) {
      probe.idleLimit = idle;
      // The exchange clears idleSince when it takes the connection: an 'end' with it set is the backend's idle close.
      net.prependOnceListener('end', () => {
        if (probe.idleSince !== undefined) idle.observe(performance.now() - probe.idleSince);
      });
    }
  }
  return true;
}

/**
 * A new connection's options: its own identity and revocation checker, which records verdicts on
 * the connection's probe for the Result, wrapped by OCSP stapling when the profile staples.
 */
function connectionOptions(spec: AgentSpec, identity: Checker, options: https.RequestOptions, probe: ConnectionProbe, timeout?: number): { options: https.RequestOptions; stapling: StaplingConnection | undefined } {
  const checked = { ...options, checkServerIdentity: connectionChecker(spec.profile, identity, probe), ...(timeout === undefined ? {} : { timeout }) };
  const stapling = ocspStapling(spec.profile, probe);
  return { options: stapling?.options(checked) ?? checked, stapling };
}

/** The request options node:https's pool name depends on besides the agent's own. */
type Endpoint = Pick<https.RequestOptions, 'host' | 'port' | 'localAddress' | 'family'> & { servername?: string };

/**
 * What both agent kinds share: kept-alive sockets under the learned idle limit, and the pool name
 * of a request computed once per endpoint. node:https builds that name from some thirty options
 * on every request, three times (taking the socket, freeing it, removing it from the busy list),
 * which showed in the per-job CPU (`npm run bench:call-path`). Its TLS part comes from this
 * agent's own options, which take precedence over a request's, so within one agent the name
 * depends only on the endpoint fields compared here.
 */
class PooledAgent extends https.Agent {
  /** The last name computed, with the endpoint fields it was computed for. */
  private last: (Endpoint & { name: string }) | undefined;

  constructor(
    options: https.AgentOptions,
    private readonly idle: IdleLimit,
  ) {
    super(options);
  }

  override getName(options: https.RequestOptions = {}): string {
    const o = options as Endpoint;
    const last = this.last;
    // One agent serves one origin: the same fields on nearly every call, compared without building a key.
    if (last && last.host === o.host && last.port === o.port && last.servername === o.servername && last.localAddress === o.localAddress && last.family === o.family) return last.name;
    const name = super.getName(options);
    this.last = { host: o.host, port: o.port, servername: o.servername, localAddress: o.localAddress, family: o.family, name };
    return name;
  }

  override keepSocketAlive(socket: Duplex): boolean {
    return keepIdle(socket, this.idle);
  }
}

/** Direct connections, with connect and handshake timers and a probe on every socket. */
class DirectAgent extends PooledAgent {
  private readonly memo: AgentMemo = {};
  private readonly identity: Checker;
  private readonly resumed: ResumedCheck | undefined;

  constructor(
    readonly spec: AgentSpec,
    maxCachedSessions: number,
    idle: IdleLimit,
  ) {
    super({ ...agentOptions(spec), maxCachedSessions: sessionCacheSize(spec.profile, maxCachedSessions) }, idle);
    this.identity = identityChecker(spec.rules);
    this.resumed = resumedRevocationCheck(spec.profile);
  }

  override createConnection(options: https.RequestOptions, callback?: Callback): Duplex | null | undefined {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with this agent as `this`
    const create: CreateConnection = https.Agent.prototype.createConnection;
    const probe = newProbe('direct');
    const { options: own, stapling } = connectionOptions(this.spec, this.identity, options, probe);
    const socket = create.call(this, own, callback) as TLSSocket;
    stapling?.watch(socket);
    instrument(socket, probe, this.spec.limits, false, this.memo, this.resumed, typeof own.host === 'string' ? own.host : undefined);
    return socket;
  }
}

/**
 * Connections through a CONNECT proxy, `http://` or `https://` (TLS to the proxy, so the CONNECT
 * and its credentials never travel in plaintext). TLS material is prebuilt in the SecureContext;
 * the CONNECT gets the connect timeout; every error before the tunnel stands is a ProxyError that
 * says what the proxy answered (openTunnel).
 */
class ProxyAgent extends PooledAgent {
  private readonly memo: AgentMemo = {};
  private readonly identity: Checker;
  private readonly resumed: ResumedCheck | undefined;
  private readonly hop: ProxyHop;

  constructor(
    readonly spec: AgentSpec & { proxyUrl: string },
    maxCachedSessions: number,
    idle: IdleLimit,
  ) {
    super({ ...agentOptions(spec), maxCachedSessions: sessionCacheSize(spec.profile, maxCachedSessions) }, idle);
    this.identity = identityChecker(spec.rules);
    this.resumed = resumedRevocationCheck(spec.profile);
    this.hop = { proxyUrl: spec.proxyUrl, keepAlive: true, ...(spec.proxyTls ? { proxyTls: spec.proxyTls } : {}) };
  }

  override createConnection(options: https.RequestOptions, callback?: Callback): undefined {
    const probe = newProbe('proxy');
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with this agent as `this`
    const create: CreateConnection = https.Agent.prototype.createConnection;
    const { options: own, stapling } = connectionOptions(this.spec, this.identity, options, probe, this.spec.limits.connectMs);
    // `CONNECT host:port` needs an IPv6 target in brackets (the TLS checks strip them).
    const target = typeof own.host === 'string' ? { ...own, host: authorityHost(own.host) } : own;
    openTunnel(this.hop, String(target.host ?? 'localhost'), Number(target.port ?? 443), this.spec.limits.connectMs, (error, tunnel) => {
      if (error || !tunnel) {
        callback?.(error, undefined as unknown as Duplex);
        return;
      }
      let socket: TLSSocket;
      try {
        socket = create.call(this, { ...target, socket: tunnel }) as TLSSocket;
      } catch (thrown) {
        // A throw here would escape as an uncaught exception and leave the call pending.
        tunnel.destroy();
        callback?.(thrown as Error, undefined as unknown as Duplex);
        return;
      }
      socket.setTimeout(0);
      stapling?.watch(socket);
      instrument(socket, probe, this.spec.limits, true, this.memo, this.resumed);
      callback?.(null, socket);
    });
    return undefined;
  }
}

const keys = new WeakMap<AgentSpec, string>();

/** The pool key of a spec, computed once per spec object. */
function keyOf(spec: AgentSpec): string {
  let key = keys.get(spec);
  if (key === undefined) {
    key = computeKey(spec);
    keys.set(spec, key);
  }
  return key;
}

/**
 * The pool key, and the security invariant of connection reuse: a kept-alive connection or a
 * resumed TLS session is only ever used by calls whose key is equal, i.e. with the same profile
 * material, origin, SNI, TLS versions, ciphers, legacy renegotiation, pins, subject patterns and proxy. Node's own agent key
 * leaves out checkServerIdentity, and a resumed session skips it (Node 20 shows no peer
 * certificate then), so pins and patterns are enforced by this key, not by a per-socket check.
 */
export function agentKey(spec: AgentSpec): string {
  return keyOf(spec);
}

function computeKey(spec: AgentSpec): string {
  return JSON.stringify([
    spec.profile.name,
    spec.profile.version,
    spec.origin.origin,
    spec.servername ?? null,
    spec.minVersion ?? null,
    policyKey(spec.policy),
    spec.rules.pinnedPublicKeys ?? null,
    spec.rules.serverSubjectPatterns ?? null,
    spec.proxyUrl ?? null,
    spec.proxyTls?.id ?? null,
    spec.limits.connectMs,
    spec.limits.handshakeMs,
    spec.keepAliveMs,
  ]);
}

export interface AgentPoolOptions {
  /** Agents kept; the least recently used beyond this are destroyed. @defaultValue MAX_AGENTS (4096) */
  maxAgents?: number;
  /**
   * An agent was destroyed to stay within maxAgents; `openSockets` > 0 means it was in use (its
   * connections and TLS sessions are lost, and reopened by the next call): more (profile, origin)
   * pairs carry traffic than maxAgents, and calls pay a full handshake each.
   */
  onEvicted?: (evicted: { profile: string; origin: string; openSockets: number; maxAgents: number }) => void;
  /** TLS sessions cached per agent for resumption; 0 forces full handshakes (always so for OCSP stapling profiles). @defaultValue 100 */
  maxCachedSessions?: number;
  /** An agent learned that its backend closes idle connections sooner than its limit (see IdleLimit). */
  onIdleLearned?: (learned: IdleLearned & { origin: string; profile: string }) => void;
}

/**
 * Agents kept by default: one per (profile, origin) pair that carries traffic. At 512, a worker
 * with 600 pairs in use (200 profiles × 3 backends) destroyed an agent on nearly every call and
 * ran 10× slower on full handshakes; an idle agent costs little (its sockets close after
 * keepAliveMs, its TLS session cache holds at most maxCachedSessions small entries).
 */
export const MAX_AGENTS = 4096;

/**
 * Keep-alive agents per pool key (see agentKey). Least recently used agents beyond `maxAgents`
 * are destroyed.
 */
export class AgentPool {
  private readonly agents = new Map<string, https.Agent>();
  /** Key of the last agent handed out, the newest entry of `agents`. */
  private newest: string | undefined;
  private readonly maxAgents: number;
  private readonly maxCachedSessions: number;
  private readonly onIdleLearned: AgentPoolOptions['onIdleLearned'];
  private readonly onEvicted: AgentPoolOptions['onEvicted'];

  constructor(options: AgentPoolOptions = {}) {
    this.maxAgents = options.maxAgents ?? MAX_AGENTS;
    this.maxCachedSessions = options.maxCachedSessions ?? 100;
    this.onIdleLearned = options.onIdleLearned;
    this.onEvicted = options.onEvicted;
  }

  get(spec: AgentSpec): https.Agent {
    const key = keyOf(spec);
    let agent = this.agents.get(key);
    // Already the most recently used (a busy node): the order is right, no re-insertion per call.
    if (agent && key === this.newest) return agent;
    if (agent) {
      this.agents.delete(key);
    } else {
      const told = this.onIdleLearned;
      const idle = new IdleLimit(spec.keepAliveMs, told && ((learned) => told({ ...learned, origin: spec.origin.origin, profile: spec.profile.name })));
      agent = spec.proxyUrl ? new ProxyAgent({ ...spec, proxyUrl: spec.proxyUrl }, this.maxCachedSessions, idle) : new DirectAgent(spec, this.maxCachedSessions, idle);
    }
    this.agents.set(key, agent);
    this.newest = key;
    while (this.agents.size > this.maxAgents) {
      const [oldestKey, oldest] = this.agents.entries().next().value as [string, https.Agent];
      this.agents.delete(oldestKey);
      const openSockets = socketsOf(oldest);
      oldest.destroy();
      const evicted = (oldest as Partial<Pick<DirectAgent, 'spec'>>).spec;
      if (this.onEvicted && evicted) this.onEvicted({ profile: evicted.profile.name, origin: evicted.origin.origin, openSockets, maxAgents: this.maxAgents });
    }
    return agent;
  }

  /**
   * Take the agents of a profile's older material out of use (rotation): new calls get a new
   * agent with the new identity; idle connections close now, busy ones after their response.
   */
  retire(profileName: string, keepVersion?: string): number {
    let retired = 0;
    for (const [key, agent] of this.agents) {
      const [name, version] = JSON.parse(key) as [string, string];
      if (name === profileName && version !== keepVersion) {
        this.agents.delete(key);
        (agent as https.Agent & { keepAlive: boolean }).keepAlive = false;
        for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
        retired++;
      }
    }
    return retired;
  }

  get size(): number {
    return this.agents.size;
  }

  /** Open sockets across all agents (in use + idle). */
  socketCount(): number {
    let n = 0;
    for (const agent of this.agents.values()) n += socketsOf(agent);
    return n;
  }

  destroy(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }
}

/** Open sockets of one agent (in use + idle). */
function socketsOf(agent: https.Agent): number {
  let n = 0;
  for (const list of [...Object.values(agent.sockets), ...Object.values(agent.freeSockets)]) n += list?.length ?? 0;
  return n;
}
