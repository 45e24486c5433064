import http from 'node:http';
import { isIP, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import type { AgentSpec } from './agents.js';
import { chainOf, type ChainEntry } from './probe.js';
import { secureContextFor } from './secure-context.js';

export interface Diagnosis {
  serverChain: ChainEntry[];
  /** OpenSSL's verdict on the chain, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE; undefined when valid. */
  authorizationError?: string;
}

function tunnel(spec: AgentSpec, proxyUrl: string, signal: AbortSignal): Promise<Socket> {
  const proxy = new URL(proxyUrl);
  const target = `${spec.origin.hostname}:${spec.origin.port || 443}`;
  const headers: Record<string, string> = { host: target };
  if (proxy.username || proxy.password) {
    headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const request = http.request({ host: proxy.hostname, port: proxy.port || 80, method: 'CONNECT', path: target, headers, agent: false, signal });
    request.once('connect', (response, socket) => {
      if (response.statusCode === 200) resolve(socket);
      else {
        socket.destroy();
        reject(new Error(`Bad response: ${response.statusCode}`));
      }
    });
    request.once('error', reject);
    request.end();
  });
}

/**
 * A separate diagnostic handshake that records the chain the server presents even when it does
 * not verify. It sends no application data and closes right after the handshake; its result is
 * only reported, never used to send a request.
 */
export async function diagnoseServerChain(spec: AgentSpec, timeoutMs: number): Promise<Diagnosis | undefined> {
  const signal = AbortSignal.timeout(timeoutMs);
  const host = spec.origin.hostname.replace(/^\[|\]$/g, '');
  const servername = spec.servername ?? (isIP(host) === 0 ? host : undefined);
  let socket: TLSSocket | undefined;
  try {
    const raw = spec.proxyUrl ? await tunnel(spec, spec.proxyUrl, signal) : undefined;
    return await new Promise<Diagnosis>((resolve, reject) => {
      const s = connect({
        ...(raw ? { socket: raw } : { host, port: Number(spec.origin.port || 443) }),
        ...(servername ? { servername } : {}),
        secureContext: secureContextFor(spec.profile, spec.minVersion, spec.policy),
        rejectUnauthorized: false,
      });
      socket = s;
      const onAbort = (): void => void s.destroy(new Error('diagnostic handshake timed out'));
      signal.addEventListener('abort', onAbort, { once: true });
      s.once('secureConnect', () => {
        signal.removeEventListener('abort', onAbort);
        const error = s.authorizationError as unknown as Error | string | null;
        const code = error === null ? undefined : typeof error === 'string' ? error : ((error as { code?: string }).code ?? error.message);
        resolve({ serverChain: chainOf(s.getPeerCertificate(true)), ...(code ? { authorizationError: code } : {}) });
      });
      s.once('error', (error: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      });
    });
  } catch {
    return undefined;
  } finally {
    socket?.destroy();
  }
}
