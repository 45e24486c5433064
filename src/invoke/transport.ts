import type { IncomingMessage } from 'node:http';
import got, { type OptionsInit } from 'got';
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

/**
 * Send a rendered request on the agent of its (profile, origin, TLS options) with got: no got
 * retries (the retry policy is ours), no redirects to another origin, a capped body.
 */
export function send(rendered: RenderedRequest, settings: CallSettings, agents: AgentPool, signal: AbortSignal, onSocket: (s: object) => void, extraHeaders: Record<string, string> = {}): Promise<Sent> {
  const origin = rendered.url.origin;
  const headers: Record<string, string> = { ...rendered.headers, ...extraHeaders };
  if (rendered.body && headers['content-type'] === undefined) headers['content-type'] = rendered.body.contentType;
  const options: OptionsInit = {
    method: rendered.method,
    headers,
    ...(rendered.method === 'GET' || rendered.method === 'HEAD' ? {} : { body: rendered.body?.payload ?? '' }),
    agent: { https: agents.get(settings.spec) },
    http2: false,
    retry: { limit: 0 },
    throwHttpErrors: false,
    followRedirect: settings.followRedirects,
    maxRedirects: DEFAULTS.maxRedirects,
    timeout: { response: settings.responseMs },
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
  const maxBody = settings.maxBodyBytes;
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
