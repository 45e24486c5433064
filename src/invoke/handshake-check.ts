import type https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { NodeDefinition } from '../definitions/types.js';
import { classifyError } from '../failures/classify.js';
import type { LoadedProfile } from '../pki/types.js';
import type { AgentSpec } from '../tls/agents.js';
import { chainListed, probeCertificateRequest } from '../tls/certificate-request.js';
import { phaseTimings, probeOf, type ConnectionProbe } from '../tls/probe.js';
import { DEFAULTS } from './defaults.js';
import { classifyContext, round, tlsReport, withRevokedVerdict } from './exchange.js';
import { clientDateFailure, withClientDates, type InvokeDeps } from './execute.js';
import { emptyResult } from './failed-result.js';
import { renderRequest } from './render.js';
import { reportedUrl, type Failure, type Result, type TlsReport } from './result.js';
import { callSettings } from './settings.js';
import { tlsEndpoint } from '../tls/endpoint.js';

/** What a handshake-only check adds to the Result. */
export interface HandshakeFacts {
  /** Always true: the check sends no HTTP request (`response` is null). */
  tlsOnly: true;
  /**
   * The server sent a CertificateRequest. Read from the TLS socket (signature algorithms are only
   * shared with a server that asks for a certificate) or from the TLS 1.2 probe; null when unknown.
   */
  clientCertificateRequested: boolean | null;
  /** CAs the server named in its CertificateRequest (empty: it named none); null when not known. */
  acceptableCAs: string[] | null;
  /** Where `acceptableCAs` came from, or why they are missing. */
  acceptableCAsSource: string;
  /** Time spent after the handshake waiting for a TLS 1.3 server's verdict on our certificate. */
  verdictWaitMs: number;
  /**
   * Whether the issuer of our client certificate (or a CA certificate sent with it) is among
   * `acceptableCAs`; null when either is unknown. False: the server will most likely refuse it,
   * even if the handshake passed (nginx judges at the HTTP layer).
   */
  clientIssuerListed: boolean | null;
}

export type HandshakeResult = Result & { handshake: HandshakeFacts };

export interface HandshakeDeps extends InvokeDeps {
  /** Sees every TLS socket of the check (the key log hooks in here). */
  onSocket?: (socket: TLSSocket) => void;
}

type Callback = (error: Error | null, stream?: Duplex) => void;
type CreateConnection = (options: https.RequestOptions, callback: Callback) => Duplex | null | undefined;

/** Open one connection on the node's pooled agent (direct or through its proxy), with its probe, without an HTTP request. */
function openConnection(agent: https.Agent, spec: AgentSpec): Promise<TLSSocket> {
  const { host, port } = tlsEndpoint(spec.origin);
  const options = { ...agent.options, host, port };
  return new Promise((resolve, reject) => {
    const create = (agent as unknown as { createConnection: CreateConnection }).createConnection.bind(agent);
    const created = create(options, (error, stream) => (error ? reject(error) : resolve(stream as TLSSocket)));
    if (created) resolve(created as TLSSocket);
  });
}

interface Outcome {
  socket?: TLSSocket;
  error?: unknown;
  requested: boolean | null;
  waitedMs: number;
}

/** Handshake; under TLS 1.3 with a certificate request, wait for an alert or a close. */
async function handshake(agent: https.Agent, spec: AgentSpec, onSocket: HandshakeDeps['onSocket']): Promise<Outcome> {
  let socket: TLSSocket;
  try {
    socket = await openConnection(agent, spec);
  } catch (error) {
    return { error, requested: null, waitedMs: 0 };
  }
  onSocket?.(socket);
  const s = socket;
  return new Promise<Outcome>((resolve) => {
    let requested: boolean | null = null;
    let waitingSince = 0;
    const done = (error?: unknown): void => {
      resolve({ socket: s, error, requested, waitedMs: waitingSince ? round(performance.now() - waitingSince) : 0 });
    };
    // on, not once: a late second error after the verdict must not become an uncaught exception.
    s.on('error', done);
    const closedEarly = (): void => done(Object.assign(new Error('the server closed the connection during the TLS handshake'), { code: 'ECONNRESET' }));
    s.once('close', closedEarly);
    s.once('secureConnect', () => {
      // OpenSSL computes shared signature algorithms on a client only from a CertificateRequest.
      requested = s.getSharedSigalgs().length > 0;
      if (s.getProtocol() !== 'TLSv1.3' || !requested) return done();
      waitingSince = performance.now();
      const closed = (): void => done(Object.assign(new Error('the server closed the connection right after the TLS 1.3 handshake'), { code: 'ECONNRESET' }));
      s.once('end', closed);
      s.off('close', closedEarly);
      s.once('close', closed);
      setTimeout(() => done(), DEFAULTS.tlsOnlyVerdictMs).unref();
    });
  });
}

