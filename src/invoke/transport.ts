import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { InvalidInputError, SvcnodeError, TransportError, errorCode, errorMessage } from '../errors.js';
import type { AgentPool, AgentSpec } from '../tls/agents.js';
import { decodedBody } from './decode.js';
import { DEFAULTS } from './defaults.js';
import type { RenderedRequest } from './render.js';
import { targetOf, type RequestTarget } from './request-target.js';
import { reportedUrl } from './result.js';
import { noteKeepAlive } from '../tls/probe.js';

/** How one HTTP exchange is made, beyond the agent. */
export interface CallSettings {
  spec: AgentSpec;
  followRedirects: boolean;
  maxBodyBytes: number;
  responseMs: number;
  idleMs: number;
  totalMs: number;
  /** The request may be sent again when a kept-alive connection closes before any answer (idempotent, or retry.nonIdempotent). */
  replayable: boolean;
}

export interface Sent {
  response: IncomingMessage;
  body: Buffer;
  truncated: boolean;
  /** The redirects followed to this response, in order: the status and the request that followed it. */
  redirects?: Redirect[];
}

/** One redirect followed: its status, and the method and URL (as reported) of the request it led to. */
export interface Redirect {
  status: number;
  method: string;
  url: string;
}

const USER_AGENT = 'svcnode';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** What node:http throws for a header value or URL it will not put on the wire. */
const REFUSED_BY_HTTP = new Set(['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN', 'ERR_UNESCAPED_CHARACTERS', 'ERR_INVALID_URL', 'ERR_HTTP_INVALID_HEADER_VALUE', 'ERR_INVALID_ARG_VALUE']);

interface Attempt {
  method: string;
  target: RequestTarget;
  /** By lowercase name. */
  headers: Record<string, string>;
  /** The definition's spelling of header names, by lowercase name (RenderedRequest.headerNames). */
  names: Readonly<Record<string, string>> | undefined;
  payload: Buffer | undefined;
}

/** How svcnode's own headers are spelt on the wire (as curl spells them). */
const WIRE_NAMES: Readonly<Record<string, string>> = Object.assign(Object.create(null) as Record<string, string>, { 'user-agent': 'User-Agent', 'accept-encoding': 'Accept-Encoding', accept: 'Accept', 'content-type': 'Content-Type', 'content-length': 'Content-Length', authorization: 'Authorization' });

/** The headers as sent: a definition's names as it writes them, svcnode's own as curl spells them, others as they are. */
function onWire(headers: Record<string, string>, names: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) out[names?.[name] ?? WIRE_NAMES[name] ?? name] = headers[name] as string;
  return out;
}

/** Registers how to abort the request in flight (deadline, job cancelled). */
export type BindAbort = (abort: () => void) => void;

/**
 * A raw error of node:http/tls/zlib as our coded error, the raw one kept as cause. TLS and socket
 * errors are classified later by their raw code (SVCNODE_NETWORK carries it); everything the
 * transport itself decides has a code of its own.
 */
function coded(error: unknown, phase: TransportError['phase']): SvcnodeError {
  if (error instanceof SvcnodeError) return error;
  const code = errorCode(error);
  if (code !== undefined && REFUSED_BY_HTTP.has(code)) {
    return new InvalidInputError('SVCNODE_INVALID_REQUEST', `the rendered request cannot be sent: ${errorMessage(error)}`, {
      cause: error,
      field: '/request',
      hint: 'a context value put control characters or an unpaired surrogate into a header or the URL: fix the value in the invocation context',
    });
  }
  // node:http's parser (llhttp) names what it could not parse: the backend does not speak HTTP/1.1 here.
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new TransportError('SVCNODE_BAD_RESPONSE', `the response headers are larger than the 16 KiB node:http reads (${code})`, { cause: error, phase: 'response', hint: 'the backend sends oversized headers (large cookies or SSO context headers): its team must make them smaller' });
  }
  if (code?.startsWith('HPE_')) {
    // Only an answer that does not begin as HTTP says another protocol is on the port; anything
    // later is an HTTP server breaking the syntax (bare LF line ends, folded headers, a space before a colon).
    const notHttp = code === 'HPE_INVALID_CONSTANT' || code === 'HPE_INVALID_VERSION';
    return new TransportError('SVCNODE_BAD_RESPONSE', `the answer is not valid HTTP/1.1: ${errorMessage(error)} (${code})`, {
      cause: error,
      phase: 'response',
      hint: notHttp
        ? 'check the port in the URL: the backend there speaks another protocol over TLS, or its HTTP server is broken; its team must fix a malformed response'
        : 'the backend\'s HTTP server breaks the HTTP/1.1 syntax node:http enforces (e.g. lines ended by LF alone, folded headers, a space before a colon, both Transfer-Encoding and Content-Length): its team must fix the response; `curl -v` shows the raw answer',
    });
  }
  return new TransportError('SVCNODE_NETWORK', errorMessage(error), { cause: error, ...(phase ? { phase } : {}) });
}

