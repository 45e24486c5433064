import type { OAuth2ClientAuth } from '../definitions/types.js';

/**
 * The token step of an OAuth 2.0 node, as reported in the Result and by dry-run. Never holds
 * the token, the client secret or the assertion: `token` is always the literal "[redacted]".
 */
export interface OAuth2AuthReport {
  type: 'oauth2-client-credentials';
  /** The token endpoint; null when discovery failed before naming one. */
  tokenEndpoint: string | null;
  /**
   * Where the endpoint came from: the definition, or discovery (its mTLS alias or plain
   * token_endpoint); `discovery` when the metadata fetch itself failed (no token request was made).
   */
  endpointSource: 'tokenUrl' | 'mtls_endpoint_aliases' | 'token_endpoint' | 'discovery';
  /** The authorization server metadata URL (issuer nodes): the one the endpoint was read from, or whose fetch failed. */
  metadataUrl?: string;
  clientAuth: OAuth2ClientAuth;
  /**
   * HTTP status of the token response (of the metadata response when discovery failed); null when
   * the token came from the cache or no answer arrived.
   */
  status: number | null;
  cached: boolean;
  /** Seconds the token has left, as the token endpoint said (less the time it was cached). */
  expiresIn: number | null;
  /** `checked`: cnf.x5t#S256 equals our certificate; `mismatch`: refused; `unbound`: a JWT without cnf; `opaque`: not a JWT. */
  binding: 'checked' | 'mismatch' | 'unbound' | 'opaque' | null;
  token: '[redacted]' | null;
}

/** The authentication step of a node, as reported in the Result (`auth`) and by dry-run. */
export type AuthReport = OAuth2AuthReport;
