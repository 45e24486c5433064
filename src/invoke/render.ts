import { InvalidInputError } from '../errors.js';
import type { HttpMethod, NodeDefinition } from '../definitions/types.js';
import { normalTarget, originParts, targetOf, type OriginParts, type RequestTarget } from './request-target.js';

/** A request ready to send: every template resolved. */
export interface RenderedRequest {
  method: HttpMethod;
  url: URL;
  /** The request's target without parsing `url` again; absent on requests built elsewhere (token endpoints). */
  target?: RequestTarget;
  /** By lowercase name (one value per name, whatever case the definition used). */
  headers: Record<string, string>;
  /** Header names as the definition writes them, by lowercase name, for the wire; absent when none has a capital. */
  headerNames?: Readonly<Record<string, string>>;
  /** Serialized body and its default content type, if any. */
  body: { payload: string; contentType: string } | undefined;
}

const TEMPLATE = /\{\{\s*([^}]*?)\s*\}\}/g;
const PATH = /^context(?:\.[A-Za-z0-9_$-]+)+$|^context$/;

type Encoder = (value: string) => string;

function templateError(field: string, message: string, hint: string): InvalidInputError {
  return new InvalidInputError('SVCNODE_TEMPLATE', `${field}: ${message}`, { field, hint });
}

/** One piece of a template: literal text, or a `{{context.path}}` split into its keys once. */
type Piece = string | { expression: string; keys: string[] | undefined };

/** Templates split once (definitions are few and long-lived; bounded all the same). */
const compiled = new Map<string, Piece[]>();

function piecesOf(template: string): Piece[] {
  let pieces = compiled.get(template);
  if (pieces) return pieces;
  pieces = [];
  let last = 0;
  for (const match of template.matchAll(TEMPLATE)) {
    const index = match.index ?? 0;
    if (index > last) pieces.push(template.slice(last, index));
    const expression = match[1] ?? '';
    pieces.push({ expression, keys: PATH.test(expression) ? expression.split('.').slice(1) : undefined });
    last = index + match[0].length;
  }
  if (last < template.length) pieces.push(template.slice(last));
  if (compiled.size >= 1024) compiled.clear();
  compiled.set(template, pieces);
  return pieces;
}

/**
 * The `{{…}}` templates in `template` that rendering refuses (anything but `{{context.path}}`), as
 * written: definition loading uses this same parser, so load-time and call-time rules agree.
 */
export function unsupportedTemplates(template: string): string[] {
  return [...template.matchAll(TEMPLATE)].filter((match) => !PATH.test(match[1] ?? '')).map((match) => match[0]);
}

/** Resolve `context.a.b` against the context; own properties only (no prototype walking). */
function lookup(piece: Exclude<Piece, string>, context: Record<string, unknown>, field: string): unknown {
  const { expression, keys } = piece;
  if (!keys) {
    throw templateError(field, `unsupported template "{{${expression}}}"`, 'templates may only reference {{context.path.to.value}}; no expressions or code');
  }
  let value: unknown = context;
  for (const key of keys) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) {
      throw templateError(field, `context variable "${expression}" is missing`, `pass "${expression.slice('context.'.length)}" in the invocation context`);
    }
    value = (value as Record<string, unknown>)[key];
  }
  if (value === undefined || value === null) {
    throw templateError(field, `context variable "${expression}" is null`, `pass a value for "${expression}" in the invocation context`);
  }
  return value;
}

function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

/** Replace every template in a string. */
export function renderString(template: string, context: Record<string, unknown>, field: string, encode?: Encoder): string {
  const pieces = piecesOf(template);
  let out = '';
  for (const piece of pieces) {
    if (typeof piece === 'string') out += piece;
    else {
      const text = asText(lookup(piece, context, field));
      out += encode ? encode(text) : text;
    }
  }
  return out;
}

/** Render a JSON body: a string that is exactly one template keeps the value's JSON type. */
function renderJson(value: unknown, context: Record<string, unknown>, field: string): unknown {
  if (typeof value === 'string') {
    const pieces = piecesOf(value);
    const only = pieces.length === 1 ? pieces[0] : undefined;
    return only !== undefined && typeof only !== 'string' ? lookup(only, context, field) : renderString(value, context, field);
  }
  if (Array.isArray(value)) return value.map((item, i) => renderJson(item, context, `${field}/${i}`));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderJson(v, context, `${field}/${k}`)]));
  }
  return value;
}

