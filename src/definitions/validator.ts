import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import jsonc from 'jsonc-parser';
import { InvalidInputError, type ErrorCode } from '../errors.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { NotReadableAsFile, readBounded, readBoundedSync, type UnreadableReason } from '../regular-file.js';

/** The public schemas, by short name. */
export const SCHEMA_FILES = {
  node: 'service-node.schema.json',
  profile: 'cert-profile.schema.json',
  invocation: 'invocation.schema.json',
} as const;
export type SchemaName = keyof typeof SCHEMA_FILES;

const CODES: Record<SchemaName, ErrorCode> = {
  node: 'SVCNODE_INVALID_DEFINITION',
  profile: 'SVCNODE_INVALID_PROFILE',
  invocation: 'SVCNODE_INVALID_DEFINITION',
};

let compiled: Record<SchemaName, ValidateFunction> | undefined;

/** One Ajv2020 instance, every schema compiled once on first use. */
function validators(): Record<SchemaName, ValidateFunction> {
  if (compiled) return compiled;
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  addFormats.default(ajv);
  const entries = Object.entries(SCHEMA_FILES).map(([name, file]) => {
    const schema = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'schemas', file), 'utf8')) as object;
    return [name, ajv.compile(schema)] as const;
  });
  compiled = Object.fromEntries(entries) as Record<SchemaName, ValidateFunction>;
  return compiled;
}

/** The schema's pattern of a call URL (request.url, auth token endpoints), explained in words. */
const LITERAL_ORIGIN_URL = '^https://[^/?#@{}\\\\\\s]+(?:[/?#].*)?$';
/** The schema's pattern of an OAuth 2.0 token endpoint or issuer. */
const AUTHORIZATION_SERVER_URL = '^https://[^/?#@{}]+(/[^?#{}]*)?$';
const PATTERN_MEANINGS: Record<string, string> = {
  [LITERAL_ORIGIN_URL]: 'must be https://host[:port]/… with a literal scheme, host and port (templates only in the path and query) and no user:password@ (credentials go in request.headers or auth)',
  [AUTHORIZATION_SERVER_URL]: 'must be https://host[:port][/path] (the authorization server is called over mutual TLS), without templates, user:password@, query or fragment',
};

/** What a `oneOf` of the schemas allows, by schema path, where "one allowed form" says too little. */
const ONE_OF_MEANINGS: Record<string, string> = {
  '#/$defs/passphrase/oneOf': 'must be {"env": "VARIABLE"} or {"file": "PATH"}: a passphrase is never written in the profile',
  '#/properties/client/oneOf': 'must be {"certificate", "key", "passphrase"?} or {"pkcs12", "passphrase"?}',
  '#/properties/auth/oneOf/1/oneOf': 'needs exactly one of "tokenUrl" (the token endpoint) or "issuer" (whose metadata names the token endpoint), not both',
};

/** What clientAuth a client secret does not fit uses instead. */
function withoutSecret(clientAuth: unknown): string {
  if (clientAuth === 'tls_client_auth' || clientAuth === 'self_signed_tls_client_auth') return `${clientAuth} authenticates with the client certificate`;
  if (clientAuth === 'private_key_jwt') return "private_key_jwt authenticates with a JWT signed by the profile's private key";
  return 'only client_secret_basic and client_secret_post use a client secret';
}

/**
 * Messages of schema places whose keyword alone does not say what to change, by schema path: the
 * field's JSON pointer and what to do; `holder` is the object that holds (or lacks) the field.
 */
const PLACE_MEANINGS: Record<string, (holder: Record<string, unknown>, at: string) => string> = {
  '#/properties/auth/oneOf/1/allOf/0/else/properties/clientSecret/false schema': (auth, at) => `${at}: ${withoutSecret(auth.clientAuth)}; remove clientSecret or use clientAuth client_secret_basic (or client_secret_post)`,
  '#/properties/auth/oneOf/1/allOf/0/then/required': (auth, at) => `${at}/clientSecret: ${String(auth.clientAuth)} needs a client secret: add clientSecret {"env": "VARIABLE"} or {"file": "PATH"}, or use clientAuth tls_client_auth`,
};

