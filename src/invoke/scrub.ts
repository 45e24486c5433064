/**
 * Secrets svcnode itself sent (tokens in headers, a client secret, an assertion) taken out of what
 * a peer echoed back: an API that returns the request's headers, an authorization server whose
 * error_description quotes the request. Results, failure records and Redis never hold them.
 */

/** Shorter values are not secrets worth the false matches. */
const MIN_SECRET_CHARS = 8;
/** With `cutShort`, a secret's first characters from which on a quoted piece of it counts as the secret. */
const CUT_MIN_CHARS = 16;
export const REDACTED = '[redacted]';

/**
 * `value` with every occurrence of each secret replaced, in every string it holds; `value` itself
 * when none occurs. `cutShort`: a peer's text that may quote a secret cut short (an
 * error_description of bounded length) also loses any piece of one from its first 16 characters on.
 * Not for bodies that may hold other tokens of the same shape: every RS256 JWT starts alike.
 */
export function scrubSecrets<T>(value: T, secrets: readonly (string | undefined)[], o: { cutShort?: boolean } = {}): T {
  const known = withEncodings(secrets.filter((s): s is string => typeof s === 'string' && s.length >= MIN_SECRET_CHARS));
  if (known.length === 0 || value === null || value === undefined) return value;
  const sought = (s: string): string => (o.cutShort ? s.slice(0, CUT_MIN_CHARS) : s);
  // One serialisation decides: most Results hold none of them.
  const text = JSON.stringify(value);
  if (!known.some((s) => text.includes(JSON.stringify(sought(s)).slice(1, -1)))) return value;
  return walk(value, o.cutShort ? (t) => known.reduce(withoutPieces, t) : (t) => known.reduce((x, secret) => x.split(secret).join(REDACTED), t)) as T;
}

/** `text` without the secret and without any piece of it that starts as it does (16 characters or more). */
function withoutPieces(text: string, secret: string): string {
  const head = secret.slice(0, CUT_MIN_CHARS);
  let out = '';
  let from = 0;
  for (let at = text.indexOf(head); at !== -1; at = text.indexOf(head, from)) {
    let end = at + head.length;
    while (end - at < secret.length && text[end] === secret[end - at]) end++;
    out += `${text.slice(from, at)}${REDACTED}`;
    from = end;
  }
  return from === 0 ? text : out + text.slice(from);
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
