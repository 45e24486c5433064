import { createHash, type X509Certificate } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { PassphraseSource, ProfileDocument } from '../pki/types.js';
import { parseDocumentText, readJsonText, validateDocument } from './validator.js';
import { BundleError, InvalidInputError, errorMessage } from '../errors.js';
import { bundleError } from '../pki/bundle-error.js';
import { isSelfSigned } from '../pki/chain.js';
import { crlFindings, loadCrls, missingLevelFindings } from '../pki/revocation-load.js';
import { isCrlUrl, processCrlFetcher, type CrlFetcher } from '../pki/crl-fetch.js';
import { caDistributionPoints, DistributionPointCrls, loadCaDistributionPoints } from '../pki/distribution-points.js';
import { loadClientIdentity, type ClientSource } from '../pki/client-identity.js';
import { clientPath, clientPathFindings } from '../pki/client-path.js';
import { dateFindings } from '../pki/findings.js';
import { oneLineName } from '../pki/inspect.js';
import { readMaterial, type Material } from '../pki/material.js';
import { describeSource, resolvePassphrase } from '../pki/passphrase.js';
import type { ClientIdentity, Finding, LoadedProfile } from '../pki/types.js';

/** Loading certificate profiles: every check runs here, at load time, never per call. */

export interface LoadProfileOptions {
  /** Reference time for validity checks. @defaultValue new Date() */
  now?: Date;
  /** Where `{"env": NAME}` passphrases are read. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** Where trust.crl URLs are downloaded and shared. @defaultValue a process-wide in-memory fetcher */
  crlFetcher?: CrlFetcher;
}

/** Policy defaults for fields a profile may omit. */
export const PROFILE_DEFAULTS = {
  /** Smallest RSA client key accepted. */
  minKeyBits: 2048,
  /** Certificates expiring within this many days get a CERT_EXPIRES_SOON warning. */
  expiryWarningDays: 90,
} as const;

/** A profile's name: its file name without `.json`. */
export function profileName(file: string): string {
  return basename(file).replace(/\.json$/i, '');
}