/**
 * Send a rendered request on the pooled agent of its (profile, origin, TLS options) with
 * node:https: no retries (the retry policy is ours), redirects only within the origin and only
 * when the node asks, a response-header timeout, a capped and decoded body. node:https rather
 * than an HTTP client library: this is the hot path, and a library's per-request option
 * handling cost about as much CPU as the rest of an invocation (npm run bench).
 */
export function send(rendered: RenderedRequest, settings: CallSettings, agents: AgentPool, bindAbort: BindAbort, onSocket: (s: object) => void, extraHeaders: Record<string, string> = {}): Promise<Sent> {
  const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'gzip, deflate, br', ...rendered.headers, ...extraHeaders };
  const payload = rendered.body ? Buffer.from(rendered.body.payload, 'utf8') : rendered.method === 'GET' || rendered.method === 'HEAD' ? undefined : Buffer.alloc(0);
  if (rendered.body && headers['content-type'] === undefined) headers['content-type'] = rendered.body.contentType;
  const agent = agents.get(settings.spec);
  return exchangeHttp({ method: rendered.method, target: rendered.target ?? targetOf(rendered.url), headers, names: rendered.headerNames, payload }, settings, agent, bindAbort, onSocket, DEFAULTS.maxRedirects);
}

/** The status line and headers that arrived before an exchange failed (its body stalled, broke or did not decode). */
const answeredBefore = new WeakMap<object, { status: number; headers: IncomingMessage['headers'] }>();

/** What the backend had answered when `error` ended the exchange, if headers had arrived. */
export function partialResponse(error: unknown): { status: number; headers: IncomingMessage['headers'] } | undefined {
  return typeof error === 'object' && error !== null ? answeredBefore.get(error) : undefined;
}

