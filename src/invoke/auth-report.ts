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

/** One login endpoint of a certificate-session node (auth.tokens[], in order). Never holds the token. */
export interface SessionLoginReport {
  /** The endpoint, reported as request.url is (no userinfo, credential-like query values redacted). */
  url: string;
  /** The header the token is sent in. */
  header: string;
  /** The token came from the cache (this process's or, for workers, Redis): no login request was made. */
  cached: boolean;
  /** HTTP status of the login response; null when cached or no answer arrived. */
  status: number | null;
  /** Duration of the login request, connection included; null when cached. */
  ms: number | null;
}

/** The login step of a certificate-session node: each endpoint asked, up to the one that failed. */
export interface SessionAuthReport {
  type: 'certificate-session';
  endpoints: SessionLoginReport[];
}

/** The authentication step of a node, as reported in the Result (`auth`) and by dry-run. */
export type AuthReport = OAuth2AuthReport | SessionAuthReport;