/** Load, validate and normalise one profile; throws InvalidInputError for unusable material. */
export async function loadProfile(file: string, opts: LoadProfileOptions = {}): Promise<LoadedProfile> {
  const path = resolve(file);
  const now = opts.now ?? new Date();
  const env = opts.env ?? process.env;
  const doc = validateDocument<ProfileDocument>('profile', parseDocumentText('profile', await readJsonText(path, 'SVCNODE_INVALID_PROFILE'), path), path);
  const name = profileName(path);
  if (doc.name !== undefined && doc.name !== name) {
    throw new InvalidInputError('SVCNODE_INVALID_PROFILE', `${path}: "name" is "${doc.name}" but the file is named ${basename(path)}`, {
      file: path,
      field: '/name',
      hint: `rename the file to ${doc.name}.json or set "name" to "${name}" (nodes refer to profiles by file name)`,
    });
  }
  const policy = {
    minKeyBits: Math.max(PROFILE_DEFAULTS.minKeyBits, doc.policy?.minKeyBits ?? 0),
    expiryWarningDays: doc.policy?.expiryWarningDays ?? PROFILE_DEFAULTS.expiryWarningDays,
    now,
  };
  const at = (relative: string): string => resolve(dirname(path), relative);
  const findings: Finding[] = [];
  const materials: Material[] = [];
  const version = createHash('sha256').update(JSON.stringify(doc));

  let client: ClientIdentity | undefined;
  if (doc.client) {
    const source: ClientSource = 'pkcs12' in doc.client
      ? { kind: 'pkcs12', pkcs12: at(doc.client.pkcs12) }
      : { kind: 'pem', certificate: at(doc.client.certificate), key: at(doc.client.key) };
    const passphrase = await resolvePassphrase(doc.client.passphrase, path, env);
    const loaded = await loadClientIdentity(source, passphrase, policy).catch((error: unknown) => {
      throw withPassphraseSource(error, doc.client?.passphrase, path);
    });
    client = loaded.identity;
    findings.push(...loaded.findings);
    materials.push(...loaded.materials);
    version.update(`\0passphrase:${describeSource(doc.client.passphrase, path)}`);
  }

  const trusted: X509Certificate[] = [];
  /** Each trust.ca certificate's file, by fingerprint. */
  const seen = new Map<string, string>();
  for (const relative of doc.trust?.ca ?? []) {
    const material = await readTrustMaterial(at(relative));
    materials.push(material);
    if (material.certificates.length === 0) {
      throw bundleError('SVCNODE_NO_CERTIFICATE', material.file, 'the trust file contains no certificate', 'point trust.ca at the PEM or DER root and intermediate CA certificates that issued the server certificates');
    }
    if (material.ignoredKeys > 0) {
      findings.push({ severity: 'warning', code: 'KEY_IN_TRUST_FILE', file: material.file, message: `${material.file} contains a private key; it is ignored`, hint: 'trust files need only CA certificates; remove the key from this file' });
    }
    for (const cert of material.certificates) {
      if (seen.has(cert.fingerprint256)) continue;
      seen.set(cert.fingerprint256, material.file);
      trusted.push(cert);
      findings.push(...dateFindings(cert, 'trust', material.file, now, policy.expiryWarningDays));
    }
  }
  const systemRoots = doc.trust?.systemRoots === true || trusted.length === 0;
  findings.push(...trustFindings(trusted, systemRoots, path, client));
  if (client) {
    const certFile = client.sources[0] ?? path;
    const sent = client.chain.map((cert) => ({ cert, role: 'chain' as const, file: certFile }));
    const anchors = trusted.map((cert) => ({ cert, role: 'trust' as const, file: seen.get(cert.fingerprint256) ?? path }));
    findings.push(...clientPathFindings(clientPath({ cert: client.leaf, role: 'client', file: certFile }, sent, anchors)));
  }
  if (trusted.length === 0) {
    findings.push({ severity: 'info', code: 'SYSTEM_ROOTS', file: path, message: 'no trust.ca: server certificates are verified against the system (Mozilla) roots', hint: 'list your private root and intermediate CAs in trust.ca to pin trust to them' });
  }

  const fetcher = opts.crlFetcher ?? processCrlFetcher;
  const crlEntries = (doc.trust?.crl ?? []).map((entry) => (isCrlUrl(entry) ? entry : at(entry)));
  const revocation = Object.freeze({
    mode: doc.trust?.revocation?.mode ?? 'hard',
    ocsp: doc.trust?.revocation?.ocsp ?? 'off',
    distributionPoints: doc.trust?.revocation?.distributionPoints ?? false,
  });
  const crls = await loadCrls(crlEntries, trusted, fetcher, findings, revocation.mode);
  const followPoints = revocation.distributionPoints;
  const caPoints = followPoints ? caDistributionPoints(trusted, new Set(crlEntries)) : [];
  crls.push(...(await loadCaDistributionPoints(caPoints, trusted, fetcher, findings, revocation.mode)));
  for (const { crl, bytes } of crls) version.update(`\0${crl.source}\0`).update(createHash('sha256').update(bytes).digest());
  const loadedCrls = Object.freeze(crls.map((c) => c.crl));
  findings.push(...crlFindings(loadedCrls, { client, trust: trusted, mode: revocation.mode, now }));
  const crlsUnavailable = findings.filter((f) => f.code === 'CRL_UNAVAILABLE').map((f) => Object.freeze({ url: f.file ?? '', message: f.message }));
  // Checked only where OpenSSL checks every level itself: hard mode with trust.crl and without distribution points.
  if (revocation.mode === 'hard' && !followPoints && crlEntries.length > 0) {
    findings.push(...missingLevelFindings(loadedCrls, trusted, crlsUnavailable.map((u) => u.url)));
  }

  const distributionPoints = followPoints ? await DistributionPointCrls.create(name, trusted, fetcher, new Set([...crlEntries, ...loadedCrls.map((c) => c.source)]), caPoints.length) : undefined;

  for (const material of materials) {
    version.update(`\0${material.file}\0`).update(createHash('sha256').update(material.bytes).digest());
  }

  return Object.freeze({
    name,
    file: path,
    version: version.digest('hex'),
    client,
    trust: Object.freeze({ certificates: Object.freeze(trusted), systemRoots, crls: loadedCrls, revocation, ...(distributionPoints ? { distributionPoints } : {}), ...(crlsUnavailable.length > 0 ? { crlsUnavailable: Object.freeze(crlsUnavailable) } : {}) }),
    policy: Object.freeze({ minKeyBits: policy.minKeyBits, expiryWarningDays: policy.expiryWarningDays }),
    findings: Object.freeze(findings),
  });
}

