import { dirname, resolve } from 'node:path';
import type { PassphraseSource } from './types.js';
import { bundleError } from './bundle-error.js';
import { readLimited, type FileHints } from './material.js';

const MAX_PASSPHRASE_FILE_BYTES = 64 * 1024;

/** A profile's passphrase.file: not a certificate file, so its own hints. */
const PASSPHRASE_FILE_HINTS: FileHints = {
  what: 'a passphrase file',
  notAFile: 'point passphrase.file at a regular file that holds only the passphrase, or pass the passphrase in an environment variable ({"env": NAME})',
  missing: 'check the path and its permissions; passphrase.file resolves against the profile file',
};

/** A passphrase file named on the command line (`--passphrase-file`). */
export const PASSPHRASE_ARGUMENT_HINTS: FileHints = {
  what: 'a passphrase file',
  notAFile: 'pass --passphrase-file a regular file that holds only the passphrase, or use --passphrase-env NAME',
  missing: 'check the path and its permissions (a relative path resolves against the current directory)',
};

/**
 * Resolve a passphrase source: `{"env": NAME}` from the injected environment, or `{"file": PATH}`
 * relative to the profile with one trailing newline trimmed. Never inline, never echoed.
 */
export async function resolvePassphrase(source: PassphraseSource | undefined, profileFile: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (source === undefined) return undefined;
  if ('env' in source) {
    const value = env[source.env];
    if (value === undefined) {
      throw bundleError('SVCNODE_MISSING_PASSPHRASE', profileFile, `environment variable ${source.env} (the passphrase) is not set`, `export ${source.env} in the environment of the svcnode process`);
    }
    return value;
  }
  return readPassphraseFile(resolve(dirname(profileFile), source.file), PASSPHRASE_FILE_HINTS);
}

/**
 * A passphrase file's content with one trailing newline (LF or CRLF) trimmed, and without the
 * byte-order mark Windows editors write first (UTF-8, or UTF-16 as Notepad's "Unicode"): the
 * mark is invisible and never part of a passphrase.
 */
export async function readPassphraseFile(file: string, hints: FileHints = PASSPHRASE_ARGUMENT_HINTS): Promise<string> {
  const bytes = await readLimited(file, MAX_PASSPHRASE_FILE_BYTES, hints);
  return decodedText(bytes).replace(/\r?\n$/, '');
}

function decodedText(bytes: Buffer): string {
  const even = bytes.length % 2 === 0;
  if (even && bytes[0] === 0xff && bytes[1] === 0xfe) return bytes.subarray(2).toString('utf16le');
  if (even && bytes[0] === 0xfe && bytes[1] === 0xff) return Buffer.from(bytes.subarray(2)).swap16().toString('utf16le');
  return bytes.toString('utf8').replace(/^\uFEFF/, '');
}

/** The passphrase source as hashed into a profile's version: where it comes from, not what it is. */
export function describeSource(source: PassphraseSource | undefined, profileFile: string): string {
  if (source === undefined) return 'none';
  return 'env' in source ? `env:${source.env}` : `file:${resolve(dirname(profileFile), source.file)}`;
}