/**
 * How plainly an error of a `oneOf` alternative says the document meant another form: a wrong
 * `const` beside it (`"type"`) says so outright, each property the alternative does not know a little.
 */
function otherness(error: ErrorObject, at: string): number {
  if (error.keyword === 'const' && error.instancePath.startsWith(`${at}/`) && !error.instancePath.slice(at.length + 1).includes('/')) return 100;
  return error.keyword === 'additionalProperties' && error.instancePath === at ? 1 : 0;
}

/**
 * The errors of the alternative of each `oneOf` the document is closest to: the others are other
 * forms (a client with `certificate` and `key` is not the `pkcs12` form), and their complaints
 * only mislead. When one alternative remains and says what is wrong, "must match exactly one
 * allowed form" adds nothing; alternatives that only lack their own field (`tokenUrl` or
 * `issuer`) give way to the `oneOf`'s meaning.
 */
function withoutOtherForms(errors: ErrorObject[], schema: unknown): ErrorObject[] {
  const dropped = new Set<string>();
  const settled = new Set<ErrorObject>();
  const mistyped = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  for (const oneOf of errors) {
    if (oneOf.keyword !== 'oneOf') continue;
    // A value of another type passes every alternative that only looks at properties: its type is what is wrong.
    if (mistyped.has(oneOf.instancePath) && (oneOf.params as { passingSchemas?: unknown }).passingSchemas !== null) {
      settled.add(oneOf);
      continue;
    }
    const prefix = `${oneOf.schemaPath}/`;
    // Every alternative, also those whose errors Ajv reports under a $ref's own path.
    const alternatives = schemaAt(schema, oneOf.schemaPath);
    const distance = new Map<string, number>(Array.isArray(alternatives) ? alternatives.map((_, i) => [String(i), 0]) : []);
    const own: ErrorObject[] = [];
    for (const e of errors) {
      if (!e.schemaPath.startsWith(prefix)) continue;
      const branch = e.schemaPath.slice(prefix.length).split('/')[0] as string;
      distance.set(branch, (distance.get(branch) ?? 0) + otherness(e, oneOf.instancePath));
      own.push(e);
    }
    const closest = Math.min(...distance.values());
    const kept = [...distance.keys()].filter((branch) => distance.get(branch) === closest);
    if (kept.length < distance.size) {
      for (const [branch, d] of distance) if (d > closest) dropped.add(`${prefix}${branch}/`);
      if (kept.length === 1 && ONE_OF_MEANINGS[oneOf.schemaPath] === undefined && own.some((e) => e.schemaPath.startsWith(`${prefix}${kept[0] ?? ''}/`))) settled.add(oneOf);
    } else if (ONE_OF_MEANINGS[oneOf.schemaPath] !== undefined && own.length > 0 && own.every((e) => e.keyword === 'required' && e.instancePath === oneOf.instancePath)) {
      dropped.add(prefix);
    }
  }
  const kept = errors.filter((e) => !settled.has(e) && ![...dropped].some((d) => e.schemaPath.startsWith(d)));
  // "must be object" beside a oneOf that says which objects adds nothing.
  const explained = new Set(kept.filter((e) => e.keyword === 'oneOf' && ONE_OF_MEANINGS[e.schemaPath] !== undefined).map((e) => e.instancePath));
  return explained.size === 0 ? kept : kept.filter((e) => e.keyword !== 'type' || !explained.has(e.instancePath));
}