/**
 * A trust.ca file. trust has no passphrase setting, so a PKCS#12 truststore that asks for one
 * gets a message that says how to make it usable rather than the client-passphrase hint.
 */
async function readTrustMaterial(file: string): Promise<Material> {
  try {
    return await readMaterial(file, { keys: 'ignore' });
  } catch (error) {
    if (error instanceof BundleError && error.code === 'SVCNODE_MISSING_PASSPHRASE') {
      throw bundleError('SVCNODE_INVALID_BUNDLE', file, 'the PKCS#12 truststore in trust.ca is protected by a passphrase, and trust.ca takes none', `use a password-less PKCS#12 truststore, or convert it to PEM: openssl pkcs12 -in ${file} -nokeys -out trust.pem (then list trust.pem in trust.ca)`, error.cause);
    }
    throw error;
  }
}

/**
 * Why a profile file cannot be used, as an InvalidInputError: one already is; anything else a load
 * throws is the profile's problem too, at start as on reload, so one profile never stops the others.
 */
export function profileLoadError(file: string, error: unknown): InvalidInputError {
  if (error instanceof InvalidInputError) return error;
  return new InvalidInputError('SVCNODE_INVALID_BUNDLE', `${file}: ${errorMessage(error)}`, { cause: error, file });
}

export interface ProfilesDirResult {
  profiles: Map<string, LoadedProfile>;
  /** Profiles that could not be loaded; the others still are. */
  errors: { file: string; error: InvalidInputError }[];
}

