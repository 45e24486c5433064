import type { Socket } from 'node:net';
import type { AgentSpec } from './agents.js';
import { authorityHost } from './endpoint.js';
import { openTunnel } from './proxy-connect.js';

/**
 * A raw CONNECT tunnel through the node's proxy, for a probe that writes its own TLS bytes. It is
 * opened exactly as for calls (TLS to an `https://` proxy, proxy.tls.ca, credentials), so the
 * CONNECT never travels in plaintext to an https proxy, and a refusal reads the same.
 */
export function proxyTunnel(spec: AgentSpec & { proxyUrl: string }, host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    openTunnel({ proxyUrl: spec.proxyUrl, keepAlive: false, ...(spec.proxyTls ? { proxyTls: spec.proxyTls } : {}) }, authorityHost(host), port, timeoutMs, (error, socket) => {
      if (error || !socket) reject(error ?? new Error('no tunnel'));
      else resolve(socket);
    });
  });
}
