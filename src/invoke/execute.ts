import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import got, { type OptionsInit } from 'got';
import { InvalidInputError } from '../errors.js';
import type { NodeDefinition } from '../definitions/types.js';
import { classifyError, classifyHttpStatus, type ClassifyContext } from '../failures/classify.js';
import { FAILURE_CATEGORIES } from '../failures/categories.js';
import type { LoadedProfile } from '../pki/types.js';
import { AgentPool, type AgentSpec } from '../tls/agents.js';
import { diagnoseServerChain } from '../tls/diagnose.js';
import { formatDn } from '../tls/identity.js';
import { probeOf, type ConnectionProbe } from '../tls/probe.js';
import { DEFAULTS } from './defaults.js';
import { renderRequest, type RenderedRequest } from './render.js';
import type { Failure, Result, ResponseReport, TlsReport } from './result.js';

/** What a call needs from its host process (dry-run CLI or worker). */
export interface InvokeDeps {
  /** Resolve a profile by name; throws InvalidInputError when it is unknown or failed to load. */
  profile(name: string): LoadedProfile;
  agents: AgentPool;
  /** Clock for certificate date checks. */
  now?: () => Date;
}

export interface InvokeOptions {
  /** Aborts the call (job cancelled, worker shutting down). */
  signal?: AbortSignal;
  requestId?: string;
  /** 1-based number of this attempt, reported in the Result. */
  attempt?: number;
}

interface Sent {
  response: IncomingMessage;
  body: Buffer;
  truncated: boolean;
}

function statusAccepted(status: number, accept: readonly (number | string)[]): boolean {
  return accept.some((a) => (typeof a === 'number' ? a === status : a[0] === String(status)[0]));
}

function parseBody(body: Buffer, contentType: string | undefined, truncated: boolean): unknown {
  if (body.length === 0) return null;
  const text = body.toString('utf8');
  if (!truncated && contentType && /[/+]json\b/i.test(contentType)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** Send the rendered request on the node's agent; resolves with the (capped) body. */
function send(rendered: RenderedRequest, node: NodeDefinition, spec: AgentSpec, agents: AgentPool, signal: AbortSignal, onSocket: (s: object) => void, extraHeaders: Record<string, string>): Promise<Sent> {
  const maxBody = node.response?.maxBodyBytes ?? DEFAULTS.response.maxBodyBytes;
  const origin = rendered.url.origin;
  const agent = agents.get(spec);
  const headers: Record<string, string> = { ...rendered.headers, ...extraHeaders };
  if (rendered.body && headers['content-type'] === undefined) headers['content-type'] = rendered.body.contentType;
  const options: OptionsInit = {
    method: rendered.method,
    headers,
    ...(rendered.method === 'GET' || rendered.method === 'HEAD' ? {} : { body: rendered.body?.payload ?? '' }),
    agent: { https: agent },
    http2: false,
    retry: { limit: 0 },
    throwHttpErrors: false,
    followRedirect: node.request.followRedirects ?? false,
    maxRedirects: DEFAULTS.maxRedirects,
    timeout: { response: node.timeouts?.responseMs ?? DEFAULTS.timeouts.responseMs },
    signal,
    hooks: {
      beforeRedirect: [
        (next) => {
          const target = next.url instanceof URL ? next.url.origin : new URL(String(next.url)).origin;
          if (target !== origin) {
            throw new InvalidInputError('SVCNODE_CROSS_ORIGIN_REDIRECT', `redirect from ${origin} to ${target} refused: the client certificate is never sent to another origin`, {
              field: '/request/url',
              hint: 'call the target origin with its own node definition',
            });
          }
        },
      ],
    },
  };
  return new Promise<Sent>((resolve, reject) => {
    const stream = got.stream(rendered.url, options as OptionsInit & { isStream?: true });
    const chunks: Buffer[] = [];
    let size = 0;
    let response: IncomingMessage | undefined;
    stream.on('request', (req: { on(e: 'socket', l: (s: object) => void): void }) => req.on('socket', onSocket));
    stream.on('response', (r: IncomingMessage) => {
      response = r;
    });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBody) {
        chunks.push(chunk);
        return;
      }
      chunks.push(chunk.subarray(0, chunk.length - (size - maxBody)));
      resolve({ response: response as IncomingMessage, body: Buffer.concat(chunks), truncated: true });
      stream.destroy();
    });
    stream.on('end', () => resolve({ response: response as IncomingMessage, body: Buffer.concat(chunks), truncated: false }));
    stream.on('error', reject);
  });
}