/** Load every `*.json` profile in `dir`; a bad profile is reported and skipped. */
export async function loadProfilesDir(dir: string, opts: LoadProfileOptions = {}): Promise<ProfilesDirResult> {
  const root = resolve(dir);
  let entries: string[];
  try {
    entries = (await readdir(root)).filter((f) => f.toLowerCase().endsWith('.json')).sort();
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${root}: cannot read the profiles directory`, { cause, file: root, hint: 'pass --profiles DIR or set SVCNODE_PROFILES to the directory holding NAME.json profiles' });
  }
  const result: ProfilesDirResult = { profiles: new Map(), errors: [] };
  // Concurrently: a profile whose CRL URL does not answer must not hold up the others (10 s each).
  const loaded = await Promise.all(
    entries.map(async (entry): Promise<{ file: string; profile: LoadedProfile } | { file: string; error: InvalidInputError }> => {
      const file = join(root, entry);
      try {
        return { file, profile: await loadProfile(file, opts) };
      } catch (error) {
        return { file, error: profileLoadError(file, error) };
      }
    }),
  );
  for (const one of loaded) {
    if ('profile' in one) result.profiles.set(one.profile.name, one.profile);
    else result.errors.push(one);
  }
  return result;
}

/** Turn a load error into an error finding (`SVCNODE_KEY_MISMATCH` → `KEY_MISMATCH`). */
export function errorFinding(error: InvalidInputError): Finding {
  const prefix = error.file === undefined ? '' : `${error.file}: `;
  const message = prefix && error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  const finding: Finding = { severity: 'error', code: error.code.replace(/^SVCNODE_/, ''), message };
  if (error.file !== undefined) finding.file = error.file;
  if (error.hint !== undefined) finding.hint = error.hint;
  return finding;
}

/** Everything about a profile as findings, for `certs verify`: load errors become error findings. */
export async function verifyProfile(file: string, opts: LoadProfileOptions = {}): Promise<{ profile?: LoadedProfile; findings: Finding[] }> {
  try {
    const profile = await loadProfile(file, opts);
    return { profile, findings: [...profile.findings] };
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    return { findings: [errorFinding(error)] };
  }
}

/**
 * A profile by name from a directory (`DIR/NAME.json`), loaded on demand: the profile source of
 * a dry-run, handed to invoke() as its `profile` dependency so bad material ends as an
 * invalid_input Result exactly as in the worker.
 */
export function profilesFrom(dir: string, opts: LoadProfileOptions = {}): (name: string) => Promise<LoadedProfile> {
  const root = resolve(dir);
  return async (name) => {
    const file = join(root, `${name}.json`);
    try {
      return await loadProfile(file, opts);
    } catch (error) {
      if (error instanceof InvalidInputError && error.code === 'SVCNODE_FILE_NOT_FOUND' && error.file === file) {
        throw new InvalidInputError('SVCNODE_UNKNOWN_PROFILE', `profile "${name}" does not exist: ${file} cannot be read`, {
          file,
          field: '/tls/profile',
          hint: 'pass --profiles DIR (or set SVCNODE_PROFILES) to the directory holding the profile',
        });
      }
      throw error;
    }
  };
}

/** A wrong passphrase names where it came from: the file (whose byte-order mark or second line may be the cause) or the variable. */
function withPassphraseSource(error: unknown, source: PassphraseSource | undefined, profileFile: string): unknown {
  if (!(error instanceof BundleError) || error.code !== 'SVCNODE_BAD_PASSPHRASE' || source === undefined) return error;
  const where = 'env' in source ? `environment variable ${source.env}` : `file ${resolve(dirname(profileFile), source.file)}`;
  return new BundleError(error.code, `${error.message} (the passphrase from ${where})`, { ...(error.file ? { file: error.file } : {}), hint: (error.hint ?? 'check the passphrase').replace(/^check the passphrase/, `check the passphrase in ${where}`), cause: error.cause });
}

/**
 * What trust.ca (and the client chain beside it) cannot do: anchor nothing (no root and no system
 * roots: every call fails), hold server or client certificates that verify nothing, or leave our
 * client certificate's issuer out (sent by neither the chain file nor trust.ca).
 */
function trustFindings(trusted: readonly X509Certificate[], systemRoots: boolean, path: string, client: ClientIdentity | undefined): Finding[] {
  const findings: Finding[] = [];
  for (const cert of trusted) {
    if (cert.ca || isSelfSigned(cert)) continue;
    findings.push({ severity: 'warning', code: 'TRUST_NOT_CA', file: path, subject: oneLineName(cert.subject), message: `trust.ca holds "${oneLineName(cert.subject)}", which is not a CA certificate: it verifies no server`, hint: 'list the root and intermediate CAs that issued the server certificates, not the server (or client) certificate itself' });
  }
  if (!systemRoots && trusted.length > 0 && !trusted.some(isSelfSigned)) {
    const top = trusted.find((c) => c.ca) ?? trusted[0];
    findings.push({
      severity: 'error',
      code: 'TRUST_NO_ROOT',
      file: path,
      message: `trust.ca holds no root (self-signed) certificate${top ? `; "${oneLineName(top.subject)}" is issued by "${oneLineName(top.issuer)}"` : ''}: OpenSSL ends every chain at a root in trust.ca, so every server fails as untrusted`,
      hint: `add the root that issued it${top ? ` ("${oneLineName(top.issuer)}")` : ''} to trust.ca (Java truststores accept an intermediate alone; OpenSSL does not)`,
    });
  }
  const leaf = client?.leaf;
  if (client && leaf && !isSelfSigned(leaf)) {
    const issuers = [...client.chain, ...trusted];
    if (!issuers.some((c) => leaf.checkIssued(c))) {
      findings.push({ severity: 'warning', code: 'CLIENT_CHAIN_INCOMPLETE', file: client.sources[0] ?? path, subject: oneLineName(leaf.subject), message: `the issuer of the client certificate, "${oneLineName(leaf.issuer)}", is neither in ${client.sources[0] ?? 'the certificate file'} nor in trust.ca: only the certificate is sent. That is enough when "${oneLineName(leaf.issuer)}" is itself the root the server trusts; when it is an intermediate, a server that trusts only the root refuses the certificate`, hint: `if "${oneLineName(leaf.issuer)}" is an intermediate CA, append its certificate to the client certificate file (or the PKCS#12), after the client certificate; if it is the root the server trusts, nothing is missing` });
    }
  }
  return findings;
}