function exchangeHttp(a: Attempt, settings: CallSettings, agent: https.Agent, bindAbort: BindAbort, onSocket: (s: object) => void, redirectsLeft: number): Promise<Sent> {
  const headers = a.payload === undefined ? a.headers : { ...a.headers, 'content-length': String(a.payload.length) };
  return new Promise<Sent>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let headersIn = false;
    let answered: IncomingMessage | undefined;
    /** A coded body's decoder chain: destroyed with the exchange, or its zlib stages inflate on after the Result. */
    let decoder: Readable | undefined;
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      decoder?.destroy();
      const failed = coded(error, headersIn ? 'response' : undefined);
      if (answered) answeredBefore.set(failed, { status: answered.statusCode ?? 0, headers: answered.headers });
      reject(failed);
    };
    let req: ReturnType<typeof https.request>;
    try {
      // Options rather than a URL: node:https would turn a URL back into these on every request.
      const { hostname, port, path } = a.target;
      req = https.request({ protocol: 'https:', hostname, ...(port === '' ? {} : { port: Number(port) }), path, method: a.method, headers: onWire(headers, a.names), agent });
    } catch (error) {
      fail(error);
      return;
    }
    /**
     * One timer at a time (response, then idle), cleared on every outcome and never keeping the
     * process alive. The idle timer reuses the response timer when their durations are equal (the
     * defaults are): one timer object per request instead of two.
     */
    let armedMs = -1;
    let timeoutError: () => SvcnodeError;
    const arm = (ms: number, error: () => SvcnodeError): void => {
      timeoutError = error;
      if (timer !== undefined && armedMs === ms) {
        timer.refresh();
        return;
      }
      clearTimeout(timer);
      armedMs = ms;
      timer = setTimeout(() => stop(timeoutError()), ms);
      timer.unref();
    };
    // Settled here too: a request node:http already destroyed (an upgrade it did not expect) emits nothing more.
    const stop = (error: SvcnodeError): void => {
      req.destroy(error);
      fail(error);
    };
    bindAbort(() => stop(new TransportError('SVCNODE_ABORTED', 'the call was aborted')));
    req.on('socket', onSocket);
    // A 101 to a request that asked for no upgrade: without this listener node:http drops the socket and says nothing.
    req.on('upgrade', (response: IncomingMessage, socket: { destroy(): void }) => {
      socket.destroy();
      headersIn = true;
      answered = response;
      const to = typeof response.headers.upgrade === 'string' ? ` to "${response.headers.upgrade.slice(0, 64)}"` : '';
      fail(new TransportError('SVCNODE_BAD_RESPONSE', `the backend answered ${response.statusCode ?? 101} Switching Protocols${to} to a plain HTTP request`, { phase: 'response', hint: 'the URL names an endpoint that speaks another protocol (a WebSocket endpoint, or a gateway that upgrades every request): check the path and port in request.url' }));
    });
    // Whatever else ends the request without an error or a response must not leave the call hanging.
    req.on('close', () => {
      if (!settled && !headersIn) fail(new TransportError('SVCNODE_CONNECTION_CLOSED', 'the connection closed before any response arrived', { hint: 'the backend (or a load balancer in front of it) closed the connection without answering: check its logs' }));
    });
    // The response timer runs from the request being sent until headers arrive, whichever comes first:
    // a backend may answer before a large upload ends.
    req.on('finish', () => {
      if (!headersIn && !settled) arm(settings.responseMs, () => new TransportError('SVCNODE_RESPONSE_TIMEOUT', `no response within ${settings.responseMs} ms after the request was sent`, { phase: 'request', hint: 'the backend accepted the request but did not answer in time: check its health or raise timeouts.responseMs' }));
    });
    req.on('error', (error: Error) => {
      // Bytes after a complete answer (more than its Content-Length) read as a malformed next
      // answer: this one stands, as curl keeps it, and node:http does not reuse the connection.
      if (answered?.complete && errorCode(error)?.startsWith('HPE_')) return;
      fail(error);
    });
    req.on('response', (response) => {
      // The response timer keeps running until readBody re-arms it as the idle timer.
      headersIn = true;
      answered = response;
      const keepAlive = response.headers['keep-alive'];
      if (typeof keepAlive === 'string') noteKeepAlive(response.socket, keepAlive);
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (settings.followRedirects && REDIRECTS.has(status) && location !== undefined) {
        response.resume();
        let next: URL;
        try {
          next = new URL(location, a.target.href);
        } catch (error) {
          // Uncut: the Result scrubs the secrets the request carried from the whole text, and bounds it when stored.
          fail(new TransportError('SVCNODE_BAD_REDIRECT', `the ${status} redirect's Location "${reportedUrl(location)}" is not a URL`, { cause: error, phase: 'response', hint: 'the backend sends a broken Location header: its team must fix it' }));
          return;
        }
        if (next.origin !== a.target.origin) {
          fail(new InvalidInputError('SVCNODE_CROSS_ORIGIN_REDIRECT', `redirect from ${a.target.origin} to ${next.origin} refused: the client certificate is never sent to another origin`, { field: '/request/url', hint: 'call the target origin with its own node definition' }));
          return;
        }
        if (redirectsLeft === 0) {
          fail(new TransportError('SVCNODE_TOO_MANY_REDIRECTS', `more than ${DEFAULTS.maxRedirects} redirects (last: ${status} to ${next.pathname})`, { phase: 'response', hint: 'the backend redirects in a loop: fix its redirect rules or call the final URL directly' }));
          return;
        }
        // 303 makes any method but HEAD a GET (RFC 9110 15.4.4); 301 and 302 do so only for POST, as browsers and curl do.
        const toGet = (status === 303 && a.method !== 'HEAD') || ((status === 301 || status === 302) && a.method === 'POST');
        const nextHeaders = { ...a.headers };
        if (toGet) delete nextHeaders['content-type'];
        const method = toGet ? 'GET' : a.method;
        const hop = { status, method, url: reportedUrl(next) };
        // The redirect's own body is read to its end first: its connection then goes back to the
        // pool (node:http frees it a tick after 'end') and carries the next request (same origin).
        arm(settings.idleMs, () => new TransportError('SVCNODE_IDLE_TIMEOUT', `the body of the ${status} redirect paused for more than ${settings.idleMs} ms`, { phase: 'response', hint: 'the backend stalled while sending its redirect: check its health or raise timeouts.idleMs' }));
        response.on('end', () =>
          process.nextTick(() => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            exchangeHttp({ method, target: targetOf(next), headers: nextHeaders, names: a.names, payload: toGet ? undefined : a.payload }, settings, agent, bindAbort, onSocket, redirectsLeft - 1).then((sent) => resolve({ ...sent, redirects: [hop, ...(sent.redirects ?? [])] }), reject);
          }),
        );
        response.on('error', fail);
        response.on('close', () => {
          if (!response.complete) fail(new TransportError('SVCNODE_CONNECTION_CLOSED', `the connection closed before the body of the ${status} redirect ended`, { phase: 'response', hint: 'the backend (or a proxy or load balancer in front of it) broke off its answer: check its logs; an idempotent request is retried' }));
        });
        return;
      }
      decoder = readBody(response, a.method, settings, arm, () => timer?.refresh(), fail, (sent) => {
        settled = true;
        clearTimeout(timer);
        resolve(sent);
      });
    });
    req.end(a.payload);
  });
}

