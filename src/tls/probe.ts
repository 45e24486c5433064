import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { SvcnodeError } from '../errors.js';
import { formatDn } from './identity.js';
import type { IdleLimit } from './idle-limit.js';
import type { RevocationCheck } from './revocation.js';

/** One certificate of a chain, as reported in Results and failure records. */
export interface ChainEntry {
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
  fingerprint256: string;
  /** Upper-case hex, as Node prints it; names the certificate in revocation hints. */
  serialNumber?: string;
  /**
   * Dry-run only: whether the server sent this certificate (false: Node took it from trust.ca to
   * complete the chain). Absent when not checked (worker Results, a node behind a proxy).
   */
  sent?: boolean;
  /**
   * Set (true) on a leaf without a subjectAltName extension: Node matched the host name against
   * its CN, which browsers, Go and many gateways no longer do.
   */
  noSubjectAltName?: true;
}

/** What happened on one TLS connection; attached when the connection is created. */
export interface ConnectionProbe {
  via: 'direct' | 'proxy';
  /** performance.now() when the connection (or tunnel request) was started. */
  startedAt: number;
  /** TCP connected (direct) or tunnel established (proxy). */
  connectedAt?: number;
  /** The handshake finished ('secure'), before Node verified the server certificate. */
  secureAt?: number;
  /** TLS 1.2: the server's flight was read and ours sent (the first CLIENT_RANDOM key log line); protocol, cipher and chain are known from then. */
  flightAt?: number;
  /** The server certificate and identity verified ('secureConnect'). */
  verified?: boolean;
  /** The socket ended or closed. */
  closedAt?: number;
  protocol?: string;
  cipher?: string;
  sessionReused: boolean;
  serverChain?: ChainEntry[];
  /** TLS key material was derived: the handshake got past version and cipher negotiation. */
  keylog: boolean;
  /** Label of the first key log line: `CLIENT_RANDOM` for TLS 1.2 (our whole flight was sent), `*_TRAFFIC_SECRET` for 1.3. */
  keylogLabel?: string;
  /** Requests that received a response on this connection. */
  responses: number;
  /** The server sent application data on this connection: an HTTP answer began (see exchange). */
  answered?: boolean;
  /** The server asked for a client certificate (a CertificateRequest; on a resumed session, in the full handshake it resumes; or in a TLS 1.2 renegotiation). */
  certificateRequested?: boolean;
  /** Signature algorithms of the server's last CertificateRequest that this client supports (getSharedSigalgs): the key types it accepts. */
  sharedSigalgs?: string[];
  timedOut?: 'connect' | 'handshake';
  /** A host name is being looked up (getaddrinfo) and has not answered yet: a connect timeout then is a name lookup's. */
  lookingUp?: boolean;
  /** The server's `Keep-Alive: timeout=N` in ms: it closes the connection after that long idle. */
  serverKeepAliveMs?: number;
  /** performance.now() when the connection went back to the pool; cleared when a request takes it. */
  idleSince?: number;
  /** How long it had waited in the pool when the current request took it. */
  idleWhenTaken?: number;
  /** Its agent's idle limit, taught by the backend's closes (set when it first went back to the pool). */
  idleLimit?: IdleLimit;
  /** Revocation verdicts of this connection's full handshake (absent when no policy applies). */
  revocation?: RevocationCheck[];
  /** What its agent (one profile, one origin) remembers across connections. */
  agent?: AgentMemo;
}

export interface PhaseLimits {
  connectMs: number;
  handshakeMs: number;
}

const probes = new WeakMap<object, ConnectionProbe>();

export function probeOf(socket: object | null | undefined): ConnectionProbe | undefined {
  return socket ? probes.get(socket) : undefined;
}

export function newProbe(via: ConnectionProbe['via']): ConnectionProbe {
  return { via, startedAt: performance.now(), sessionReused: false, keylog: false, responses: 0 };
}

