import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { InvalidInputError, type ErrorCode } from '../errors.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { fileProblem } from '../regular-file.js';

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
const PATTERN_MEANINGS: Record<string, string> = {
  [LITERAL_ORIGIN_URL]: 'must be https://host[:port]/… with a literal scheme, host and port (templates only in the path and query) and no user:password@ (credentials go in request.headers or auth)',
};

/** What a `oneOf` of the schemas allows, by schema path, where "one allowed form" says too little. */
const ONE_OF_MEANINGS: Record<string, string> = {
  '#/$defs/passphrase/oneOf': 'must be {"env": "VARIABLE"} or {"file": "PATH"}: a passphrase is never written in the profile',
  '#/properties/client/oneOf': 'must be {"certificate", "key", "passphrase"?} or {"pkcs12", "passphrase"?}',
};

/**
 * The errors of the `oneOf` alternatives the document plainly did not mean: an alternative that
 * finds unknown properties, where another alternative finds none, is a different form (a client
 * with `certificate` and `key` is not the `pkcs12` form), and its complaints only mislead.
 */
function withoutOtherForms(errors: ErrorObject[], schema: unknown): ErrorObject[] {
  const dropped = new Set<string>();
  for (const oneOf of errors) {
    if (oneOf.keyword !== 'oneOf') continue;
    const prefix = `${oneOf.schemaPath}/`;
    // Every alternative, also those whose errors Ajv reports under a $ref's own path.
    const alternatives = schemaAt(schema, oneOf.schemaPath);
    const branches = new Map<string, boolean>(Array.isArray(alternatives) ? alternatives.map((_, i) => [String(i), false]) : []);
    for (const e of errors) {
      if (!e.schemaPath.startsWith(prefix)) continue;
      const branch = e.schemaPath.slice(prefix.length).split('/')[0] as string;
      branches.set(branch, (branches.get(branch) ?? false) || (e.keyword === 'additionalProperties' && e.instancePath === oneOf.instancePath));
    }
    if (![...branches.values()].some((other) => !other)) continue;
    for (const [branch, other] of branches) if (other) dropped.add(`${prefix}${branch}/`);
  }
  const kept = dropped.size === 0 ? errors : errors.filter((e) => ![...dropped].some((d) => e.schemaPath.startsWith(d)));
  // "must be object" beside a oneOf that says which objects adds nothing.
  const explained = new Set(kept.filter((e) => e.keyword === 'oneOf' && ONE_OF_MEANINGS[e.schemaPath] !== undefined).map((e) => e.instancePath));
  return explained.size === 0 ? kept : kept.filter((e) => e.keyword !== 'type' || !explained.has(e.instancePath));
}

/** The part of a schema at an Ajv schema path (`#/properties/client/oneOf`). */
function schemaAt(schema: unknown, path: string): unknown {
  let at = schema;
  for (const token of path.replace(/^#\/?/, '').split('/')) {
    if (token === '') continue;
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[token.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

/** Render one Ajv error as "<pointer>: <what is allowed>". */
export function describeSchemaError(error: ErrorObject): string {
  const at = error.instancePath === '' ? '/' : error.instancePath;
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `${at}: missing required property "${String(p.missingProperty)}"`;
    case 'additionalProperties':
      return `${at}: unknown property "${String(p.additionalProperty)}" (check the spelling against the schema)`;
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
  const validate = validators()[schema];
  if (validate(data)) {
    if (schema === 'invocation') checkContextDepth((data as { context?: unknown }).context, source);
    return data as T;
  }
  const errors = withoutOtherForms((validate.errors ?? []).filter((e) => e.keyword !== 'if'), validate.schema);
  const lines = [...new Set(errors.map(describeSchemaError))];
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

/** An object of the context, how deep it sits, and the key that leads to it (for the error only). */
interface Level {
  value: object;
  depth: number;
  key: string;
  parent: Level | undefined;
}

/**
 * Refuse a context that nests deeper than MAX_CONTEXT_DEPTH, naming where. Iterative (no recursion
 * on hostile depth), and the JSON pointer is built only for the error: this runs for every job.
 */
export function checkContextDepth(context: unknown, source: string): void {
  if (context === null || typeof context !== 'object') return;
  const stack: Level[] = [{ value: context, depth: 1, key: 'context', parent: undefined }];
  for (let level = stack.pop(); level !== undefined; level = stack.pop()) {
    if (level.depth > MAX_CONTEXT_DEPTH) {
      const keys: string[] = [];
      for (let l: Level | undefined = level; l; l = l.parent) keys.unshift(pointerToken(l.key));
      const path = `/${keys.join('/')}`;
      throw new InvalidInputError(CODES.invocation, `${source}: the context nests deeper than ${MAX_CONTEXT_DEPTH} levels (at ${path.length > 200 ? `${path.slice(0, 200)}…` : path})`, {
        file: source,
        field: '/context',
        hint: `flatten the context: templates read a few levels ({{context.a.b}}), and a context may nest at most ${MAX_CONTEXT_DEPTH} levels`,
      });
    }
    for (const [key, child] of Object.entries(level.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child as object, depth: level.depth + 1, key, parent: level });
    }
  }
}

/** Largest JSON document read from a file: node definitions, profiles and contexts are kilobytes. */
export const MAX_JSON_FILE_BYTES = 8 * 1024 * 1024;

const unreadableFile = (file: string, cause: unknown): InvalidInputError => new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${file}: cannot read file`, { cause, file, hint: 'check the path and its permissions' });

/** Refuse what is not a JSON document's file before opening it: a FIFO would block, a device never end, a huge file fill memory. */
function checkDocumentFile(file: string, stats: Stats, code: ErrorCode): void {
  const why = fileProblem(stats, MAX_JSON_FILE_BYTES);
  if (why) throw new InvalidInputError(code, `${file}: ${why}`, { file, hint: stats.isFile() ? `node definitions, profiles and contexts read from files are at most ${MAX_JSON_FILE_BYTES / 2 ** 20} MiB: check that this is the right file` : 'point it at the JSON file itself' });
}

/** Read and parse a JSON file, with errors that name the file. */
export function readJsonFile(file: string, code: ErrorCode): unknown {
  let text: string;
  try {
    const stats = statSync(file);
    checkDocumentFile(file, stats, code);
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    if (cause instanceof InvalidInputError) throw cause;
    throw unreadableFile(file, cause);
  }
  return parseJsonText(text, file, code);
}

/** The text of a JSON file, read without blocking the event loop; the same checks as readJsonFile. */
export async function readJsonText(file: string, code: ErrorCode): Promise<string> {
  try {
    checkDocumentFile(file, await stat(file), code);
    return await readFile(file, 'utf8');
  } catch (cause) {
    if (cause instanceof InvalidInputError) throw cause;
    throw unreadableFile(file, cause);
  }
}

/** Parse the text of a JSON file (read by the caller, possibly asynchronously), with errors that name the file. */
export function parseJsonText(text: string, file: string, code: ErrorCode): unknown {
  // Windows editors and PowerShell start UTF-8 files with a byte order mark; JSON.parse refuses it.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    // V8 quotes a stretch of the text ("Unexpected token 'B', "…Bearer s3c"… is not valid JSON"); the text may hold a header's token.
    const what = (cause as Error).message.replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
    throw new InvalidInputError(code, `${file}: not valid JSON (${what})`, { cause, file, hint: 'fix the JSON syntax' });
  }
}
