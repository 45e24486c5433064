import { isUtf8 } from 'node:buffer';
import type { IncomingHttpHeaders } from 'node:http';
import type { Failure } from '../failures/failure.js';
import type { Redirect } from './transport.js';
import type { ChainEntry } from '../tls/probe.js';
import type { RevocationCheck } from '../tls/revocation.js';
import type { AuthReport } from './auth-report.js';
import { DEFAULTS } from './defaults.js';
import { MIN_SECRET_CHARS, REDACTED } from './scrub.js';

export type { Failure };

export interface TlsReport {
  protocol: string | null;
  cipher: string | null;
  sessionReused: boolean;
  /** The call ran on a kept-alive connection: no handshake at all. */
  connectionReused: boolean;
  serverChain: ChainEntry[];
  clientCertificate: { subject: string; fingerprint256: string } | null;
  /** Revocation verdicts of the handshake, when a revocation policy applies (stored Results keep only the warnings). */
  revocation?: Omit<RevocationCheck, 'profile'>[];
}

export interface ResponseReport {
  status: number;
  headers: Record<string, string | string[]>;
  /** Parsed JSON when the content type says so, else text in its declared charset (base64 when not text in it, UTF-8 when none); null for an empty body. */
  body: unknown;
  /** `base64` when the body is not text in its declared charset (UTF-8 when none). */
  bodyEncoding?: 'base64';
  /** The body is not whole: cut at response.maxBodyBytes on receipt, or at response.maxStoredBodyBytes when stored. */
  truncated?: boolean;
  /** The stored Result holds no body (response.maxStoredBodyBytes is 0, or the Result's bound left no room). */
  bodyOmitted?: boolean;
}

/**
 * The wait an authentication endpoint asked for (its `Retry-After`, in ms from when it answered).
 * The Result never reports that endpoint's response, so the retry policy finds the wait here: a
 * symbol key, which object spreads copy and JSON leaves out.
 */
export const AUTH_RETRY_AFTER: unique symbol = Symbol('svcnode.authRetryAfterMs');

/** The Result contract: dry-run output, job return value, `enqueue --wait` output. */
export interface Result {
  ok: boolean;
  nodeId: string;
  requestId?: string;
  request: {
    method: string;
    url: string;
    /** Redirects followed (request.followRedirects), in order: each status and the request it led to; the response is the last one's. */
    redirects?: Redirect[];
    /** Times the request was sent again on a new connection because a kept-alive one closed under it unanswered (idempotent methods only). */
    resent?: number;
  };
  tls: TlsReport | null;
  response: ResponseReport | null;
  failure: Failure | null;
  timings: { connectMs: number; handshakeMs: number; totalMs: number };
  /** Attempts made for this invocation (1 when not retried). */
  attempts: number;
  /**
   * Times the stall check returned this job to the queue before this run (a worker died, or lost
   * its job lock, mid-call): the backend may have had the invocation before. Absent when 0.
   */
  stalled?: number;
  /** The authentication step: an OAuth 2.0 node's token step (token redacted), a certificate-session node's logins (tokens never shown). */
  auth?: AuthReport;
  [AUTH_RETRY_AFTER]?: number;
}

/**
 * The URL as reported: never with user:password@, never with the value of a credential-like
 * parameter (query, fragment or `;` path parameter), nor with one that equals any of `secrets`
 * (what the call sent: tokens, keys), as written or percent-decoded.
 */
export function reportedUrl(url: URL | string, secrets: readonly string[] = []): string {
  return withoutParamSecrets(withoutUserinfo(url), secrets);
}

