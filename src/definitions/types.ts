/** Shapes of the public JSON documents (see schemas/). */

export type PassphraseSource = { env: string } | { file: string };

/** A certificate profile document (schemas/cert-profile.schema.json). */
export interface ProfileDocument {
  name?: string;
  client?:
    | { certificate: string; key: string; passphrase?: PassphraseSource }
    | { pkcs12: string; passphrase?: PassphraseSource };
  trust?: { ca?: string[]; systemRoots?: boolean; crl?: string[]; revocation?: { distributionPoints?: boolean; ocsp?: 'off' | 'stapled-if-present' | 'stapled-required'; mode?: 'hard' | 'soft' } };
  policy?: { minKeyBits?: 2048 | 3072 | 4096; expiryWarningDays?: number };
}

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
    maxVersion?: 'TLSv1.2' | 'TLSv1.3';
    ciphers?: string;
    legacyServerConnect?: boolean;
  };
  proxy?: { url: string };
  auth?: { type: 'certificate-session'; tokens: { url: string; header: string; field?: string }[]; ttlSeconds?: number };
  timeouts?: { connectMs?: number; handshakeMs?: number; responseMs?: number; totalMs?: number };
  retry?: { limit?: number; backoffMs?: number; maxBackoffMs?: number; nonIdempotent?: boolean };
  response?: { acceptStatus?: (number | string)[]; maxBodyBytes?: number };
}

/** Job data of an invocation (schemas/invocation.schema.json). */
export interface Invocation {
  nodeId: string;
  context?: Record<string, unknown>;
  requestId?: string;
}
