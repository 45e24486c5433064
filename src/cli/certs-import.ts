import { buffer } from 'node:stream/consumers';
import { isAbsolute, resolve } from 'node:path';
import { Command } from 'commander';
import { BundleError, InvalidInputError } from '../errors.js';
import { importBundle, decodePayload, STDIN } from '../definitions/profile-import.js';
import { bundleError } from '../pki/bundle-error.js';
import { derShape } from '../pki/der.js';
import { dateStatus, daysLeft } from '../pki/inspect.js';
import { readPassphraseFile } from '../pki/passphrase.js';
import type { PassphraseSource } from '../definitions/types.js';
import { formatDn } from '../tls/identity.js';
import { printJson, runAction, type CliIo } from './io.js';
import { errorDocument } from './json-output.js';

interface ImportCliOptions {
  name: string;
  profiles?: string;
  passphraseEnv?: string;
  passphraseFile?: string;
  trust?: string[];
  force?: boolean;
  json?: boolean;
}

async function passphrase(io: CliIo, o: ImportCliOptions): Promise<{ value: string; source: PassphraseSource } | undefined> {
  if (o.passphraseEnv !== undefined) {
    const value = io.env[o.passphraseEnv];
    if (value === undefined) throw new InvalidInputError('SVCNODE_MISSING_PASSPHRASE', `environment variable ${o.passphraseEnv} (the passphrase) is not set`, { hint: `export ${o.passphraseEnv} before running the command` });
    return { value, source: { env: o.passphraseEnv } };
  }
  if (o.passphraseFile !== undefined) {
    const file = resolve(o.passphraseFile);
    return { value: await readPassphraseFile(file), source: { file } };
  }
  return undefined;
}

/** Where the written profile reads the passphrase from: referenced, never copied. */
function passphraseLine(source: PassphraseSource): string {
  if ('env' in source) return `read from environment variable ${source.env} (set it wherever the profile is used)`;
  return isAbsolute(source.file)
    ? `read from ${source.file}, by its absolute path: it lies outside the profiles directory and is not copied, so every host using this profile needs it at that path`
    : `read from ${source.file}, relative to the profile: it lies under the profiles directory and travels with it (it is not copied)`;
}

/** The payload's passphrase is given to this command, not to a profile (which import writes). */
const IMPORT_PASSPHRASE_HINT = 'pass the payload passphrase with certs import --passphrase-env NAME or --passphrase-file PATH; the profile then reads it from the same place';

function withImportHint(error: unknown): unknown {
  if (error instanceof BundleError && error.code === 'SVCNODE_MISSING_PASSPHRASE' && error.file === STDIN) {
    return new BundleError(error.code, error.message, { file: error.file, hint: IMPORT_PASSPHRASE_HINT, cause: error.cause });
  }
  return error;
}

/** `svcnode certs import --name N`: a base64 PKCS#12 or PEM payload on stdin becomes a profile. */
export function importCommand(io: CliIo, input: NodeJS.ReadableStream = process.stdin): Command {
  return new Command('import')
    .description('create a profile from a base64 PKCS#12 or PEM payload on stdin (as PKI device registrations return it)')
    .requiredOption('--name <name>', 'profile name (writes PROFILES/NAME.json and PROFILES/NAME/)')
    .option('--profiles <dir>', 'profiles directory (default: $SVCNODE_PROFILES, else ./profiles)')
    .option('--passphrase-env <name>', 'environment variable holding the payload passphrase; the profile reads it from there too')
    .option('--passphrase-file <file>', 'file holding the payload passphrase; the profile reads it from there too (referenced, not copied: relative when under the profiles directory, else absolute)')
    .option('--trust <file...>', 'CA certificate files that verify the servers this profile calls (copied into PROFILES/NAME/trust.pem)')
    .option('--force', 'replace an existing profile')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((o: ImportCliOptions) =>
      runAction(io, async () => {
        const raw = await buffer(input);
        // The file itself piped in, not its base64: said so, with the two ways that work.
        if (derShape(raw) === 'pkcs12') {
          throw bundleError('SVCNODE_INVALID_BUNDLE', STDIN, 'a binary PKCS#12 file, where the command reads its base64 (as registrations return it)', 'pipe its base64 instead (base64 -w0 FILE.p12 | svcnode certs import …), or point a profile\'s client.pkcs12 at the file');
        }
        const payload = decodePayload(raw.toString('utf8'));
        const pass = await passphrase(io, o);
        const { profile, profileFile, files, passphrase: reference, trust, staleTrustFile } = await importBundle({
          name: o.name,
          profilesDir: o.profiles ?? io.env.SVCNODE_PROFILES ?? 'profiles',
          payload,
          ...(pass ? { passphrase: pass } : {}),
          ...(o.trust ? { trust: o.trust } : {}),
          ...(o.force ? { force: true } : {}),
          env: io.env,
        }).catch((error: unknown) => {
          throw withImportHint(error);
        });
        const leaf = profile.client?.leaf;
        const now = new Date();
        const status = leaf ? dateStatus(leaf, now) : 'valid';
        const soon = profile.findings.some((f) => f.code === 'CERT_EXPIRES_SOON' && f.role === 'client');
        const summary = {
          profile: profile.name,
          file: profileFile,
          files,
          status: status === 'valid' ? (soon ? 'expires_soon' : 'valid') : status,
          subject: leaf ? formatDn(leaf.subject) : null,
          validFrom: leaf ? new Date(leaf.validFrom).toISOString() : null,
          validTo: leaf ? new Date(leaf.validTo).toISOString() : null,
          daysLeft: leaf ? daysLeft(leaf, now) : null,
          ...(reference ? { passphrase: reference } : {}),
          ...(trust ? { trust } : {}),
          findings: profile.findings,
        };
        if (o.json) printJson(io, summary);
        else {
          io.stdout(
            [
              `profile ${summary.profile} written to ${summary.file}`,
              `  client   ${summary.subject ?? '(none)'}`,
              `  status   ${summary.status.toUpperCase()}`,
              `  valid    ${summary.validFrom ?? '?'} → ${summary.validTo ?? '?'} (${summary.daysLeft ?? '?'} days left)`,
              ...(trust ? [`  trust    ${trust.file}: ${trust.certificates} certificate${trust.certificates === 1 ? '' : 's'} copied from ${trust.from.join(', ')} (the profile no longer needs ${trust.from.length === 1 ? 'that file' : 'those files'})`] : []),
              ...(trust && trust.ignoredKeys.length > 0 ? [`  note     the private key in ${trust.ignoredKeys.join(', ')} was not copied: trust files hold CA certificates only`] : []),
              ...(reference ? [`  passphrase ${passphraseLine(reference)}`] : []),
              ...(staleTrustFile ? [`  note     ${staleTrustFile} of the replaced profile is kept but no longer listed (no --trust): servers are verified against the system roots; pass --trust again to keep trusting its CAs`] : []),
              ...profile.findings.filter((f) => f.severity !== 'info').map((f) => `  ${f.severity} ${f.code}: ${f.message}`),
              ...(status === 'not_yet_valid' ? ['  note     a renewal staged early: running workers keep the certificate they use until this one becomes valid, then switch to it'] : []),
            ].join('\n'),
          );
        }
        // Written either way: an expired certificate was refused before anything was (exit 2).
        return 0;
      }, o.json ? errorDocument : undefined),
    );
}