/** The TLS report of the check: no client certificate was sent when the server asked for none. */
function handshakeReport(probe: ConnectionProbe | undefined, profile: LoadedProfile, requested: boolean | null): TlsReport | null {
  const report = tlsReport(probe, false, profile);
  return report && requested === false ? { ...report, clientCertificate: null } : report;
}

/**
 * `dry-run --tls-only`: the node's connection (pooled agent, SecureContext, proxy, identity
 * rules, timeouts) up to the end of the TLS handshake, plus a TLS 1.3 server's verdict on our
 * certificate, classified like any call. Sends no application byte. Never throws.
 */
export async function checkHandshake(node: NodeDefinition, context: Record<string, unknown>, deps: HandshakeDeps): Promise<HandshakeResult> {
  const started = performance.now();
  const facts: HandshakeFacts = { tlsOnly: true, clientCertificateRequested: null, acceptableCAs: null, acceptableCAsSource: 'not probed', verdictWaitMs: 0, clientIssuerListed: null };
  const result: HandshakeResult = { ...emptyResult(node.id, { method: node.request.method, url: reportedUrl(node.request.url) }), handshake: facts };
  const finish = (failure: Failure | null): HandshakeResult => {
    result.failure = failure;
    result.ok = failure === null;
    result.timings.totalMs = round(performance.now() - started);
    return result;
  };

  let profile: LoadedProfile;
  let url: URL;
  try {
    // Only the origin is needed, and it is never templated: a missing context variable does not stop the check.
    try {
      url = renderRequest(node, context).url;
      result.request.url = reportedUrl(url);
    } catch {
      url = new URL(node.request.url);
    }
    profile = await deps.profile(node.tls.profile);
  } catch (error) {
    return finish(classifyError(error, { host: '', profileName: node.tls.profile, clientSubject: undefined, probe: undefined, proxy: false }));
  }
  const expired = clientDateFailure(profile, deps.now?.() ?? new Date());
  if (expired) return finish(expired);

  const settings = callSettings(node, profile, url.origin, true);
  const outcome = await handshake(deps.agents.get(settings.spec), settings.spec, deps.onSocket);
  const probe = probeOf(outcome.socket);
  outcome.socket?.end();
  outcome.socket?.destroy();
  facts.verdictWaitMs = outcome.waitedMs;
  facts.clientCertificateRequested = outcome.requested;
  if (probe) {
    const times = phaseTimings(probe);
    result.timings = { ...result.timings, connectMs: round(times.connectMs), handshakeMs: round(times.handshakeMs) };
  }
  result.tls = handshakeReport(probe, profile, outcome.requested);

  let failure: Failure | null = null;
  if (outcome.error !== undefined) {
    // The chain the server presented was read from this same connection before Node rejected it.
    const ctx = classifyContext(url.host, profile, probe, settings.spec.proxyUrl !== undefined, settings.spec);
    failure = withClientDates(classifyError(outcome.error, ctx), profile, deps.now?.() ?? new Date());
    // As a call reports it: a connection that stood and then timed out or broke failed in TLS.
    if ((failure.category === 'timeout' || failure.category === 'connect_failed') && failure.phase === 'connect' && probe?.connectedAt !== undefined) failure = { ...failure, phase: 'tls' };
    result.tls = withRevokedVerdict(result.tls, failure, ctx.crls);
  }
  // Which CAs the server accepts matters when it asked for a certificate or refused ours.
  if (outcome.requested === true || (failure !== null && failure.category.startsWith('client_cert'))) {
    const request = await probeCertificateRequest(settings.spec, DEFAULTS.diagnosticTimeoutMs);
    if (request.outcome === 'requested') {
      facts.acceptableCAs = request.caNames;
      if (profile.client) facts.clientIssuerListed = await chainListed(request.caNamesDer, [profile.client.leaf, ...profile.client.chain]);
      facts.clientCertificateRequested ??= true;
      facts.acceptableCAsSource = 'from the CertificateRequest of a TLS 1.2 probe that sent only a ClientHello: Node exposes no CA list, and TLS 1.3 sends it encrypted';
    } else if (request.outcome === 'not_requested') {
      facts.acceptableCAsSource = 'a TLS 1.2 probe handshake got no CertificateRequest (the server may ask only under TLS 1.3)';
    } else {
      facts.acceptableCAsSource = `not available: ${request.reason} (Node exposes no CA list, and TLS 1.3 sends it encrypted)`;
    }
  }
  return finish(failure);
}
