/**
 * Secrets svcnode itself sent (tokens in headers, a client secret, an assertion) taken out of what
 * a peer echoed back: an API that returns the request's headers, an authorization server whose
 * error_description quotes the request. Results, failure records and Redis never hold them.
 */
import { isUtf8 } from 'node:buffer';
import { withoutRuns } from '../secret-runs.js';

/** Shorter values are not secrets worth the false matches. */
export const MIN_SECRET_CHARS = 8;
/** With `cutShort`, a run of a secret's characters this long is redacted (half of a shorter secret, at least 8). */
const PIECE_MAX_CHARS = 16;
export const REDACTED = '[redacted]';

/** With `cutShort`, longer secrets are matched whole only: looking for pieces costs the text's length times the secret's. */
const PIECED_SECRET_MAX_CHARS = 8_192;

/**
 * `value` with every occurrence of each secret replaced, in every string it holds; `value` itself
 * when none occurs. `cutShort`: a peer's text that may quote a secret in pieces (an
 * error_description of bounded length, one part of a JWT, the start of a password, a message
 * that cut what it quotes) also loses every run of PIECE_MAX_CHARS characters of one (half of a
 * shorter secret, at least 8).
 * Not for bodies that may hold other tokens of the same shape: every RS256 JWT starts alike.
 */
export function scrubSecrets<T>(value: T, secrets: readonly (string | undefined)[], o: { cutShort?: boolean } = {}): T {
  const known = withEncodings(secrets.filter((s): s is string => typeof s === 'string' && s.length >= MIN_SECRET_CHARS));
  if (known.length === 0 || value === null || value === undefined) return value;
  // A peer's error text is short and rare: looked at whole. Results are looked at once, serialised: most hold no secret.
  if (o.cutShort) return walk(value, (t) => known.reduce((x, secret) => (secret.length <= PIECED_SECRET_MAX_CHARS ? withoutPieces(x, secret) : x.split(secret).join(REDACTED)), t)) as T;
  const text = JSON.stringify(value);
  if (!known.some((s) => text.includes(JSON.stringify(s).slice(1, -1)))) return value;
  return walk(value, (t) => known.reduce((x, secret) => x.split(secret).join(REDACTED), t)) as T;
}

/** `text` without any run of the secret's characters as long as a piece (see PIECE_MAX_CHARS), each run replaced whole. */
function withoutPieces(text: string, secret: string): string {
  return withoutRuns(text, secret, Math.min(PIECE_MAX_CHARS, Math.max(MIN_SECRET_CHARS, Math.ceil(secret.length / 2))), REDACTED);
}

/**
 * The secrets a credential header of a request carries: its value; for an Authorization-like
 * header the credentials after the scheme too, and for Basic the decoded `user:password` and the
 * password; for a Cookie header each cookie's value. A backend that echoes any of them must not
 * get it into a Result.
 */
export function headerSecrets(name: string, value: string): string[] {
  const out = [value];
  if (/authoriz/i.test(name)) {
    const [, scheme, credentials] = /^\s*([\w!#$%&'*+.^`|~-]+)\s+(\S.*?)\s*$/.exec(value) ?? [];
    if (scheme === undefined || credentials === undefined) return out;
    out.push(credentials);
    const decoded = scheme.toLowerCase() === 'basic' ? Buffer.from(credentials, 'base64') : undefined;
    const pair = decoded && isUtf8(decoded) ? decoded.toString('utf8') : '';
    if (pair.includes(':')) out.push(pair, pair.slice(pair.indexOf(':') + 1));
  } else if (/cookie/i.test(name)) {
    for (const cookie of value.split(';')) {
      const eq = cookie.indexOf('=');
      if (eq !== -1) out.push(cookie.slice(eq + 1).trim());
    }
  }
  return out;
}

/**
 * Each secret as written and as a peer may echo it: percent-encoded (a URL or query string it
 * quotes) and form-encoded (a request body it quotes), longest first so that a shorter form
 * never cuts a longer one in half.
 */
function withEncodings(secrets: readonly string[]): string[] {
  const all = new Set<string>();
  for (const secret of secrets) {
    all.add(secret);
    all.add(encodeURIComponent(secret));
    all.add(new URLSearchParams({ s: secret }).toString().slice(2));
  }
  return [...all].sort((a, b) => b.length - a.length);
}

function walk(value: unknown, scrub: (text: string) => string): unknown {
  if (typeof value === 'string') return scrub(value);
  if (Array.isArray(value)) return value.map((v) => walk(v, scrub));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [walk(k, scrub) as string, walk(v, scrub)]));
  return value;
}
