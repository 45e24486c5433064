import { createHash } from 'node:crypto';
import type { LoadedProfile } from '../pki/types.js';
import type { OAuth2AuthReport as AuthReport } from './auth-report.js';

const thumbprints = new WeakMap<LoadedProfile, string>();

/** base64url SHA-256 of the client certificate's DER: the `x5t#S256` of RFC 8705 §3.1. */
export function certificateThumbprint(profile: LoadedProfile): string | undefined {
  const leaf = profile.client?.leaf;
  if (!leaf) return undefined;
  let t = thumbprints.get(profile);
  if (t === undefined) {
    t = createHash('sha256').update(leaf.raw).digest('base64url');
    thumbprints.set(profile, t);
  }
  return t;
}

/**
 * Whether an access token is bound to our certificate. Clients normally treat tokens as opaque;
 * a JWT with `cnf.x5t#S256` is read (not verified: that is the resource server's job) so a token
 * bound to another certificate is never sent anywhere.
 */
export function tokenBinding(token: string, profile: LoadedProfile): NonNullable<AuthReport['binding']> {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return 'opaque';
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return 'opaque';
  }
  if (claims === null || typeof claims !== 'object') return 'opaque';
  const cnf = (claims as { cnf?: unknown }).cnf;
  const bound = cnf !== null && typeof cnf === 'object' ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  if (bound === undefined) return 'unbound';
  return bound === certificateThumbprint(profile) ? 'checked' : 'mismatch';
}
