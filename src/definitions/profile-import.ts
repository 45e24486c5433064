import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PassphraseSource, ProfileDocument } from '../pki/types.js';
import { InvalidInputError } from '../errors.js';
import { bundleError } from '../pki/bundle-error.js';
import { orderChain } from '../pki/chain.js';
import { parseMaterial } from '../pki/material.js';
import { loadProfile } from './profiles.js';
import type { LoadedProfile } from '../pki/types.js';

/** Source name used in messages for payloads read from standard input. */
export const STDIN = '<stdin>';

/**
 * Decode a registration payload: PEM text as is, otherwise base64 (whitespace ignored) of a
 * PKCS#12, DER or PEM bundle, as PKI device registrations return it.
 */
export function decodePayload(text: string): Buffer {
  if (text.includes('-----BEGIN ')) return Buffer.from(text, 'latin1');
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0) {
    throw bundleError('SVCNODE_NO_CERTIFICATE', STDIN, 'the payload is empty', 'pipe the base64 PKCS#12 or PEM payload into the command');
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    throw bundleError('SVCNODE_INVALID_BUNDLE', STDIN, 'the payload is neither PEM nor base64', 'pipe the payload exactly as the registration returned it (base64 PKCS#12 or PEM)');
  }
  return Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
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
 * 0600, and `NAME.json`; then load it exactly as the worker would.
 */
export async function importBundle(o: ImportOptions): Promise<ImportResult> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(o.name)) {
    throw new InvalidInputError('SVCNODE_USAGE', `invalid profile name "${o.name}"`, { hint: 'use letters, digits, ".", "_" and "-"' });
  }
  const material = parseMaterial(o.payload, STDIN, { passphrase: o.passphrase?.value });
  const { leaf, key } = pickIdentity(material.certificates, material.keys, material.pairedLeaf);
  const { chain } = orderChain(leaf, material.certificates);
  const dir = resolve(o.profilesDir);
  const folder = join(dir, o.name);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const keyPem = o.passphrase
    ? key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: o.passphrase.value })
    : key.export({ type: 'pkcs8', format: 'pem' });
  const doc: ProfileDocument = {
    name: o.name,
    client: { certificate: `${o.name}/client-chain.pem`, key: `${o.name}/client.key`, ...(o.passphrase ? { passphrase: o.passphrase.source } : {}) },
    ...(o.trust && o.trust.length > 0 ? { trust: { ca: o.trust.map((t) => resolve(t)) } } : {}),
  };
  const files: [string, string][] = [
    [join(folder, 'client-chain.pem'), [leaf, ...chain].map((c) => c.toString()).join('')],
    [join(folder, 'client.key'), String(keyPem)],
    [join(dir, `${o.name}.json`), `${JSON.stringify(doc, null, 2)}\n`],
  ];
  if (!o.force) {
    const existing = files.map(([f]) => f).find((f) => existsSync(f));
    if (existing) throw new InvalidInputError('SVCNODE_USAGE', `${existing} already exists`, { file: existing, hint: 'pass --force to replace the profile' });
  }
  for (const [file, content] of files) {
    // Written beside the target and renamed, so a worker never sees a half-written file.
    const temp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(temp, content, { mode: 0o600 });
      await rename(temp, file);
    } finally {
      await rm(temp, { force: true });
    }
  }
  const profile = await loadProfile(files[2]?.[0] as string, { ...(o.env ? { env: o.env } : {}), ...(o.now ? { now: o.now } : {}) });
  return { profileFile: files[2]?.[0] as string, files: files.map(([f]) => f), profile };
}
