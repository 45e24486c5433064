import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { PassphraseSource, ProfileDocument } from '../pki/types.js';
import { BundleError, InvalidInputError, SvcnodeError } from '../errors.js';
import { bundleError } from '../pki/bundle-error.js';
import { orderChain } from '../pki/chain.js';
import { dateStatus } from '../pki/inspect.js';
import { parseMaterial } from '../pki/material.js';
import { assertOneIdentity } from '../pki/pkcs12.js';
import { formatDn } from '../tls/identity.js';
import { loadProfile } from './profiles.js';
import type { LoadedProfile } from '../pki/types.js';

/** Source name used in messages for payloads read from standard input. */
export const STDIN = '<stdin>';

/**
 * Decode a registration payload: PEM text as is, otherwise base64 (whitespace ignored) of a
 * PKCS#12, DER or PEM bundle, as PKI device registrations return it. Unambiguous wrappers are
 * removed first: JSON string quotes and escapes (copied from a JSON response) and a
 * `data:…;base64,` prefix.
 */
export function decodePayload(text: string): Buffer {
  const unwrapped = unwrapPayload(text);
  if (unwrapped.includes('-----BEGIN ')) return Buffer.from(unwrapped, 'latin1');
  const compact = unwrapped.replace(/\s+/g, '');
  if (compact.length === 0) {
    throw bundleError('SVCNODE_NO_CERTIFICATE', STDIN, 'the payload is empty', 'pipe the base64 PKCS#12 or PEM payload into the command');
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    throw bundleError('SVCNODE_INVALID_BUNDLE', STDIN, 'the payload is neither PEM nor base64', 'pipe the payload exactly as the registration returned it (base64 PKCS#12 or PEM, optionally as a JSON string or a data: URL)');
  }
  return Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

const DATA_URL_PREFIX = /^data:[^,]*;base64,/i;

function unwrapPayload(text: string): string {
  let t = text.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch {
      throw bundleError('SVCNODE_INVALID_BUNDLE', STDIN, 'the payload is in double quotes but is not a valid JSON string', 'pipe the value exactly as the JSON response holds it, or without the quotes');
    }
    t = String(value).trim();
  }
  const prefix = DATA_URL_PREFIX.exec(t);
  return prefix ? t.slice(prefix[0].length) : t;
}

export interface ImportOptions {
  name: string;
  profilesDir: string;
  payload: Buffer;
  /** The passphrase protecting the payload, and where the profile will read it from. */
  passphrase?: { value: string; source: PassphraseSource };
  /** Trust anchors (files) for the servers this profile will call. */
  trust?: string[];
  force?: boolean;
  env?: NodeJS.ProcessEnv;
  now?: Date;
}

export interface ImportResult {
  profileFile: string;
  files: string[];
  profile: LoadedProfile;
}

function pickIdentity(certificates: X509Certificate[], keys: KeyObject[], paired: X509Certificate | undefined): { leaf: X509Certificate; key: KeyObject } {
  const key = keys[0];
  if (!key) throw bundleError('SVCNODE_NO_PRIVATE_KEY', STDIN, 'the payload holds no private key', 'import a PKCS#12 or a PEM bundle that contains the private key');
  const leaf = paired ?? certificates.find((c) => c.checkPrivateKey(key));
  if (!leaf) throw bundleError('SVCNODE_KEY_MISMATCH', STDIN, 'no certificate in the payload matches its private key', 'import the certificate issued for this key');
  return { leaf, key };
}

/**
 * Write a normalised profile from a payload: `NAME/client-chain.pem` (leaf, then issuers),
 * `NAME/client.key` (PKCS#8; encrypted with the payload's passphrase when it had one) with mode
 * 0600, and `NAME.json`. Everything is first written to a staging folder beside the profiles and
 * loaded from there exactly as the worker would; only a profile that loads is moved into place,
 * so a failed import leaves the directory (and any profile it was to replace) as it was.
 */