/** `scheme://authority` of a URL template: the part context values may never reach. */
const ORIGIN = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\]*/;
/** A path segment the URL parser resolves (`.`, `..`, also percent-encoded). */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/** A URL template split once: its literal origin, path segments, and query/fragment tail. */
interface UrlTemplate {
  origin: string;
  /** Path segments, each after its separator (`/`, or `\\`, which the URL parser reads as `/`); `templated` when it holds a `{{…}}`. */
  segments: { sep: string; text: string; templated: boolean }[];
  tail: string;
  /** The origin parsed once; undefined when the URL parser must judge it (and refuse it). */
  parts: OriginParts | undefined;
}

const urlTemplates = new Map<string, UrlTemplate>();

function urlTemplate(template: string): UrlTemplate {
  let parsed = urlTemplates.get(template);
  if (parsed) return parsed;
  const origin = ORIGIN.exec(template)?.[0] ?? '';
  if (origin === '' || origin.includes('{{')) {
    throw templateError('/request/url', 'the scheme, host and port of request.url may not come from a template', 'write the origin literally (https://host:port) and template only the path and query');
  }
  const rest = template.slice(origin.length);
  const end = rest.search(/[?#]/);
  const path = end === -1 ? rest : rest.slice(0, end);
  // Split at `\` too: the WHATWG parser reads it as `/` in an https path, so `v1\{{context.a}}` must not let ".." through.
  const segments = path.split(/(?=[/\\])/).map((piece) => {
    const sep = piece[0] === '/' || piece[0] === '\\' ? piece[0] : '';
    const text = piece.slice(sep.length);
    return { sep, text, templated: text.includes('{{') };
  });
  parsed = { origin, segments, tail: end === -1 ? '' : rest.slice(end), parts: originParts(origin) };
  if (urlTemplates.size >= 1024) urlTemplates.clear();
  urlTemplates.set(template, parsed);
  return parsed;
}

/** The literal origin of a URL template, parsed (`https://host:port`); undefined when it is not one (validation refuses such definitions). */
export function definedOrigin(template: string): OriginParts | undefined {
  try {
    return urlTemplate(template).parts;
  } catch {
    return undefined;
  }
}

/**
 * Render the path and query of `request.url`; its origin stays literal (the client certificate and tokens must only go
 * where the definition says) and a value cannot become a `.`/`..` segment that moves the path.
 */
function renderUrl(template: UrlTemplate, context: Record<string, unknown>): string {
  const { segments, tail } = template;
  let url = '';
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as UrlTemplate['segments'][number];
    url += segment.sep;
    if (!segment.templated) {
      url += segment.text;
      continue;
    }
    const out = renderString(segment.text, context, '/request/url', encodeURIComponent);
    if (DOT_SEGMENT.test(out)) {
      throw templateError('/request/url', `a context value renders the path segment "${out}"`, 'context values may not be "." or ".." as a whole path segment');
    }
    url += out;
  }
  return url + (tail.includes('{{') ? renderString(tail, context, '/request/url', encodeURIComponent) : tail);
}

/** The rendered URL through the parser, refused unless https without userinfo; `query` appended. */
function parsedUrl(rawUrl: string, request: NodeDefinition['request'], context: Record<string, unknown>): URL {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_TEMPLATE', `/request/url: "${rawUrl}" is not a valid URL`, { cause, field: '/request/url', hint: 'check the URL template and the context values' });
  }
  if (url.protocol !== 'https:') {
    throw templateError('/request/url', `only https:// URLs are supported, got "${url.protocol}"`, 'service nodes always use TLS');
  }
  if (url.username !== '' || url.password !== '') {
    throw templateError('/request/url', 'the URL carries user:password@', 'put credentials in request.headers or auth, never in the URL');
  }
  for (const [name, value] of Object.entries(request.query ?? {})) {
    const field = `/request/query/${name}`;
    url.searchParams.append(name, typeof value === 'string' ? renderString(value, context, field) : String(value));
  }
  return url;
}

/** Anything but printable ASCII and tab: a value that holds it goes through UTF-8 (controls are then node:http's to refuse). */
const NON_ASCII = /[^ -~\t]/;
/** A UTF-16 surrogate without its pair: no UTF-8 encodes it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * A rendered header value as node:http must be given it: CR, LF or NUL refused (header
 * injection), a value beyond ASCII as its UTF-8 bytes, as curl sends it (node:http would send
 * U+0080–U+00FF as single Latin-1 bytes and refuse anything above).
 */
function headerValue(rendered: string, field: string): string {
  if (/[\r\n\0]/.test(rendered)) {
    throw templateError(field, 'rendered header value contains CR, LF or NUL', 'header values may not contain line breaks; check the context value');
  }
  if (!NON_ASCII.test(rendered)) return rendered;
  if (LONE_SURROGATE.test(rendered)) throw templateError(field, 'rendered header value contains an unpaired surrogate (a broken UTF-16 string)', 'fix the value in the invocation context');
  return Buffer.from(rendered, 'utf8').toString('latin1');
}

