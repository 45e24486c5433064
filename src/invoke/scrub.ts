/**
 * Secrets svcnode itself sent (tokens in headers, a client secret, an assertion) taken out of what
 * a peer echoed back: an API that returns the request's headers, an authorization server whose
 * error_description quotes the request. Results, failure records and Redis never hold them.
 */

/** Shorter values are not secrets worth the false matches. */
const MIN_SECRET_CHARS = 8;
export const REDACTED = '[redacted]';

/** `value` with every occurrence of each secret replaced, in every string it holds; `value` itself when none occurs. */
export function scrubSecrets<T>(value: T, secrets: readonly (string | undefined)[]): T {
  const known = withEncodings(secrets.filter((s): s is string => typeof s === 'string' && s.length >= MIN_SECRET_CHARS));
  if (known.length === 0 || value === null || value === undefined) return value;
  // One serialisation decides: most Results hold none of them.
  const text = JSON.stringify(value);
  if (!known.some((s) => text.includes(JSON.stringify(s).slice(1, -1)))) return value;
  return walk(value, known) as T;
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

function walk(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return secrets.reduce((text, secret) => text.split(secret).join(REDACTED), value);
  if (Array.isArray(value)) return value.map((v) => walk(v, secrets));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [walk(k, secrets) as string, walk(v, secrets)]));
  return value;
}