export async function importBundle(o: ImportOptions): Promise<ImportResult> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(o.name)) {
    throw new InvalidInputError('SVCNODE_USAGE', `invalid profile name "${o.name}"`, { hint: 'use letters, digits, ".", "_" and "-"' });
  }
  const material = parseMaterial(o.payload, STDIN, { passphrase: o.passphrase?.value });
  if (material.form === 'pkcs12') assertOneIdentity(STDIN, material.keys, material.certificates);
  const { leaf, key } = pickIdentity(material.certificates, material.keys, material.pairedLeaf);
  const { chain } = orderChain(leaf, material.certificates);
  const dir = resolve(o.profilesDir);
  const keyPem = o.passphrase
    ? key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: o.passphrase.value })
    : key.export({ type: 'pkcs8', format: 'pem' });
  const doc: ProfileDocument = {
    name: o.name,
    client: { certificate: `${o.name}/client-chain.pem`, key: `${o.name}/client.key`, ...(o.passphrase ? { passphrase: o.passphrase.source } : {}) },
    ...(o.trust && o.trust.length > 0 ? { trust: { ca: o.trust.map((t) => resolve(t)) } } : {}),
  };
  // Paths relative to the profiles directory; the same layout is staged, so the document's relative paths hold in both.
  const files: [string, string][] = [
    [join(o.name, 'client-chain.pem'), [leaf, ...chain].map((c) => c.toString()).join('')],
    [join(o.name, 'client.key'), String(keyPem)],
    [`${o.name}.json`, `${JSON.stringify(doc, null, 2)}\n`],
  ];
  const finals = files.map(([relative]) => join(dir, relative));
  if (!o.force) {
    const existing = finals.find((f) => existsSync(f));
    if (existing) throw new InvalidInputError('SVCNODE_USAGE', `${existing} already exists`, { file: existing, hint: 'pass --force to replace the profile' });
  }
  const loadOptions = { ...(o.env ? { env: o.env } : {}), ...(o.now ? { now: o.now } : {}) };
  const createdDir = await mkdir(dir, { recursive: true });
  // A dot folder: profile directories are scanned for *.json at their top level only.
  const stage = await mkdtemp(join(dir, `.${o.name}.import-`));
  let committed = false;
  try {
    await mkdir(join(stage, o.name), { mode: 0o700 });
    for (const [relative, content] of files) await writeFile(join(stage, relative), content, { mode: 0o600 });
    try {
      await loadProfile(join(stage, `${o.name}.json`), loadOptions);
    } catch (error) {
      throw asPayloadError(error, stage);
    }
    // An expired certificate would replace a working one for nothing: refused before anything moves.
    // One not valid yet is a renewal staged early: written (workers keep theirs until it is valid).
    const now = o.now ?? new Date();
    if (dateStatus(leaf, now) === 'expired') {
      throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `${STDIN}: the client certificate "${formatDn(leaf.subject)}" expired on ${new Date(leaf.validTo).toISOString()}; nothing was written`, {
        file: STDIN,
        hint: 'import its renewal (the PKI team or the registration portal issues it); the profile in place, if any, is untouched',
      });
    }
    const rollback = await moveIntoPlace(files.map(([relative]) => [join(stage, relative), join(dir, relative)]), join(dir, o.name), stage);
    try {
      const profile = await loadProfile(finals[2] as string, loadOptions);
      committed = true;
      return { profileFile: finals[2] as string, files: finals, profile };
    } catch (error) {
      await rollback();
      throw error;
    }
  } finally {
    await rm(stage, { recursive: true, force: true });
    if (!committed && createdDir !== undefined) await rm(createdDir, { recursive: true, force: true });
  }
}

/**
 * Rename staged files over their targets, the profile JSON last so a watcher never sees it
 * before its files. Replaced files are kept in the staging folder until the returned rollback
 * (or the caller's clean-up) is done with them.
 */
async function moveIntoPlace(moves: [string, string][], folder: string, stage: string): Promise<() => Promise<void>> {
  const createdFolder = !existsSync(folder);
  if (createdFolder) await mkdir(folder, { mode: 0o700 });
  const done: { target: string; backup: string | undefined }[] = [];
  const rollback = async (): Promise<void> => {
    for (const { target, backup } of done.reverse()) {
      if (backup) await rename(backup, target);
      else await rm(target, { force: true });
    }
    if (createdFolder) await rmdir(folder).catch(() => undefined);
  };
  try {
    for (const [index, [staged, target]] of moves.entries()) {
      let backup: string | undefined;
      if (existsSync(target)) {
        backup = join(stage, `previous-${index}-${basename(target)}`);
        await rename(target, backup);
      }
      done.push({ target, backup });
      await rename(staged, target);
    }
  } catch (error) {
    await rollback();
    throw error;
  }
  return rollback;
}

/** Errors found in the staged copy name the payload, not a staging path that is about to vanish. */
function asPayloadError(error: unknown, stage: string): unknown {
  if (!(error instanceof SvcnodeError) || error.file === undefined || !error.file.startsWith(stage)) return error;
  const escaped = stage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const unstage = (text: string): string => text.replace(new RegExp(`${escaped}[^\\s:]*`, 'g'), STDIN);
  const options = { file: STDIN, ...(error.hint ? { hint: unstage(error.hint) } : {}), ...(error.field ? { field: error.field } : {}), cause: error.cause };
  return error instanceof BundleError ? new BundleError(error.code, unstage(error.message), options) : new InvalidInputError(error.code, unstage(error.message), options);
}