let lastHint: { header: string; ms: number | undefined } | undefined;

/** Record a response's `Keep-Alive: timeout=N` on its connection (backends send the same header on every response). */
export function noteKeepAlive(socket: object | null, header: string): void {
  const probe = probeOf(socket);
  if (!probe) return;
  if (lastHint?.header !== header) {
    const seconds = /(?:^|[\s,])timeout\s*=\s*(\d{1,9})/i.exec(header)?.[1];
    lastHint = { header, ms: seconds === undefined ? undefined : Number(seconds) * 1000 };
  }
  if (lastHint.ms !== undefined) probe.serverKeepAliveMs = lastHint.ms;
}

/**
 * Connect and handshake times of a connection, in ms (unrounded). A phase that ran out of time counts until
 * the connection was given up (a connect timeout: the time spent, not 0); one that did not
 * happen is 0.
 */
export function phaseTimings(probe: ConnectionProbe): { connectMs: number; handshakeMs: number } {
  const givenUp = probe.closedAt ?? performance.now();
  const connectedAt = probe.connectedAt ?? (probe.timedOut === 'connect' ? givenUp : undefined);
  const secureAt = probe.secureAt ?? (probe.timedOut === 'handshake' ? givenUp : undefined);
  return {
    connectMs: connectedAt === undefined ? 0 : connectedAt - probe.startedAt,
    handshakeMs: secureAt === undefined || probe.connectedAt === undefined ? 0 : secureAt - probe.connectedAt,
  };
}

/** Error used to destroy a socket whose phase ran out of time. */
export function phaseTimeout(phase: 'connect' | 'handshake', ms: number): SvcnodeError {
  return new SvcnodeError('SVCNODE_TIMEOUT', `${phase === 'connect' ? 'TCP connect' : 'TLS handshake'} did not finish within ${ms} ms`, {
    hint: phase === 'connect' ? 'check that the host is reachable from this machine (firewall, routing, proxy)' : 'the server accepted TCP but did not complete TLS: check that the port speaks TLS and is not overloaded',
  });
}

/**
 * The connect timeout of a connection whose host name had not been looked up yet: no packet went
 * to the backend, so firewalls and routing to it are not the place to look. Lookups run on half of
 * libuv's four threads at most, which names a DNS server does not answer can hold (one each: sharedLookup).
 */
export function lookupTimeout(ms: number): SvcnodeError {
  return new SvcnodeError('SVCNODE_TIMEOUT', `the host name lookup did not finish within ${ms} ms (timeouts.connectMs): no connection was attempted`, {
    hint: 'the DNS server did not answer in time: check the resolver in /etc/resolv.conf and that this machine reaches it (each name it does not answer holds one of the 2 lookup slots of the 4-thread pool, UV_THREADPOOL_SIZE, until the resolver gives up; once a name has not answered, it is not looked up while another such lookup runs, but two new ones at once delay every other lookup of the worker)',
  });
}

/** The certificates of a detailed peer certificate, leaf first, each once (Node links a root to itself). */
export function peerCertificates(cert: DetailedPeerCertificate | PeerCertificate | undefined): X509Certificate[] {
  const out: X509Certificate[] = [];
  let current = cert as DetailedPeerCertificate | undefined;
  const seen = new Set<string>();
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    out.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return out;
}

/** The peer's chain up to, without, its first self-signed certificate: those a CRL can list. */
export function issuedCertificates(cert: DetailedPeerCertificate | PeerCertificate | undefined): X509Certificate[] {
  const all = peerCertificates(cert);
  const top = all.findIndex((c) => c.checkIssued(c));
  return top === -1 ? all : all.slice(0, top);
}

