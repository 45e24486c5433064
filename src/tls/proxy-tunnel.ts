import type http from 'node:http';
import type { Socket } from 'node:net';
import { HttpProxyAgent, type HttpsProxyAgentOptions } from 'hpagent';
import type { AgentSpec } from './agents.js';
import { authorityHost, proxyLocation } from './endpoint.js';
import { proxyError } from './proxy-error.js';

type CreateConnection = (options: http.ClientRequestArgs, callback: (error: Error | null, socket?: Socket | null) => void) => void;

/**
 * A raw CONNECT tunnel through the node's proxy, for a probe that writes its own TLS bytes. hpagent
 * opens it exactly as for calls (TLS to an `https://` proxy, proxy.tls.ca, credentials), so the
 * CONNECT never travels in plaintext to an https proxy.
 */
export function proxyTunnel(spec: AgentSpec & { proxyUrl: string }, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const agent = new HttpProxyAgent({
    proxy: proxyLocation(spec.proxyUrl) as unknown as URL,
    ...(spec.proxyTls ? { proxyRequestOptions: { secureContext: spec.proxyTls.context } as unknown as HttpsProxyAgentOptions['proxyRequestOptions'] } : {}),
  });
  const create = (agent as unknown as { createConnection: CreateConnection }).createConnection;
  return new Promise((resolve, reject) => {
    create.call(agent, { host: authorityHost(host), port, timeout: timeoutMs }, (error, socket) => {
      if (error || !socket) reject(proxyError(error ?? new Error('no tunnel'), spec.proxyUrl, timeoutMs));
      else resolve(socket);
    });
  });
}