function clientCertificate(profile: LoadedProfile): TlsReport['clientCertificate'] {
  const leaf = profile.client?.leaf;
  return leaf ? { subject: formatDn(leaf.subject), fingerprint256: leaf.fingerprint256 } : null;
}

function tlsReport(probe: ConnectionProbe | undefined, reused: boolean, profile: LoadedProfile): TlsReport | null {
  if (!probe?.secureAt) return null;
  return {
    protocol: probe.protocol ?? null,
    cipher: probe.cipher ?? null,
    sessionReused: probe.sessionReused,
    connectionReused: reused,
    serverChain: probe.serverChain ?? [],
    clientCertificate: clientCertificate(profile),
  };
}

/** Refuse to present a client certificate outside its validity period. */
function clientDateFailure(profile: LoadedProfile, now: Date): Failure | undefined {
  const leaf = profile.client?.leaf;
  if (!leaf) return undefined;
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  if (now >= from && now <= to) return undefined;
  const expired = now > to;
  return {
    phase: 'tls',
    category: 'client_cert_expired',
    code: expired ? 'SVCNODE_CLIENT_CERT_EXPIRED' : 'SVCNODE_CLIENT_CERT_NOT_YET_VALID',
    message: `client certificate "${formatDn(leaf.subject)}" of profile "${profile.name}" is ${expired ? `expired since ${to.toISOString()}` : `not valid before ${from.toISOString()}`}; it was not presented`,
    hint: expired ? `renew the client certificate and replace it in ${profile.file}` : 'check this machine\'s clock, or wait until the certificate becomes valid',
  };
}

/**
 * THE execution path of a service node, shared by dry-run and worker: render, check, call over
 * mutual TLS, classify, report. Never throws: every outcome is a Result.
 */