/** Walk a detailed peer certificate into chain entries, leaf first. */
export function chainOf(cert: DetailedPeerCertificate | PeerCertificate | undefined): ChainEntry[] {
  return peerCertificates(cert).map((x, i) => ({
    subject: formatDn(x.subject),
    issuer: formatDn(x.issuer),
    validFrom: new Date(x.validFrom).toISOString(),
    validTo: new Date(x.validTo).toISOString(),
    fingerprint256: x.fingerprint256,
    serialNumber: x.serialNumber,
    ...(i === 0 && x.subjectAltName === undefined ? { noSubjectAltName: true as const } : {}),
  }));
}

function arm(socket: TLSSocket, ms: number, phase: 'connect' | 'handshake', probe: ConnectionProbe): () => void {
  const timer = setTimeout(() => {
    probe.timedOut = phase;
    socket.destroy(phase === 'connect' && probe.lookingUp ? lookupTimeout(ms) : phaseTimeout(phase, ms));
  }, ms);
  timer.unref();
  return () => clearTimeout(timer);
}

/** What an agent remembers across its connections. */
export interface AgentMemo {
  /** The chain of the last full handshake: a resumed session shows no peer certificate. */
  serverChain?: ChainEntry[];
  /** The revocation verdicts of that handshake. */
  revocation?: RevocationCheck[];
  /** Whether that handshake's server asked for a client certificate. */
  certificateRequested?: boolean;
  /** The signature algorithms of that request. */
  sharedSigalgs?: string[];
  /** That handshake's chain, up to its first self-signed certificate: what a resumed session is judged by again. */
  issued?: X509Certificate[];
  /** performance.now() of the last response on any of the agent's connections: the server accepted this identity then. */
  answeredAt?: number;
}

/**
 * Judges a resumed session again: it skips certificate verification, yet what was true of the
 * chain at the full handshake (not revoked, CRLs current) may no longer be. An error ends the
 * connection as a failed verification would.
 */
export type ResumedCheck = (chain: readonly X509Certificate[], probe: ConnectionProbe) => Error | undefined;

/**
 * A TLS 1.2 handshake reached our flight: record what its CertificateRequest allowed. After the
 * first handshake it is a renegotiation; one that asks for a certificate means ours was sent
 * (or, with no usable signature algorithm, could not be) on this connection from now on.
 */
function tls12Handshake(socket: TLSSocket, probe: ConnectionProbe): void {
  const sigalgs = socket.getSharedSigalgs();
  if (probe.secureAt === undefined) {
    probe.sharedSigalgs = sigalgs;
    if (probe.flightAt !== undefined) return;
    // What the server presented and asked for is known now, even if it rejects our certificate
    // before the handshake finishes (TLS 1.2 servers alert before 'secure').
    probe.flightAt = performance.now();
    probe.certificateRequested = sigalgs.length > 0;
    probe.protocol = socket.getProtocol() ?? undefined;
    probe.cipher = socket.getCipher()?.name;
    const peer = socket.getPeerCertificate(true);
    if (peer.raw) probe.serverChain = chainOf(peer);
  } else if (sigalgs.length > 0) {
    probe.sharedSigalgs = sigalgs;
    probe.certificateRequested = true;
  }
}

/**
 * Fail a resumed session as a failed verification fails a full handshake. Node's own 'secure'
 * listener (onConnectSecure, after ours) reads the handle's verifyError and, on an error, destroys
 * the socket before 'secureConnect', so the request is never written; for a resumed session it
 * checks nothing else. Destroying the socket here instead would make that listener throw on the
 * released handle (an uncaught exception).
 */
function refuseResumed(socket: TLSSocket, error: Error): void {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  if (handle && typeof handle.verifyError === 'function') handle.verifyError = () => error;
  else process.nextTick(() => socket.destroy(error));
}

/**
 * Attach a probe to a TLS socket: phase timers and handshake facts. The presented chain is read
 * on 'secure', before Node's own verification can destroy the socket, so a failed handshake
 * still reports what the server sent without a second connection. Pins and subject patterns
 * need no check here on resumed sessions: sessions only come from the same agent, and the pool
 * keys agents by those rules (see AgentPool).
 */