/**
 * Read the decoded body up to maxBodyBytes; every pause between chunks is bounded by idleMs.
 * Returns the decoder chain of a coded body, for the exchange to destroy when it fails.
 */
function readBody(response: IncomingMessage, method: string, settings: CallSettings, arm: (ms: number, error: () => SvcnodeError) => void, refresh: () => void, fail: (error: unknown) => void, done: (sent: Sent) => void): Readable | undefined {
  let body;
  try {
    body = decodedBody(response, method);
  } catch (error) {
    response.destroy();
    fail(error);
    return undefined;
  }
  arm(settings.idleMs, () => new TransportError('SVCNODE_IDLE_TIMEOUT', `the response body paused for more than ${settings.idleMs} ms`, { phase: 'response', hint: 'the backend stalled while sending its answer: check its health or raise timeouts.idleMs' }));
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const decoding = body !== response;
  // One idle timer per response, restarted per chunk received (no new timer object on the hot
  // path): a compressed body's bytes count as they arrive, not as they decode.
  if (decoding) response.on('data', refresh);
  body.on('data', (chunk: Buffer) => {
    if (finished) return;
    if (!decoding) refresh();
    size += chunk.length;
    if (size <= settings.maxBodyBytes) {
      chunks.push(chunk);
      return;
    }
    finished = true;
    chunks.push(chunk.subarray(0, chunk.length - (size - settings.maxBodyBytes)));
    done({ response, body: Buffer.concat(chunks), truncated: true });
    response.destroy();
    // A bomb's stages would go on inflating what they hold into nothing.
    if (decoding) body.destroy();
  });
  body.on('end', () => {
    if (finished) return;
    finished = true;
    done({ response, body: Buffer.concat(chunks), truncated: false });
  });
  if (decoding) {
    body.on('error', (error: Error) => {
      if (finished) return;
      finished = true;
      response.destroy();
      fail(new TransportError('SVCNODE_DECODE_FAILED', `the response body does not decode as its Content-Encoding "${response.headers['content-encoding'] ?? ''}" says: ${errorMessage(error)}`, { cause: error, phase: 'response', hint: 'the backend sent a corrupt compressed body: its team must fix the compression' }));
    });
  }
  const brokenOff = (): TransportError => {
    const announced = response.headers['content-length'];
    const read = decoding ? `${size} decoded bytes` : `${size}${announced === undefined ? '' : ` of the ${announced} announced`} bytes`;
    return new TransportError('SVCNODE_CONNECTION_CLOSED', `the connection closed before the response body ended (after ${read})`, {
      phase: 'response',
      hint: 'the backend (or a proxy or load balancer in front of it) broke off its answer: check its logs; an idempotent request is retried',
    });
  };
  response.on('error', (error: Error) => {
    if (finished) return;
    // node:http's "aborted" (ECONNRESET) for a body cut short says nothing of what was cut.
    fail(errorMessage(error) === 'aborted' ? brokenOff() : error);
  });
  response.on('close', () => {
    // Closed before the body ended (reset, abort) and no error surfaced: do not hang.
    if (!finished && !response.complete) fail(brokenOff());
  });
  return decoding ? body : undefined;
}