export async function invoke(node: NodeDefinition, context: Record<string, unknown>, deps: InvokeDeps, options: InvokeOptions = {}): Promise<Result> {
  const started = performance.now();
  const result: Result = {
    ok: false,
    nodeId: node.id,
    ...(options.requestId === undefined ? {} : { requestId: options.requestId }),
    request: { method: node.request.method, url: node.request.url },
    tls: null,
    response: null,
    failure: null,
    timings: { connectMs: 0, handshakeMs: 0, totalMs: 0 },
    attempts: options.attempt ?? 1,
  };
  const finish = (failure: Failure | null): Result => {
    result.failure = failure;
    result.ok = failure === null;
    result.timings.totalMs = round(performance.now() - started);
    return result;
  };

  let rendered: RenderedRequest;
  let profile: LoadedProfile;
  try {
    rendered = renderRequest(node, context);
    result.request.url = rendered.url.href;
    profile = deps.profile(node.tls.profile);
  } catch (error) {
    return finish(classifyError(error, { host: '', profileName: node.tls.profile, clientSubject: undefined, probe: undefined, proxy: false }));
  }
  const expired = clientDateFailure(profile, deps.now?.() ?? new Date());
  if (expired) return finish(expired);

  const spec: AgentSpec = {
    profile,
    origin: new URL(rendered.url.origin),
    ...(node.tls.servername ? { servername: node.tls.servername } : {}),
    ...(node.tls.minVersion ? { minVersion: node.tls.minVersion } : {}),
    rules: {
      ...(node.tls.pinnedPublicKeys ? { pinnedPublicKeys: node.tls.pinnedPublicKeys } : {}),
      ...(node.tls.serverSubjectPatterns ? { serverSubjectPatterns: node.tls.serverSubjectPatterns } : {}),
    },
    ...(node.proxy ? { proxyUrl: node.proxy.url } : {}),
    limits: {
      connectMs: node.timeouts?.connectMs ?? DEFAULTS.timeouts.connectMs,
      handshakeMs: node.timeouts?.handshakeMs ?? DEFAULTS.timeouts.handshakeMs,
    },
  };
  const extraHeaders: Record<string, string> = {};
  if (node.tls.clientCertHeader && profile.client) {
    extraHeaders[node.tls.clientCertHeader.toLowerCase()] = encodeURIComponent(profile.client.leaf.toString());
  }

  let probe: ConnectionProbe | undefined;
  let reused = false;
  const onSocket = (socket: object): void => {
    probe = probeOf(socket);
    reused = probe?.secureAt !== undefined;
  };
  const deadline = AbortSignal.timeout(node.timeouts?.totalMs ?? DEFAULTS.timeouts.totalMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  const ctx = (): ClassifyContext => ({
    host: rendered.url.host,
    profileName: profile.name,
    clientSubject: profile.client ? formatDn(profile.client.leaf.subject) : undefined,
    probe,
    proxy: spec.proxyUrl !== undefined,
  });

  let sent: Sent | undefined;
  let error: unknown;
  try {
    sent = await send(rendered, node, spec, deps.agents, signal, onSocket, extraHeaders);
  } catch (e) {
    error = e;
  }
  const usedProbe = probe;
  if (usedProbe && !reused) {
    if (usedProbe.connectedAt !== undefined) result.timings.connectMs = round(usedProbe.connectedAt - usedProbe.startedAt);
    if (usedProbe.secureAt !== undefined && usedProbe.connectedAt !== undefined) result.timings.handshakeMs = round(usedProbe.secureAt - usedProbe.connectedAt);
  }
  result.tls = tlsReport(usedProbe, reused, profile);

  if (sent) {
    if (usedProbe) usedProbe.responses++;
    const { response, body, truncated } = sent;
    const report: ResponseReport = {
      status: response.statusCode ?? 0,
      headers: response.headers as Record<string, string | string[]>,
      body: parseBody(body, response.headers['content-type'], truncated),
      ...(truncated ? { truncated: true } : {}),
    };
    result.response = report;
    const accept = node.response?.acceptStatus ?? DEFAULTS.response.acceptStatus;
    return finish(statusAccepted(report.status, accept) ? null : classifyHttpStatus(report.status, body.toString('utf8', 0, 4096), ctx()));
  }

  if (options.signal?.aborted && !deadline.aborted) {
    return finish({ phase: 'http', category: 'timeout', code: 'ERR_ABORTED', message: 'the call was cancelled before it finished', hint: 'the worker was shutting down or the job was cancelled; it is safe to retry idempotent requests' });
  }
  const classifyCtx = ctx();
  if (deadline.aborted && !usedProbe?.timedOut) {
    const failure = classifyError(new DOMException('deadline', 'TimeoutError'), classifyCtx);
    failure.message = `${rendered.url.host}: no complete answer within timeouts.totalMs (${node.timeouts?.totalMs ?? DEFAULTS.timeouts.totalMs} ms)`;
    return finish(withPhase(failure, usedProbe));
  }
  let failure = classifyError(error, classifyCtx);
  if (failure.category.startsWith('server_')) {
    const diagnosis = await diagnoseServerChain(spec, DEFAULTS.diagnosticTimeoutMs);
    if (diagnosis) {
      failure = classifyError(error, { ...classifyCtx, diagnosticChain: diagnosis.serverChain });
      result.tls = {
        protocol: null,
        cipher: null,
        sessionReused: false,
        connectionReused: false,
        serverChain: diagnosis.serverChain,
        clientCertificate: clientCertificate(profile),
      };
    }
  }
  return finish(withPhase(failure, usedProbe));
}

/** Network failures and timeouts say how far the call got: connect, tls, or http (request sent). */
function withPhase(failure: Failure, probe: ConnectionProbe | undefined): Failure {
  if (failure.category !== 'connect_failed' && failure.category !== 'timeout') return failure;
  const phase = probe?.secureAt !== undefined ? 'http' : probe?.connectedAt !== undefined ? 'tls' : FAILURE_CATEGORIES[failure.category].phase;
  return { ...failure, phase };
}
