import { BundleError, type ErrorCode } from '../errors.js';

/** A BundleError whose message starts with the file; never pass key bytes or passphrases in. */
export function bundleError(code: ErrorCode, file: string, message: string, hint: string, cause?: unknown): BundleError {
  return new BundleError(code, `${file}: ${message}`, { file, hint, ...(cause === undefined ? {} : { cause }) });
}

/** Hint shared by every "needs a passphrase" error. */
export const PASSPHRASE_HINT =
  'give the passphrase as "passphrase": {"env": "NAME"} or {"file": "PATH"} in the profile client section (certs inspect: --passphrase-env / --passphrase-file)';
