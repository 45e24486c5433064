import { dirname, resolve } from 'node:path';
import type { PassphraseSource } from './types.js';
import { bundleError } from './bundle-error.js';
import { readLimited } from './material.js';

const MAX_PASSPHRASE_FILE_BYTES = 64 * 1024;

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
  return readPassphraseFile(resolve(dirname(profileFile), source.file));
}

/**
 * A passphrase file's content with one trailing newline (LF or CRLF) trimmed, and without the
 * byte-order mark Windows editors write first (UTF-8, or UTF-16 as Notepad's "Unicode"): the
 * mark is invisible and never part of a passphrase.
 */
export async function readPassphraseFile(file: string): Promise<string> {
  const bytes = await readLimited(file, MAX_PASSPHRASE_FILE_BYTES);
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
