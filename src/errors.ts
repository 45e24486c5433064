/**
 * The error family of svcnode. Every error carries a stable `code` (ours, `SVCNODE_*`); the raw
 * Node/OpenSSL error stays available as `cause` and never overwrites ours.
 */
/** Every svcnode error code with what it means; the README's table is kept in sync by a test. */
export const ERROR_CODES = {
  SVCNODE_INVALID_DEFINITION: 'a node definition, invocation or context file is not valid JSON or breaks its schema',
  SVCNODE_INVALID_PROFILE: 'a certificate profile is not valid JSON, breaks its schema or is misnamed',
  SVCNODE_INVALID_BUNDLE: 'a certificate, key or PKCS#12 file is corrupt, truncated or of the wrong kind',
  SVCNODE_BAD_PASSPHRASE: 'the passphrase does not open the key or PKCS#12 file',
  SVCNODE_MISSING_PASSPHRASE: 'the key is encrypted and no passphrase is configured, or its variable is unset',
  SVCNODE_KEY_MISMATCH: 'the private key does not belong to the client certificate',
  SVCNODE_NO_CERTIFICATE: 'a file that must hold a certificate holds none',
  SVCNODE_NO_PRIVATE_KEY: 'a file that must hold the private key holds none',
  SVCNODE_WEAK_KEY: 'the RSA client key is shorter than 2048 bits or than policy.minKeyBits',
  SVCNODE_CHAIN_BROKEN: 'the client certificate file holds certificates that do not link to the client certificate',
  SVCNODE_BUNDLE_TOO_LARGE: 'a bundle file is larger than 1 MiB',
  SVCNODE_FILE_NOT_FOUND: 'a file or directory cannot be read',
  SVCNODE_TEMPLATE: 'a {{context.…}} template is unsupported, its variable is missing, or the rendered value is unsafe',
  SVCNODE_UNKNOWN_NODE: 'no valid node definition has this id',
  SVCNODE_UNKNOWN_PROFILE: 'the profile a node names does not exist',
  SVCNODE_USAGE: 'the command line is invalid',
  SVCNODE_PIN_MISMATCH: 'the server public key matches none of tls.pinnedPublicKeys',
  SVCNODE_SUBJECT_MISMATCH: 'the server subject matches none of tls.serverSubjectPatterns',
  SVCNODE_CLIENT_CERT_EXPIRED: 'the client certificate is expired, so it was not presented',
  SVCNODE_CLIENT_CERT_NOT_YET_VALID: 'the client certificate is not valid yet, so it was not presented',
  SVCNODE_CROSS_ORIGIN_REDIRECT: 'the backend redirected to another origin, which is never followed',
  SVCNODE_TIMEOUT: 'a TCP connect or TLS handshake did not finish within its timeout',
  SVCNODE_AUTH_NO_TOKEN: 'a certificate-session endpoint answered without the token field',
  SVCNODE_AUTH_NO_CLIENT_CERT: 'certificate-session authentication needs a profile with a client certificate',
  SVCNODE_REDIS_UNAVAILABLE: 'Redis cannot be reached',
  SVCNODE_REDIS_AUTH: 'Redis refused the credentials (NOAUTH, WRONGPASS)',
  SVCNODE_REDIS_WRONG_NODE: 'the Redis URL names one node of a Redis Cluster that does not own the queue (MOVED)',
  SVCNODE_REDIS_CROSSSLOT: 'the queue prefix has no hash tag, so its keys span Redis Cluster slots (CROSSSLOT)',
  SVCNODE_PORT_IN_USE: 'the --metrics-port is taken by another process',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SvcnodeErrorOptions {
  cause?: unknown;
  /** What the operator should do about it. */
  hint?: string;
  /** The file the problem was found in. */
  file?: string;
  /** JSON pointer or dotted name of the offending field. */
  field?: string;
}

/** Base class: a stable code, the file or field it concerns, and a hint. */
export class SvcnodeError extends Error {
  override readonly name: string = 'SvcnodeError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly file: string | undefined;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: SvcnodeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.file = options.file;
    this.field = options.field;
  }
}

/**
 * Bad input: a definition, profile, bundle, passphrase, template or command line that cannot be
 * used. The CLI maps it to exit code 2; the worker turns it into an `invalid_input` Result.
 */
export class InvalidInputError extends SvcnodeError {
  override readonly name: string = 'InvalidInputError';
}

/** A certificate bundle that cannot be loaded (corrupt, wrong passphrase, key mismatch, …). */
export class BundleError extends InvalidInputError {
  override readonly name: string = 'BundleError';
}

/** Server identity checks beyond the hostname (pins, subject patterns) that failed. */
export class IdentityError extends SvcnodeError {
  override readonly name: string = 'IdentityError';
}

/** A service svcnode depends on (Redis) cannot be reached; the CLI exits 5 (network failure). */
export class UnavailableError extends SvcnodeError {
  override readonly name: string = 'UnavailableError';
}

/** Narrow an unknown thrown value to an object with an optional string `code`. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
