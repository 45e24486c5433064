/** Shapes of the public JSON documents (see schemas/). */

export type { PassphraseSource, ProfileDocument } from '../pki/types.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

/** A service-node definition (schemas/service-node.schema.json). */
export interface NodeDefinition {
  id: string;
  description?: string;
  request: {
    method: HttpMethod;
    url: string;
    headers?: Record<string, string>;
    query?: Record<string, string | number | boolean>;
    body?: unknown;
    followRedirects?: boolean;
  };
  tls: {
    profile: string;
    servername?: string;
    minVersion?: 'TLSv1.2' | 'TLSv1.3';
    pinnedPublicKeys?: string[];
    serverSubjectPatterns?: string[];
    clientCertHeader?: string;
  };
  /**
   * CONNECT proxy: `http://` or `https://` (TLS to the proxy, verified against `tls.ca`, PEM files
   * resolved against the working directory). `noProxy` lists hosts (`example.com`, `.example.com`,
   * `host:port`, `*`) reached directly.
   */
  proxy?: { url: string; tls?: { ca?: string[] }; noProxy?: string[] };
  auth?: { type: 'certificate-session'; tokens: { url: string; header: string; field?: string }[]; ttlSeconds?: number };
  timeouts?: { connectMs?: number; handshakeMs?: number; responseMs?: number; idleMs?: number; totalMs?: number };
  retry?: { limit?: number; backoffMs?: number; maxBackoffMs?: number; nonIdempotent?: boolean };
  response?: { acceptStatus?: (number | string)[]; maxBodyBytes?: number; maxStoredBodyBytes?: number };
}

/** Job data of an invocation (schemas/invocation.schema.json). */
export interface Invocation {
  nodeId: string;
  context?: Record<string, unknown>;
  requestId?: string;
}
