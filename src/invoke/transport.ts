import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { InvalidInputError } from '../errors.js';
import type { AgentPool, AgentSpec } from '../tls/agents.js';
import { DEFAULTS } from './defaults.js';
import type { RenderedRequest } from './render.js';

/** How one HTTP exchange is made, beyond the agent. */
export interface CallSettings {
  spec: AgentSpec;
  followRedirects: boolean;
  maxBodyBytes: number;
  responseMs: number;
  totalMs: number;
}

export interface Sent {
  response: IncomingMessage;
  body: Buffer;
  truncated: boolean;
}

const USER_AGENT = 'svcnode';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Error raised when the response headers do not arrive within `responseMs` after the request was sent. */
function responseTimeout(ms: number): Error {
  return Object.assign(new Error(`no response within ${ms} ms after the request was sent`), { code: 'ETIMEDOUT' });
}

/** The body stream, decoded per Content-Encoding. */
function decoded(response: IncomingMessage): Readable {
  switch (response.headers['content-encoding']) {
    case 'gzip':
    case 'x-gzip':
      return response.pipe(zlib.createGunzip());
    case 'deflate':
      return response.pipe(zlib.createInflate());
    case 'br':
      return response.pipe(zlib.createBrotliDecompress());
    default:
      return response;
  }
}

interface Attempt {
  method: string;
  url: URL;
  headers: Record<string, string>;
  payload: Buffer | undefined;
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
  return exchangeHttp({ method: rendered.method, url: rendered.url, headers, payload }, settings, agent, bindAbort, onSocket, DEFAULTS.maxRedirects);
}

/** Registers how to abort the request in flight (deadline, job cancelled). */
export type BindAbort = (abort: () => void) => void;

function exchangeHttp(a: Attempt, settings: CallSettings, agent: https.Agent, bindAbort: BindAbort, onSocket: (s: object) => void, redirectsLeft: number): Promise<Sent> {
  const headers = a.payload === undefined ? a.headers : { ...a.headers, 'content-length': String(a.payload.length) };
  return new Promise<Sent>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    const req = https.request(a.url, { method: a.method, headers, agent });
    bindAbort(() => req.destroy(Object.assign(new Error('the call was aborted'), { code: 'ABORT_ERR' })));
    req.on('socket', onSocket);
    req.on('finish', () => {
      timer = setTimeout(() => req.destroy(responseTimeout(settings.responseMs)), settings.responseMs);
    });
    req.on('error', fail);
    req.on('response', (response) => {
      clearTimeout(timer);
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (settings.followRedirects && REDIRECTS.has(status) && location !== undefined) {
        response.resume();
        const next = new URL(location, a.url);
        if (next.origin !== a.url.origin) {
          fail(new InvalidInputError('SVCNODE_CROSS_ORIGIN_REDIRECT', `redirect from ${a.url.origin} to ${next.origin} refused: the client certificate is never sent to another origin`, { field: '/request/url', hint: 'call the target origin with its own node definition' }));
          return;
        }
        if (redirectsLeft === 0) {
          fail(Object.assign(new Error(`more than ${DEFAULTS.maxRedirects} redirects`), { code: 'ERR_TOO_MANY_REDIRECTS' }));
          return;
        }
        const toGet = status === 303 || ((status === 301 || status === 302) && a.method === 'POST');
        const nextHeaders = { ...a.headers };
        if (toGet) delete nextHeaders['content-type'];
        exchangeHttp({ method: toGet ? 'GET' : a.method, url: next, headers: nextHeaders, payload: toGet ? undefined : a.payload }, settings, agent, bindAbort, onSocket, redirectsLeft - 1).then(resolve, reject);
        return;
      }
      const body = decoded(response);
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      body.on('data', (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        if (size <= settings.maxBodyBytes) {
          chunks.push(chunk);
          return;
        }
        done = true;
        chunks.push(chunk.subarray(0, chunk.length - (size - settings.maxBodyBytes)));
        resolve({ response, body: Buffer.concat(chunks), truncated: true });
        response.destroy();
      });
      body.on('end', () => {
        done = true;
        resolve({ response, body: Buffer.concat(chunks), truncated: false });
      });
      body.on('error', (error: Error) => {
        if (!done) fail(error);
      });
      response.on('error', (error: Error) => {
        if (!done) fail(error);
      });
      response.on('close', () => {
        // Closed before the body ended (reset, abort) and no error surfaced: do not hang.
        if (!done && !response.complete) fail(Object.assign(new Error('the connection closed before the response body ended'), { code: 'ECONNRESET' }));
      });
    });
    req.end(a.payload);
  });
}
