/** Shapes of the public JSON documents (see schemas/). */

import type { PassphraseSource } from '../pki/types.js';

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
    maxVersion?: 'TLSv1.2' | 'TLSv1.3';
    ciphers?: string;
    legacyServerConnect?: boolean;
  };
  /**
   * CONNECT proxy: `http://` or `https://` (TLS to the proxy, verified against `tls.ca`, PEM files
   * resolved against the working directory). `noProxy` lists hosts (`example.com`, `.example.com`,
   * `host:port`, CIDR blocks for IP-address URLs, `*`) reached directly.
   */
  proxy?: { url: string; tls?: { ca?: string[] }; noProxy?: string[] };
  auth?: CertificateSessionAuth | OAuth2ClientCredentialsAuth;
  timeouts?: { connectMs?: number; handshakeMs?: number; responseMs?: number; idleMs?: number; totalMs?: number; keepAliveMs?: number };
  retry?: { limit?: number; backoffMs?: number; maxBackoffMs?: number; nonIdempotent?: boolean };
  response?: { acceptStatus?: (number | string)[]; maxBodyBytes?: number; maxStoredBodyBytes?: number };
}

export interface CertificateSessionAuth {
  type: 'certificate-session';
  tokens: { url: string; header: string; field?: string }[];
  ttlSeconds?: number;
}

/** How an OAuth 2.0 client authenticates at the token endpoint (RFC 8705, RFC 7523, RFC 6749). */
export type OAuth2ClientAuth = 'tls_client_auth' | 'self_signed_tls_client_auth' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

/** OAuth 2.0 client credentials over mutual TLS: `tokenUrl`, or `issuer` for discovery. */
export interface OAuth2ClientCredentialsAuth {
  type: 'oauth2-client-credentials';
  tokenUrl?: string;
  issuer?: string;
  clientId: string;
  clientAuth: OAuth2ClientAuth;
  clientSecret?: PassphraseSource;
  scope?: string;
  params?: Record<string, string>;
  /** Certificate-session fields, absent here (lets code read `node.auth?.tokens` on either kind). */
  tokens?: never;
  ttlSeconds?: never;
}

/** Job data of an invocation (schemas/invocation.schema.json). */
export interface Invocation {
  nodeId: string;
  context?: Record<string, unknown>;
  requestId?: string;
}