export function instrument(socket: TLSSocket, probe: ConnectionProbe, limits: PhaseLimits, alreadyConnected: boolean, memo: AgentMemo, resumedCheck?: ResumedCheck, host?: string): void {
  probes.set(socket, probe);
  probe.agent = memo;
  let stopHandshakeTimer = (): void => undefined;
  const startHandshake = (): void => {
    probe.connectedAt ??= performance.now();
    stopHandshakeTimer = arm(socket, limits.handshakeMs, 'handshake', probe);
  };
  if (alreadyConnected) {
    startHandshake();
  } else {
    const stopConnectTimer = arm(socket, limits.connectMs, 'connect', probe);
    // Node emits 'lookup' once getaddrinfo answers; an IP address needs none.
    if (host !== undefined && isIP(host) === 0) {
      probe.lookingUp = true;
      socket.once('lookup', () => {
        probe.lookingUp = false;
      });
    }
    socket.once('connect', () => {
      stopConnectTimer();
      startHandshake();
    });
    socket.once('close', stopConnectTimer);
  }
  socket.once('close', () => {
    probe.closedAt ??= performance.now();
    stopHandshakeTimer();
  });
  socket.prependOnceListener('end', () => {
    probe.closedAt ??= performance.now();
  });
  socket.on('keylog', (line: Buffer) => {
    if (!probe.keylog) {
      probe.keylog = true;
      probe.keylogLabel = line.toString('latin1', 0, Math.max(0, line.indexOf(0x20)));
    }
    // One CLIENT_RANDOM line per TLS 1.2 handshake, written once the server's flight (with any
    // CertificateRequest) was read: the only sign Node gives of a renegotiation, or of what a
    // handshake that fails right after our flight asked for.
    if (line[13] === 0x20 && line.toString('latin1', 0, 13) === 'CLIENT_RANDOM') tls12Handshake(socket, probe);
  });
  socket.prependOnceListener('secure', () => {
    probe.secureAt = performance.now();
    probe.protocol = socket.getProtocol() ?? undefined;
    probe.cipher = socket.getCipher()?.name;
    probe.sessionReused = socket.isSessionReused();
    const peer = socket.getPeerCertificate(true);
    if (peer.raw) {
      // A TLS 1.2 handshake's chain was already read when our flight went out.
      if (probe.flightAt === undefined || !probe.serverChain) probe.serverChain = chainOf(peer);
      memo.serverChain = probe.serverChain;
      // OpenSSL computes shared signature algorithms on a client only from a CertificateRequest.
      probe.sharedSigalgs = socket.getSharedSigalgs();
      probe.certificateRequested = probe.sharedSigalgs.length > 0;
      memo.certificateRequested = probe.certificateRequested;
      memo.sharedSigalgs = probe.sharedSigalgs;
      if (resumedCheck) memo.issued = issuedCertificates(peer);
    } else {
      // Sessions are only resumed within one agent, so its last verified chain is the server's.
      probe.serverChain = memo.serverChain ?? [];
      if (memo.certificateRequested !== undefined) probe.certificateRequested = memo.certificateRequested;
      if (memo.sharedSigalgs) probe.sharedSigalgs = memo.sharedSigalgs;
      if (!resumedCheck || !memo.issued) {
        if (memo.revocation) probe.revocation = [...memo.revocation];
        return;
      }
      // The CRL verdict is made again, now; the OCSP verdict of the full handshake stands (no staple comes on resumption).
      const ocsp = memo.revocation?.filter((v) => v.source === 'ocsp') ?? [];
      if (ocsp.length > 0) probe.revocation = [...ocsp];
      const refused = resumedCheck(memo.issued, probe);
      if (refused) refuseResumed(socket, refused);
    }
  });
  socket.once('secureConnect', () => {
    stopHandshakeTimer();
    probe.verified = true;
    if (!probe.sessionReused && probe.revocation) memo.revocation = probe.revocation;
  });
}
