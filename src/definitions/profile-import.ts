import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { PassphraseSource, ProfileDocument } from '../pki/types.js';
import { BundleError, InvalidInputError, SvcnodeError } from '../errors.js';
import { bundleError } from '../pki/bundle-error.js';
import { orderChain } from '../pki/chain.js';
import { dateStatus } from '../pki/inspect.js';
import { ARGUMENT_FILE_HINTS, parseMaterial, readMaterial } from '../pki/material.js';
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
  /** The passphrase protecting the payload, and where the profile will read it from (a file by its absolute path). */
  passphrase?: { value: string; source: PassphraseSource };
  /** Trust anchors (files) for the servers this profile will call: their certificates are copied into `NAME/trust.pem`. */
  trust?: string[];
  force?: boolean;
  env?: NodeJS.ProcessEnv;
  now?: Date;
}

export interface ImportResult {
  profileFile: string;
  files: string[];
  profile: LoadedProfile;
  /** Where the profile reads the passphrase from, as written in it (a file relative to the profile when it lies under the profiles directory). */
  passphrase?: PassphraseSource;
  /** The `--trust` certificates copied into `NAME/trust.pem`, and the files they came from. */
  trust?: { file: string; certificates: number; from: string[]; ignoredKeys: string[] };
  /** `--force` without `--trust` left a `NAME/trust.pem` of an earlier import in place, no longer listed in trust.ca. */
  staleTrustFile?: string;
}

/** The `--trust` files' certificates, each once, in the order given; keys in them are neither read nor copied. */
async function trustCertificates(files: string[]): Promise<{ certificates: X509Certificate[]; from: string[]; ignoredKeys: string[] }> {
  const certificates: X509Certificate[] = [];
  const seen = new Set<string>();
  const from: string[] = [];
  const ignoredKeys: string[] = [];
  for (const file of files.map((f) => resolve(f))) {
    let material;
    try {
      material = await readMaterial(file, { keys: 'ignore', hints: ARGUMENT_FILE_HINTS });
    } catch (error) {
      if (error instanceof BundleError && error.code === 'SVCNODE_MISSING_PASSPHRASE') {
        throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#12 truststore is protected by a passphrase, and --trust takes none', `convert it to PEM first: openssl pkcs12 -in ${file} -nokeys -out ca.pem, then pass --trust ca.pem`, error.cause);
      }
      throw error;
    }
    if (material.certificates.length === 0) {
      throw bundleError('SVCNODE_NO_CERTIFICATE', file, 'the trust file contains no certificate', 'pass --trust the PEM or DER root and intermediate CA certificates that issued the server certificates');
    }
    if (material.ignoredKeys > 0) ignoredKeys.push(file);
    from.push(file);
    for (const cert of material.certificates) {
      if (seen.has(cert.fingerprint256)) continue;
      seen.add(cert.fingerprint256);
      certificates.push(cert);
    }
  }
  return { certificates, from, ignoredKeys };
}

/**
 * How the profile names a passphrase file: relative to the profile when the file lies under the
 * profiles directory (it travels with the profiles), else by its absolute path. It is never
 * copied: a passphrase is not spread to more places than the operator put it.
 */
function passphraseReference(source: PassphraseSource, dir: string): PassphraseSource {
  if (!('file' in source)) return source;
  const inside = relative(dir, resolve(source.file));
  const under = inside !== '' && inside !== '..' && !inside.startsWith(`..${sep}`) && !isAbsolute(inside);
  return { file: under ? inside.split(sep).join('/') : resolve(source.file) };
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
 * `NAME/client.key` (PKCS#8; encrypted with the payload's passphrase when it had one), the
 * `--trust` certificates as `NAME/trust.pem`, with mode 0600, and `NAME.json`, whose paths are
 * relative to it, so the profiles directory can be moved or copied whole. Everything is first
 * written to a staging folder beside the profiles and loaded from there exactly as the worker
 * would; only a profile that loads is moved into place, so a failed import leaves the directory
 * (and any profile it was to replace) as it was.
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
  // Copied, not referenced: a profile that names a downloaded CA file breaks when the file moves.
  const trust = o.trust && o.trust.length > 0 ? await trustCertificates(o.trust) : undefined;
  const passphrase = o.passphrase ? passphraseReference(o.passphrase.source, dir) : undefined;
  const docWith = (pass: PassphraseSource | undefined): ProfileDocument => ({
    name: o.name,
    client: { certificate: `${o.name}/client-chain.pem`, key: `${o.name}/client.key`, ...(pass ? { passphrase: pass } : {}) },
    ...(trust ? { trust: { ca: [`${o.name}/trust.pem`] } } : {}),
  });
  const json = (doc: ProfileDocument): string => `${JSON.stringify(doc, null, 2)}\n`;
  // Paths relative to the profiles directory; the same layout is staged, so the document's relative paths hold in both.
  const files: [string, string][] = [
    [join(o.name, 'client-chain.pem'), [leaf, ...chain].map((c) => c.toString()).join('')],
    [join(o.name, 'client.key'), String(keyPem)],
    ...(trust ? [[join(o.name, 'trust.pem'), trust.certificates.map((c) => c.toString()).join('')] as [string, string]] : []),
    [`${o.name}.json`, json(docWith(passphrase))],
  ];
  const profileIndex = files.length - 1;
  const finals = files.map(([path]) => join(dir, path));
  const previousTrust = join(dir, o.name, 'trust.pem');
  const staleTrustFile = o.force && !trust && existsSync(previousTrust) ? previousTrust : undefined;
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
    for (const [path, content] of files) await writeFile(join(stage, path), content, { mode: 0o600 });
    const stagedJson = join(stage, `${o.name}.json`);
    // A passphrase file named relative to the profiles directory is not under the staging folder:
    // the staged load reads it by its absolute path, and the document is then written as it will stay.
    if (o.passphrase) await writeFile(stagedJson, json(docWith(o.passphrase.source)), { mode: 0o600 });
    try {
      await loadProfile(stagedJson, loadOptions);
    } catch (error) {
      throw asPayloadError(error, stage);
    }
    if (o.passphrase) await writeFile(stagedJson, json(docWith(passphrase)), { mode: 0o600 });
    // An expired certificate would replace a working one for nothing: refused before anything moves.
    // One not valid yet is a renewal staged early: written (workers keep theirs until it is valid).
    const now = o.now ?? new Date();
    if (dateStatus(leaf, now) === 'expired') {
      throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `${STDIN}: the client certificate "${formatDn(leaf.subject)}" expired on ${new Date(leaf.validTo).toISOString()}; nothing was written`, {
        file: STDIN,
        hint: 'import its renewal (the PKI team or the registration portal issues it); the profile in place, if any, is untouched',
      });
    }
    const rollback = await moveIntoPlace(files.map(([path]) => [join(stage, path), join(dir, path)]), join(dir, o.name), stage);
    try {
      const profileFile = finals[profileIndex] as string;
      const profile = await loadProfile(profileFile, loadOptions);
      committed = true;
      return {
        profileFile,
        files: finals,
        profile,
        ...(passphrase ? { passphrase } : {}),
        ...(trust ? { trust: { file: previousTrust, certificates: trust.certificates.length, from: trust.from, ignoredKeys: trust.ignoredKeys } } : {}),
        ...(staleTrustFile ? { staleTrustFile } : {}),
      };
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