function withoutUserinfo(url: URL | string): string {
  if (typeof url === 'string') {
    if (!url.includes('@')) return url;
    try {
      return withoutUserinfo(new URL(url));
    } catch {
      return url.replace(/\/\/[^/?#]*@/, '//');
    }
  }
  if (url.username === '' && url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

/** Names of parameters that carry credentials (`access_token`, `client_secret`, `X-Amz-Signature`, `api_key`, `jsessionid`, `sig`). */
const SENSITIVE_PARAM = /token|secret|session|passw|pwd|(?:^|[-_.])pass(?:$|[-_.])|api[-_]?key|credential|signature|^sig$|^key$/i;
const MAYBE_SENSITIVE = /token|secret|session|pass|pwd|key|credential|sig/i;

/** `href` with the values of credential parameters redacted: `;name=value` in the path, `name=value` in the query and fragment (split at `&` and `;`). */
function withoutParamSecrets(href: string, secrets: readonly string[]): string {
  const start = href.search(/[;?#]/);
  if (start === -1) return href;
  const sent = secrets.length === 0 ? secrets : secrets.filter((s) => s.length >= MIN_SECRET_CHARS);
  if (sent.length === 0 && !MAYBE_SENSITIVE.test(href.slice(start))) return href;
  const hash = href.indexOf('#');
  const query = href.indexOf('?');
  const queryAt = query !== -1 && (hash === -1 || query < hash) ? query : -1;
  const pathEnd = queryAt !== -1 ? queryAt : hash !== -1 ? hash : href.length;
  const path = href.slice(0, pathEnd).replace(/;([^;/=]*)=([^;/]*)/g, (all, name: string, value: string) => (redacts(name, value, sent) ? `;${name}=${REDACTED}` : all));
  const queryText = queryAt === -1 ? '' : `?${withoutPairSecrets(href.slice(queryAt + 1, hash === -1 ? href.length : hash), sent)}`;
  const fragment = hash === -1 ? '' : `#${withoutPairSecrets(href.slice(hash + 1), sent)}`;
  return `${path}${queryText}${fragment}`;
}

function withoutPairSecrets(params: string, sent: readonly string[]): string {
  return params
    .split(/([&;])/)
    .map((pair, i) => {
      if (i % 2 === 1) return pair;
      const eq = pair.indexOf('=');
      if (eq === -1) return sent.length > 0 && equalsSent(pair, sent) ? REDACTED : pair;
      return eq > 0 && redacts(pair.slice(0, eq), pair.slice(eq + 1), sent) ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
    })
    .join('');
}

function redacts(name: string, value: string, sent: readonly string[]): boolean {
  return SENSITIVE_PARAM.test(decoded(name)) || (sent.length > 0 && equalsSent(value, sent));
}

/** Whether `value` is one of `sent` as written, percent-decoded, or form-decoded (`+` as a space). */
function equalsSent(value: string, sent: readonly string[]): boolean {
  const plain = decoded(value, false);
  const form = decoded(value);
  return sent.some((s) => s === value || s === plain || s === form);
}

function decoded(text: string, form = true): string {
  try {
    return decodeURIComponent(form ? text.replace(/\+/g, ' ') : text);
  } catch {
    return text;
  }
}

/** Response headers that describe our socket, not the answer: never kept. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);
/**
 * Names of headers that carry credentials, in a response or a request: cookies, authorization,
 * tokens, keys, passwords, signatures (`_` as `-`: `x-api_key`).
 */
const CREDENTIAL_HEADER = /cookie|authoriz|authentication-info|token|secret|session|passw|pwd|(?:^|[-_])pass(?:$|[-_])|api[-_]?key|(?:^|[-_])key(?:$|[-_])|credential|signature|csrf|xsrf/i;

/** The first value of a response header (node:http gives arrays for repeated ones). */
export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The response headers a Result keeps: all but the credential and hop-by-hop ones, URLs in them without credentials. */
export function keptHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || credentialHeader(name)) continue;
    // A redirect target or a linked URL may carry credentials of its own (userinfo, a token in the query).
    const urls = URL_HEADERS.get(name);
    kept[name] = urls === undefined ? value : typeof value === 'string' ? urls(value) : value.map(urls);
  }
  return kept;
}

/** Headers that hold URLs, and how each loses its credentials. */
const URL_HEADERS: ReadonlyMap<string, (value: string) => string> = new Map<string, (value: string) => string>([
  ['location', (value) => reportedUrl(value)],
  ['content-location', (value) => reportedUrl(value)],
  // RFC 8288: `<uri>; rel=…`, several separated by commas.
  ['link', (value) => value.replace(/<([^>]*)>/g, (_, uri: string) => `<${reportedUrl(uri)}>`)],
  // `5; url=https://…` (quoted or not), as browsers read it.
  ['refresh', (value) => value.replace(/(\burl\s*=\s*['"]?)([^'"]*)/i, (_, head: string, uri: string) => `${head}${reportedUrl(uri)}`)],
]);

/** Verdicts per header name: backends send the same few names on every response. */
const verdicts = new Map<string, boolean>();

/** Whether a header of this name (lowercase) carries credentials: dropped from Results, its value secret when sent. */
export function credentialHeader(name: string): boolean {
  let verdict = verdicts.get(name);
  if (verdict === undefined) {
    verdict = CREDENTIAL_HEADER.test(name);
    if (verdicts.size >= 512) verdicts.clear();
    verdicts.set(name, verdict);
  }
  return verdict;
}

/** A buffer without the incomplete UTF-8 sequence a cut may have left at its end. */
function withoutCutCharacter(body: Buffer): Buffer {
  for (let i = body.length - 1, seen = 0; i >= 0 && seen < 4; i--, seen++) {
    const byte = body[i] as number;
    if ((byte & 0xc0) !== 0x80) {
      const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
      return seen + 1 < need ? body.subarray(0, i) : body;
    }
  }
  return body;
}

/** UTF-8 bytes of the JSON text each parsed body came from (a bound on its re-serialisation). */
const sourceBytes = new WeakMap<object, number>();

/** Charsets other than UTF-8 declared by content types with parameters (null: none, UTF-8, or one TextDecoder does not know). */
const charsets = new Map<string, string | null>();

/** The WHATWG name of the charset a content type declares, when it is not UTF-8. */
function foreignCharset(contentType: string): string | null {
  // Most content types carry no parameter: no lookup, no regex.
  if (!contentType.includes(';')) return null;
  let charset = charsets.get(contentType);
  if (charset === undefined) {
    const label = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType)?.[1];
    charset = null;
    try {
      const encoding = label === undefined ? 'utf-8' : new TextDecoder(label).encoding;
      if (encoding !== 'utf-8') charset = encoding;
    } catch {
      // An unknown charset: the body is read as UTF-8 (or base64), as without one.
    }
    if (charsets.size >= 512) charsets.clear();
    charsets.set(contentType, charset);
  }
  return charset;
}

/**
 * windows-1252 at bytes 0x80–0x9F (the ISO-8859-1 and US-ASCII labels mean it too, as in
 * browsers): TextDecoder in Node 20.18.3 and later reads them as Latin-1 (nodejs/node#60888).
 */
const WINDOWS_1252_C1 = '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/** Text of `body` in `charset`; throws when the bytes are not of it. `truncated`: a character the cut split is left out. */
function decodedAs(body: Buffer, charset: string, truncated: boolean): string {
  if (charset === 'windows-1252') return body.toString('latin1').replace(/[\x80-\x9f]/g, (c) => WINDOWS_1252_C1[c.charCodeAt(0) - 0x80] as string);
  // fatal: bytes foreign to the charset make base64, not U+FFFD; stream: a cut character is left out.
  return new TextDecoder(charset, { fatal: true }).decode(body, { stream: truncated });
}

function base64(body: Buffer): Pick<ResponseReport, 'body' | 'bodyEncoding'> {
  return { body: body.toString('base64'), bodyEncoding: 'base64' };
}

/** Decoded text as a Result holds it: parsed when the content type says JSON and it parses (`utf8Bytes`: its size as UTF-8, when known). */
function textBody(text: string, utf8Bytes: number | undefined, contentType: string | undefined, truncated: boolean): Pick<ResponseReport, 'body'> {
  if (!truncated && contentType && /[/+]json\b/i.test(contentType)) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed !== null && typeof parsed === 'object') sourceBytes.set(parsed, utf8Bytes ?? Buffer.byteLength(text));
      return { body: parsed };
    } catch {
      return { body: text };
    }
  }
  return { body: text };
}

/**
 * The body of a response as a Result holds it: text in its declared charset (UTF-8 when none),
 * parsed when the content type says JSON, without a byte-order mark; else base64.
 */
export function responseBody(body: Buffer, contentType: string | undefined, truncated: boolean): Pick<ResponseReport, 'body' | 'bodyEncoding'> {
  if (body.length === 0) return { body: null };
  const charset = contentType === undefined ? null : foreignCharset(contentType);
  if (charset !== null) {
    let text: string;
    try {
      text = decodedAs(body, charset, truncated);
    } catch {
      return base64(body);
    }
    return textBody(text, undefined, contentType, truncated);
  }
  let text = truncated ? withoutCutCharacter(body) : body;
  if (!isUtf8(text)) return base64(body);
  // A UTF-8 byte-order mark (Windows tools write one) is no part of the text, and JSON.parse refuses it.
  if (text[0] === 0xef && text[1] === 0xbb && text[2] === 0xbf) text = text.subarray(3);
  return textBody(text.toString('utf8'), text.length, contentType, truncated);
}

/**
 * An upper bound on the bytes of `value` as JSON, without serialising it: 6 bytes a character
 * (`\u0000`), 24 a number. Counts every field, so a field added to the Result later is counted too.
 */
function jsonBound(value: unknown): number {
  if (typeof value === 'string') return value.length * 6 + 2;
  if (typeof value === 'number') return 24;
  if (value === null || typeof value !== 'object') return 5;
  let n = 2;
  if (Array.isArray(value)) {
    for (const v of value as unknown[]) n += jsonBound(v) + 1;
    return n;
  }
  for (const key in value) n += key.length * 6 + 4 + jsonBound((value as Record<string, unknown>)[key]);
  return n;
}

/** jsonBound of a Result but its body and headers, which boundedBody and boundedHeaders bound. */
function boundBesideBody(r: Result): number {
  return jsonBound(r.response ? { ...r, response: { ...r.response, body: null, headers: null } } : r);
}

/** The authentication report with its URLs cut: four login endpoints at most (the schema's limit), each like a redirect's. */
function storedAuth(auth: AuthReport, chars: number): AuthReport {
  if (auth.type === 'certificate-session') return { ...auth, endpoints: auth.endpoints.slice(0, 4).map((e) => ({ ...e, url: cut(e.url, chars), header: cut(e.header, chars) })) };
  return { ...auth, ...(auth.tokenEndpoint === null ? {} : { tokenEndpoint: cut(auth.tokenEndpoint, chars) }), ...(auth.metadataUrl === undefined ? {} : { metadataUrl: cut(auth.metadataUrl, chars) }) };
}

/** Bytes a Result may hold beyond its body: headers, chain, messages, timings. */
export const STORED_RESULT_OVERHEAD_BYTES = 16_384;
const HEADER_BUDGET_BYTES = 8_192;
const TEXT_BUDGET_CHARS = 1_024;
/** Each followed redirect's URL is cut shorter: up to DEFAULTS.maxRedirects of them. */
const HOP_URL_CHARS = 256;

/** Bytes of `JSON.stringify(text)`, or the number of chars of `text` whose JSON fits `limit` bytes. */
function jsonChars(text: string, limit: number): { bytes: number; fits: number } {
  let bytes = 2;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let cost: number;
    if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) cost = 2;
    else if (c < 0x20) cost = 6;
    else if (c < 0x80) cost = 1;
    else if (c < 0x800) cost = 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      if (bytes + 4 > limit) return { bytes, fits: i };
      bytes += 4;
      i++;
      continue;
    } else if (c >= 0xd800 && c <= 0xdfff) cost = 6;
    else cost = 3;
    if (bytes + cost > limit) return { bytes, fits: i };
    bytes += cost;
  }
  return { bytes, fits: text.length };
}

