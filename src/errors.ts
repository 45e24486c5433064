/**
 * The error family of svcnode. Every error carries a stable `code` (ours, `SVCNODE_*`); the raw
 * Node/OpenSSL error stays available as `cause` and never overwrites ours.
 */
export type ErrorCode =
  | 'SVCNODE_INVALID_DEFINITION'
  | 'SVCNODE_INVALID_PROFILE'
  | 'SVCNODE_INVALID_BUNDLE'
  | 'SVCNODE_BAD_PASSPHRASE'
  | 'SVCNODE_MISSING_PASSPHRASE'
  | 'SVCNODE_KEY_MISMATCH'
  | 'SVCNODE_NO_CERTIFICATE'
  | 'SVCNODE_NO_PRIVATE_KEY'
  | 'SVCNODE_WEAK_KEY'
  | 'SVCNODE_CHAIN_BROKEN'
  | 'SVCNODE_BUNDLE_TOO_LARGE'
  | 'SVCNODE_FILE_NOT_FOUND'
  | 'SVCNODE_TEMPLATE'
  | 'SVCNODE_UNKNOWN_NODE'
  | 'SVCNODE_UNKNOWN_PROFILE'
  | 'SVCNODE_USAGE'
  | 'SVCNODE_PIN_MISMATCH'
  | 'SVCNODE_SUBJECT_MISMATCH'
  | 'SVCNODE_CLIENT_CERT_EXPIRED'
  | 'SVCNODE_RESPONSE_TOO_LARGE'
  | 'SVCNODE_CROSS_ORIGIN_REDIRECT'
  | 'SVCNODE_TIMEOUT'
  | 'SVCNODE_REDIS_UNAVAILABLE'
  | 'SVCNODE_INTERNAL';

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