/** The value at a JSON pointer of a document (RFC 6901). */
function valueAt(document: unknown, pointer: string): unknown {
  let at = document;
  for (const token of pointer.split('/').slice(1)) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[token.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

/** The part of a schema at an Ajv schema path (`#/properties/client/oneOf`). */
function schemaAt(schema: unknown, path: string): unknown {
  return valueAt(schema, path.replace(/^#/, ''));
}

/**
 * Render one Ajv error as "<pointer>: <what is allowed>"; with the validated `document`, places
 * of PLACE_MEANINGS say what to change in terms of the fields beside the offending one.
 */
export function describeSchemaError(error: ErrorObject, document?: unknown): string {
  const at = error.instancePath === '' ? '/' : error.instancePath;
  const p = error.params as Record<string, unknown>;
  const place = PLACE_MEANINGS[error.schemaPath];
  if (place) {
    const holder = valueAt(document, error.keyword === 'required' ? error.instancePath : error.instancePath.replace(/\/[^/]*$/, ''));
    return place(holder !== null && typeof holder === 'object' ? (holder as Record<string, unknown>) : {}, error.instancePath);
  }
  switch (error.keyword) {
    case 'required':
      return `${at}: missing required property "${String(p.missingProperty)}"`;
    case 'additionalProperties':
      return `${at}: unknown property "${String(p.additionalProperty)}" (check the spelling against the schema)`;
    case 'const':
      return `${at}: must be ${JSON.stringify(p.allowedValue)}`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return `${at}: ${PATTERN_MEANINGS[String(p.pattern)] ?? `must match ${String(p.pattern)}`}`;
    case 'type':
      return `${at}: must be ${String(p.type)}`;
    case 'oneOf':
      return `${at}: ${ONE_OF_MEANINGS[error.schemaPath] ?? 'must match exactly one allowed form'}`;
    default:
      return `${at}: ${error.message ?? error.keyword}`;
  }
}

/**
 * Validate `data` against a public schema; throw an InvalidInputError naming the file and every
 * offending JSON pointer. Validation does not modify `data`.
 */
export function validateDocument<T>(schema: SchemaName, data: unknown, source: string): T {
  // Before Ajv, templates and hashing, whose recursion a few thousand levels overflow.
  if (schema !== 'invocation') checkDocumentDepth(data, source, schema);
  const validate = validators()[schema];
  if (validate(data)) {
    if (schema === 'invocation') checkContext((data as { context?: unknown }).context, source);
    return data as T;
  }
  const errors = withoutOtherForms((validate.errors ?? []).filter((e) => e.keyword !== 'if'), validate.schema);
  const lines = [...new Set(errors.map((e) => describeSchemaError(e, data)))];
  const first = errors[0];
  throw new InvalidInputError(CODES[schema], `${source}: invalid ${schema === 'node' ? 'node definition' : schema}:\n  ${lines.join('\n  ')}`, {
    file: source,
    field: first?.instancePath === '' ? '/' : first?.instancePath,
    hint: `fix the listed fields; the schema is schemas/${SCHEMA_FILES[schema]}`,
  });
}

/**
 * How deep an invocation context may nest. Templates read a few levels; JSON.stringify (BullMQ
 * storing the job) overflows the stack on some thousands, which was an unexplained exit 1.
 */
export const MAX_CONTEXT_DEPTH = 64;

/** A property name as a JSON pointer token (RFC 6901). */
export function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** An object of a document or context, how deep it sits, and the key that leads to it (for the error only; none for a document's root). */
interface Level {
  value: object;
  depth: number;
  key: string | undefined;
  parent: Level | undefined;
}

/** The JSON pointer of `key` under `level` (of the level itself without a key), cut to 200 characters for messages. */
function pointerOf(level: Level, key?: string): string {
  const keys = key === undefined ? [] : [pointerToken(key)];
  for (let l: Level | undefined = level; l; l = l.parent) if (l.key !== undefined) keys.unshift(pointerToken(l.key));
  const path = `/${keys.join('/')}`;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

/**
 * How deep a node definition or profile may nest, its request body included. Real ones nest a
 * handful of levels; a few thousand overflowed the stack in validation (an exit 1 of every worker
 * at start, SVCNODE_INTERNAL_ERROR in dry-run).
 */
export const MAX_DOCUMENT_DEPTH = 64;

/** Refuse a node definition or profile nesting deeper than MAX_DOCUMENT_DEPTH, naming the file and where; iterative. */
function checkDocumentDepth(data: unknown, source: string, schema: 'node' | 'profile'): void {
  if (data === null || typeof data !== 'object') return;
  const stack: Level[] = [{ value: data, depth: 1, key: undefined, parent: undefined }];
  for (let level = stack.pop(); level !== undefined; level = stack.pop()) {
    if (level.depth > MAX_DOCUMENT_DEPTH) {
      const at = pointerOf(level);
      throw new InvalidInputError(CODES[schema], `${source}: the ${schema === 'node' ? 'node definition' : 'profile'} nests deeper than ${MAX_DOCUMENT_DEPTH} levels (at ${at})`, {
        file: source,
        field: at,
        hint: schema === 'node' ? `flatten request.body: a node definition, its body included, may nest at most ${MAX_DOCUMENT_DEPTH} levels` : `a profile may nest at most ${MAX_DOCUMENT_DEPTH} levels: check that this is the profile you meant`,
      });
    }
    for (const [key, child] of Object.entries(level.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child as object, depth: level.depth + 1, key, parent: level });
    }
  }
}

/**
 * Why a context number would not arrive as sent, if it would not: JSON readers (JSON.parse here)
 * round an integer beyond 2^53 to the nearest double, and 1e400 reads as Infinity.
 */
function inexactNumber(n: number): string | undefined {
  if (!Number.isFinite(n)) return 'is not a finite number';
  if (Number.isInteger(n) && !Number.isSafeInteger(n)) return 'is an integer beyond 2^53';
  return undefined;
}

/**
 * Refuse a context that nests deeper than MAX_CONTEXT_DEPTH, or holds a number that does not
 * survive JSON exactly (a Python producer's 2**53 + 1 would be called as 2**53), naming where.
 * Iterative (no recursion on hostile depth), and the JSON pointer is built only for the error:
 * this runs for every job.
 */
export function checkContext(context: unknown, source: string): void {
  if (context === null || typeof context !== 'object') return;
  const stack: Level[] = [{ value: context, depth: 1, key: 'context', parent: undefined }];
  for (let level = stack.pop(); level !== undefined; level = stack.pop()) {
    if (level.depth > MAX_CONTEXT_DEPTH) {
      throw new InvalidInputError(CODES.invocation, `${source}: the context nests deeper than ${MAX_CONTEXT_DEPTH} levels (at ${pointerOf(level)})`, {
        file: source,
        field: '/context',
        hint: `flatten the context: templates read a few levels ({{context.a.b}}), and a context may nest at most ${MAX_CONTEXT_DEPTH} levels`,
      });
    }
    for (const [key, child] of Object.entries(level.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child as object, depth: level.depth + 1, key, parent: level });
      else if (typeof child === 'number') {
        const why = inexactNumber(child);
        if (why === undefined) continue;
        const path = pointerOf(level, key);
        throw new InvalidInputError(CODES.invocation, `${source}: the context value at ${path} ${why}`, { file: source, field: path, hint: 'send it as a string (JSON numbers beyond 2^53 lose digits)' });
      }
    }
  }
}

/** Largest JSON document read from a file: node definitions, profiles and contexts are kilobytes. */
export const MAX_JSON_FILE_BYTES = 8 * 1024 * 1024;

const unreadableFile = (file: string, cause: unknown): InvalidInputError => new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${file}: cannot read file`, { cause, file, hint: 'check the path and its permissions' });

/** What hint a refusal of the readers gets: the size limit, the filesystem that did not answer, or "the JSON file itself". */
const REFUSAL_HINTS: Record<UnreadableReason, string> = {
  'too-large': `node definitions, profiles and contexts read from files are at most ${MAX_JSON_FILE_BYTES / 2 ** 20} MiB: check that this is the right file`,
  timeout: 'its filesystem did not answer (a hung network or FUSE mount?): check the mount; the file is read again once it answers',
  'not-a-file': 'point it at the JSON file itself',
};

/** The error of a JSON document's file that could not be read: a refusal names the file and why, anything else is "cannot read file". */
function readError(file: string, cause: unknown, code: ErrorCode): InvalidInputError {
  if (cause instanceof NotReadableAsFile) return new InvalidInputError(code, `${file}: ${cause.message}`, { cause, file, hint: REFUSAL_HINTS[cause.reason] });
  return unreadableFile(file, cause);
}

/**
 * Read and parse a JSON file, with errors that name the file. Read through readBoundedSync: what is
 * not a regular file (a FIFO, a device, a /proc file) is refused before it is read, and at most
 * MAX_JSON_FILE_BYTES + 1 bytes are read whatever its size says.
 */
export function readJsonFile(file: string, code: ErrorCode): unknown {
  let text: string;
  try {
    text = readBoundedSync(file, MAX_JSON_FILE_BYTES).toString('utf8');
  } catch (cause) {
    throw readError(file, cause, code);
  }
  return parseJsonText(text, file, code);
}

/**
 * The parsed text of a node definition or profile file, refused when it nests too deep or holds a
 * key twice in one object. JSON.parse keeps the last of two equal keys while a reviewer (or
 * another reader) sees the first: `"url"` twice is a definition that calls what nobody reviewed.
 */
export function parseDocumentText(schema: 'node' | 'profile', text: string, file: string): unknown {
  const data = parseJsonText(text, file, CODES[schema]);
  // First: the key scan below recurses once per level.
  checkDocumentDepth(data, file, schema);
  checkUniqueKeys(withoutBom(text), file, schema);
  return data;
}

/** Read a node definition or profile file synchronously (the dry-run): readJsonFile, then parseDocumentText's checks. */
export function readDocumentFile(schema: 'node' | 'profile', file: string): unknown {
  let text: string;
  try {
    text = readBoundedSync(file, MAX_JSON_FILE_BYTES).toString('utf8');
  } catch (cause) {
    throw readError(file, cause, CODES[schema]);
  }
  return parseDocumentText(schema, text, file);
}

/**
 * Refuse an object holding a key twice (after unescaping: `"url"` and `"\u0075rl"` are one key),
 * naming the key and its JSON pointer. JSON text already parsed: jsonc-parser's scanner only finds
 * the keys, in the order and with the unescaping JSON.parse applies.
 */
function checkUniqueKeys(text: string, file: string, schema: 'node' | 'profile'): void {
  const open: Set<string>[] = [];
  let duplicate: { key: string; path: jsonc.JSONPath } | undefined;
  jsonc.visit(text, {
    onObjectBegin: () => {
      open.push(new Set());
      return duplicate === undefined;
    },
    onObjectEnd: () => {
      open.pop();
    },
    onObjectProperty: (key, _offset, _length, _line, _column, path) => {
      const keys = open.at(-1);
      if (keys === undefined || duplicate !== undefined) return;
      if (keys.has(key)) duplicate = { key, path: [...path(), key] };
      keys.add(key);
    },
  });
  if (duplicate === undefined) return;
  const full = `/${duplicate.path.map((t) => pointerToken(String(t))).join('/')}`;
  const at = full.length > 200 ? `${full.slice(0, 200)}…` : full;
  const name = JSON.stringify(duplicate.key.length > 100 ? `${duplicate.key.slice(0, 100)}…` : duplicate.key);
  throw new InvalidInputError(CODES[schema], `${file}: the key ${name} appears twice in one object (at ${at}): JSON readers disagree on which one counts (JSON.parse keeps the last, a reviewer reads the first)`, {
    file,
    field: at,
    hint: 'remove one of the two',
  });
}

/** The text of a JSON file, read without blocking the event loop (and given up after READ_TIMEOUT_MS); the same checks as readJsonFile. */
export async function readJsonText(file: string, code: ErrorCode): Promise<string> {
  try {
    return (await readBounded(file, MAX_JSON_FILE_BYTES)).toString('utf8');
  } catch (cause) {
    throw readError(file, cause, code);
  }
}

/** Windows editors and PowerShell start UTF-8 files with a byte order mark; JSON.parse refuses it. */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Parse the text of a JSON file (read by the caller, possibly asynchronously), with errors that name the file. */
export function parseJsonText(text: string, file: string, code: ErrorCode): unknown {
  text = withoutBom(text);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    // V8 quotes a stretch of the text ("Unexpected token 'B', "…Bearer s3c"… is not valid JSON"); the text may hold a header's token.
    const what = (cause as Error).message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
    throw new InvalidInputError(code, `${file}: not valid JSON (${what})`, { cause, file, hint: 'fix the JSON syntax' });
  }
}