function cut(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, chars)}…`;
}

/** The body cut to at most `limit` bytes of JSON. */
function boundedBody(response: ResponseReport, limit: number): ResponseReport {
  if (response.body === null || response.body === undefined) return response;
  if (limit <= 0) return { ...response, body: null, bodyOmitted: true };
  // Re-serialised JSON grows only in numbers, by at most 6× ("1e20" becomes 21 digits): a small
  // source proves the bound without serialising the body again.
  const source = response.body !== null && typeof response.body === 'object' ? sourceBytes.get(response.body) : undefined;
  if (source !== undefined && source * 6 <= limit) return response;
  const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
  const { fits } = jsonChars(text, limit);
  if (fits === text.length) {
    // A parsed JSON value is kept as parsed when its text fits.
    return response;
  }
  const keep = response.bodyEncoding === 'base64' ? fits - (fits % 4) : fits;
  return { ...response, body: text.slice(0, keep), truncated: true };
}

function boundedHeaders(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  // Header texts are at most 6 bytes per char as JSON: short header sets need no measuring.
  let chars = 0;
  for (const name in headers) {
    const value = headers[name] as string | string[];
    chars += name.length + 6 + (typeof value === 'string' ? value.length : value.reduce((n, v) => n + v.length + 3, 2));
  }
  if (chars * 6 + 2 <= HEADER_BUDGET_BYTES) return headers;
  const out: Record<string, string | string[]> = {};
  let bytes = 2;
  for (const [name, value] of Object.entries(headers)) {
    bytes += Buffer.byteLength(JSON.stringify(name)) + Buffer.byteLength(JSON.stringify(value)) + 2;
    if (bytes > HEADER_BUDGET_BYTES) break;
    out[name] = value;
  }
  return out;
}

/** Verdicts a connection can have: one per source (CRL, OCSP); more would be hostile input. */
const MAX_STORED_VERDICTS = 4;
/** Verdict texts are cut shorter than others when the bound is at stake: 4 × 2 × 129 × 6 bytes ≈ 6 KiB at most. */
const VERDICT_TEXT_CHARS = 128;

/** The revocation verdicts a stored Result keeps: on success only the warnings (not `ok`), and none when there are none. */
function storedVerdicts(tls: TlsReport, ok: boolean): TlsReport {
  const { revocation, ...rest } = tls;
  const kept = (revocation ?? []).filter((v) => !ok || v.result !== 'ok').slice(0, MAX_STORED_VERDICTS);
  return kept.length > 0 ? { ...rest, revocation: kept } : rest;
}

/**
 * The Result as a worker stores it (job return value, and the copy in the queue's events
 * stream): the body within `maxStoredBodyBytes` of JSON, headers within 8 KiB, and on success
 * no server chain (`serverChain: []`) and only the revocation warnings (at most 4 verdicts). The whole document stays under
 * `maxStoredBodyBytes + STORED_RESULT_OVERHEAD_BYTES`, whatever it holds; dry-run reports stay complete.
 */
export function storedResult(result: Result, node: { response?: { maxStoredBodyBytes?: number } }): Result {
  const maxStoredBodyBytes = node.response?.maxStoredBodyBytes ?? DEFAULTS.response.maxStoredBodyBytes;
  const stored: Result = { ...result };
  // Lean on success: the chain is diagnostics, kept in failures, failure records and dry-run reports.
  if (stored.tls && result.ok && stored.tls.serverChain.length > 0) stored.tls = { ...stored.tls, serverChain: [] };
  if (stored.tls?.revocation) stored.tls = storedVerdicts(stored.tls, result.ok);
  if (stored.response) stored.response = boundedBody({ ...stored.response, headers: boundedHeaders(stored.response.headers) }, maxStoredBodyBytes);
  // Room is left for what the processor adds afterwards (`stalled`).
  const bound = Math.max(maxStoredBodyBytes, 0) + STORED_RESULT_OVERHEAD_BYTES - LATER_FIELDS_BYTES;
  const fits = (r: Result): boolean => Buffer.byteLength(JSON.stringify(r)) <= bound;
  // The common case needs no serialisation to prove the bound: short texts, few chain entries.
  if (boundBesideBody(stored) + HEADER_BUDGET_BYTES <= STORED_RESULT_OVERHEAD_BYTES - LATER_FIELDS_BYTES) return stored;
  if (fits(stored)) return stored;
  // Hostile sizes elsewhere (a huge chain, long subjects, messages or a discovered endpoint): keep the facts, cut the text.
  const short = (t: string): string => cut(t, TEXT_BUDGET_CHARS);
  if (stored.tls) {
    stored.tls = {
      ...stored.tls,
      serverChain: stored.tls.serverChain.slice(0, 4).map((e) => ({ ...e, subject: short(e.subject), issuer: short(e.issuer) })),
      clientCertificate: stored.tls.clientCertificate ? { ...stored.tls.clientCertificate, subject: short(stored.tls.clientCertificate.subject) } : null,
      ...(stored.tls.revocation ? { revocation: stored.tls.revocation.map((v) => ({ ...v, ...(v.subject ? { subject: cut(v.subject, VERDICT_TEXT_CHARS) } : {}), ...(v.message ? { message: cut(v.message, VERDICT_TEXT_CHARS) } : {}) })) } : {}),
    };
  }
  if (stored.failure) stored.failure = { ...stored.failure, message: short(stored.failure.message), hint: short(stored.failure.hint) };
  stored.request = { ...stored.request, url: short(stored.request.url), ...(stored.request.redirects ? { redirects: stored.request.redirects.map((hop) => ({ ...hop, url: cut(hop.url, HOP_URL_CHARS) })) } : {}) };
  if (stored.requestId !== undefined) stored.requestId = short(stored.requestId);
  if (stored.auth) stored.auth = storedAuth(stored.auth, HOP_URL_CHARS);
  if (fits(stored)) return stored;
  if (stored.response) stored.response = { ...stored.response, body: null, bodyOmitted: true };
  if (fits(stored)) return stored;
  // Still too large: something not cut above. The verdict and what identifies the call, nothing else.
  return skeleton(stored, TEXT_BUDGET_CHARS, fits) ?? (skeleton(stored, SKELETON_TEXT_CHARS) as Result);
}

/** Bytes left for fields the processor sets on a stored Result (`"stalled":N`). */
const LATER_FIELDS_BYTES = 64;
/** Texts of a skeleton are cut this short when longer ones do not fit: its 8 texts then take at most 8 × 6 × 129 bytes, far under 16 KiB with the rest. */
const SKELETON_TEXT_CHARS = 128;

/**
 * The last resort of the bound: whether the call succeeded, its identity, status, failure and
 * token step, each text cut to `chars`; nothing else (no body, headers but Retry-After, TLS or redirects).
 * Undefined when `fits` refuses it.
 */
function skeleton(r: Result, chars: number, fits: (r: Result) => boolean = () => true): Result | undefined {
  const c = (t: string): string => cut(t, chars);
  const retryAfter = headerValue(r.response?.headers['retry-after']);
  const out: Result = {
    ok: r.ok,
    nodeId: c(r.nodeId),
    ...(r.requestId === undefined ? {} : { requestId: c(r.requestId) }),
    request: { method: c(r.request.method), url: c(r.request.url), ...(r.request.resent === undefined ? {} : { resent: r.request.resent }) },
    tls: null,
    response: r.response ? { status: r.response.status, headers: retryAfter === undefined ? {} : { 'retry-after': cut(retryAfter, 64) }, body: null, bodyOmitted: true } : null,
    failure: r.failure ? { phase: r.failure.phase, category: r.failure.category, code: c(r.failure.code), message: c(r.failure.message), hint: c(r.failure.hint) } : null,
    timings: { connectMs: r.timings.connectMs, handshakeMs: r.timings.handshakeMs, totalMs: r.timings.totalMs },
    attempts: r.attempts,
    ...(r.stalled === undefined ? {} : { stalled: r.stalled }),
    ...(r.auth ? { auth: storedAuth(r.auth, chars) } : {}),
  };
  if (r[AUTH_RETRY_AFTER] !== undefined) out[AUTH_RETRY_AFTER] = r[AUTH_RETRY_AFTER];
  return fits(out) ? out : undefined;
}