const FORM_TYPE = 'application/x-www-form-urlencoded';
/** The first token of a Content-Type, up to `;`, `,` or a blank: what PHP and most servers take for the media type. */
const MEDIA_TYPE = /^\s*([^;,\s]*)/;

/**
 * The media type a Content-Type names, lower-cased. A list (`application/x-www-form-urlencoded,text/plain`)
 * is read by its first entry, as PHP reads it: judging the whole value let such a body escape form encoding.
 */
export function mediaTypeOf(contentType: string): string {
  return (MEDIA_TYPE.exec(contentType)?.[1] ?? '').toLowerCase();
}

/** `application/x-www-form-urlencoded`, whatever its parameters or what follows it. */
export function isFormType(mediaType: string): boolean {
  return mediaType === FORM_TYPE;
}

/** `application/json`, `text/json` or a `+json` type (`application/problem+json`). */
export function isJsonType(mediaType: string): boolean {
  return mediaType === 'application/json' || mediaType.endsWith('+json') || mediaType === 'text/json';
}

/** A value as one form-encoded field name or value (space as `+`). */
const formEncode = (text: string): string => encodeURIComponent(text).replace(/%20/g, '+');

/** `multipart/form-data`, `multipart/mixed`, …: bodies whose parts a boundary delimits. */
export function isMultipartType(mediaType: string): boolean {
  return mediaType.startsWith('multipart/');
}

/** The `boundary` parameter of a multipart Content-Type (RFC 2046), quoted or not; undefined when it has none. */
export function multipartBoundary(contentType: string): string | undefined {
  const match = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(contentType);
  return match?.[1] || match?.[2] || undefined;
}

/**
 * Values placed in a multipart body must not hold its delimiter: `--boundary` in a context value
 * would end the part it stands in and start one of the value's making (a field the definition
 * never had, or a second copy of one it has). Refused, as multipart writers choose a boundary no
 * part holds; the value is not repeated.
 */
function withoutDelimiter(boundary: string): Encoder {
  const delimiter = `--${boundary}`;
  return (text) => {
    if (!text.includes(delimiter)) return text;
    throw templateError('/request/body', `a context value holds the multipart delimiter "${delimiter}": it would end its part and start another`, 'fix the value in the invocation context, or give the content type a boundary that values cannot hold');
  };
}

/**
 * Where each template of a JSON text template stands: inside a string literal, in place of a value,
 * or right after a backslash inside a string literal (where the value would complete an escape).
 */
export type JsonSlot = 'string' | 'value' | 'escape';

const jsonSlotsCache = new Map<string, JsonSlot[]>();

/** The slot of every template of `template`, in order, read by JSON's string-literal rules (once per template). */
export function jsonSlots(template: string): JsonSlot[] {
  let slots = jsonSlotsCache.get(template);
  if (slots) return slots;
  slots = [];
  let inString = false;
  let escaped = false;
  for (const piece of piecesOf(template)) {
    if (typeof piece !== 'string') {
      slots.push(escaped ? 'escape' : inString ? 'string' : 'value');
      escaped = false;
      continue;
    }
    for (let i = 0; i < piece.length; i++) {
      const ch = piece.charCodeAt(i);
      if (escaped) escaped = false;
      else if (ch === 0x5c) escaped = inString;
      else if (ch === 0x22) inString = !inString;
    }
  }
  if (jsonSlotsCache.size >= 1024) jsonSlotsCache.clear();
  jsonSlotsCache.set(template, slots);
  return slots;
}

