import type { OAuth2ClientAuth } from '../definitions/types.js';

/**
 * The token step of an OAuth 2.0 node, as reported in the Result and by dry-run. Never holds
 * the token, the client secret or the assertion: `token` is always the literal "[redacted]".
 */
export interface AuthReport {
  type: 'oauth2-client-credentials';
  tokenEndpoint: string;
  /** Where the endpoint came from: the definition, or discovery (its mTLS alias or plain token_endpoint). */
  endpointSource: 'tokenUrl' | 'mtls_endpoint_aliases' | 'token_endpoint';
  clientAuth: OAuth2ClientAuth;
  /** HTTP status of the token response; null when the token came from the cache or no answer arrived. */
  status: number | null;
  cached: boolean;
  /** Seconds the token has left, as the token endpoint said (less the time it was cached). */
  expiresIn: number | null;
  /** `checked`: cnf.x5t#S256 equals our certificate; `mismatch`: refused; `unbound`: a JWT without cnf; `opaque`: not a JWT. */
  binding: 'checked' | 'mismatch' | 'unbound' | 'opaque' | null;
  token: '[redacted]' | null;
}