/** A string that is one JSON scalar as written: a number, true, false, null or a quoted string. */
// eslint-disable-next-line no-control-regex -- JSON refuses raw control characters in a string: so must this
const JSON_SCALAR = /^[ \t\r\n]*(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")[ \t\r\n]*$/;

const JSON_BODY_HINT = 'write request.body as a JSON object ({"to": "{{context.to}}"}): it keeps value types and escapes every value';

/**
 * A string body under a JSON content type: a value inside a string literal is JSON-escaped (a
 * quote in it cannot end the string and add members); a value in place of a JSON value must be
 * one (a number, true, false, null or a quoted string; objects and arrays from the context go in
 * as their JSON), never a fragment that adds members.
 */
function renderJsonText(template: string, context: Record<string, unknown>): string {
  const field = '/request/body';
  const slots = jsonSlots(template);
  let out = '';
  let t = 0;
  for (const piece of piecesOf(template)) {
    if (typeof piece === 'string') {
      out += piece;
      continue;
    }
    const slot = slots[t++];
    const value = lookup(piece, context, field);
    if (slot === 'string') out += JSON.stringify(asText(value)).slice(1, -1);
    else if (slot === 'value' && (typeof value !== 'string' || JSON_SCALAR.test(value))) out += asText(value);
    else if (slot === 'value') {
      throw templateError(field, `context variable "${piece.expression}" stands outside quotes in a JSON body and is a string that is not one JSON value (a number, true, false, null or a quoted string)`, `put the template inside quotes, or ${JSON_BODY_HINT}`);
    } else {
      throw templateError(field, `the template "{{${piece.expression}}}" follows a backslash inside a JSON string`, `remove the backslash: svcnode JSON-escapes the value itself; or ${JSON_BODY_HINT}`);
    }
  }
  return out;
}

/**
 * The request body. A string is sent as text, with objects and arrays from the context as JSON;
 * under a form content type each context value is form-encoded, so a value cannot add or change
 * fields, and an object body is sent as its fields; under a JSON content type each value is
 * JSON-escaped or must be one JSON value. Otherwise an object body is JSON.
 */
function renderBody(template: unknown, contentType: string | undefined, context: Record<string, unknown>): RenderedRequest['body'] {
  const type = contentType === undefined ? '' : mediaTypeOf(contentType);
  const form = isFormType(type);
  if (typeof template === 'string') {
    const boundary = isMultipartType(type) ? multipartBoundary(contentType as string) : undefined;
    const encode = form ? formEncode : boundary === undefined ? undefined : withoutDelimiter(boundary);
    const payload = isJsonType(type) ? renderJsonText(template, context) : renderString(template, context, '/request/body', encode);
    return { payload, contentType: 'text/plain; charset=utf-8' };
  }
  if (form && Array.isArray(template)) {
    // Its JSON text would go out labelled as a form, and a form parser reads "&" and "=" in it as fields.
    throw templateError('/request/body', `an array body cannot be sent as ${FORM_TYPE} fields`, 'write request.body as an object of fields, or send JSON with content-type application/json');
  }
  const rendered = renderJson(template, context, '/request/body');
  if (form && rendered !== null && typeof rendered === 'object' && !Array.isArray(rendered)) {
    const fields = Object.entries(rendered).map(([name, value]) => `${formEncode(name)}=${formEncode(asText(value))}`);
    return { payload: fields.join('&'), contentType: 'application/x-www-form-urlencoded' };
  }
  return { payload: JSON.stringify(rendered), contentType: 'application/json' };
}

/**
 * Render a node's request from an invocation context. Values placed in the URL are percent-encoded;
 * a header value that would contain CR or LF is rejected (header injection).
 */
export function renderRequest(node: NodeDefinition, context: Record<string, unknown>): RenderedRequest {
  const { request } = node;
  const template = urlTemplate(request.url);
  const rest = renderUrl(template, context);
  // `query` is appended by URLSearchParams, which re-serialises the whole query: parser path.
  const fast = template.parts && !request.query ? normalTarget(template.parts, rest) : undefined;
  let url: URL | undefined = fast ? undefined : parsedUrl(template.origin + rest, request, context);
  const target = fast ?? targetOf(url as URL);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    const field = `/request/headers/${name}`;
    headers[name.toLowerCase()] = headerValue(renderString(value, context, field), field);
  }
  let body: RenderedRequest['body'];
  if (request.body !== undefined && request.method !== 'GET' && request.method !== 'HEAD') {
    body = renderBody(request.body, headers['content-type'], context);
  }
  return {
    method: request.method,
    target,
    // Parsed only when something needs the URL object (a failure, a redirect).
    get url(): URL {
      return (url ??= new URL(target.href));
    },
    headers,
    ...headerNamesOf(node),
    body,
  };
}

const namesOf = new WeakMap<NodeDefinition, { headerNames?: Readonly<Record<string, string>> }>();

/**
 * The spelling of every header name a node sets (request.headers, tls.clientCertHeader, the
 * header of each login token), for the wire: HTTP names are case-insensitive, but some gateways
 * match them as written (Boomi's certificate header). Once per definition.
 */
function headerNamesOf(node: NodeDefinition): { headerNames?: Readonly<Record<string, string>> } {
  let got = namesOf.get(node);
  if (got) return got;
  const written = [...Object.keys(node.request.headers ?? {}), ...(node.tls.clientCertHeader ? [node.tls.clientCertHeader] : []), ...(node.auth?.tokens ?? []).map((t) => t.header)];
  // Without a prototype: a header named "constructor" must find no name here.
  const names = Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(written.filter((name) => name !== name.toLowerCase()).map((name) => [name.toLowerCase(), name])));
  got = Object.keys(names).length > 0 ? { headerNames: names } : {};
  namesOf.set(node, got);
  return got;
}
