import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { InvalidInputError, SvcnodeError } from '../errors.js';
import { EXIT } from '../failures/categories.js';
import { describeCertificate, describeKey, type CertificateDescription, type KeyDescription } from '../pki/inspect.js';
import { findRevoked } from '../pki/crl.js';
import { ARGUMENT_FILE_HINTS, readMaterial, type MaterialForm } from '../pki/material.js';
import { profileCertificates } from '../pki/certificates.js';
import { readPassphraseFile } from '../pki/passphrase.js';
import { signsTls13 } from '../tls/sigalgs.js';
import { errorFinding, loadProfilesDir, verifyProfile } from '../definitions/profiles.js';
import type { CertificateRole, Finding, LoadedProfile } from '../pki/types.js';
import { importCommand } from './certs-import.js';
import { DAY_MS, initCaCommand, issueCommand } from './certs-mint.js';
import { crlStatusRows, formatCrlTable } from './crl-status.js';
import { formatTable } from './table.js';
import { formatError, printJson, printable, runAction, subcommand, type CliIo } from './io.js';
import { errorDocument } from './json-output.js';

/** `svcnode certs …`: inspect, verify and monitor bundles; mint a private CA for test setups. */

export function certsCommand(io: CliIo): Command {
  return subcommand('certs')
    .description('inspect, verify and monitor certificate bundles; mint a private CA for test setups')
    .addCommand(inspectCommand(io))
    .addCommand(verifyCommand(io))
    .addCommand(statusCommand(io))
    .addCommand(initCaCommand(io))
    .addCommand(issueCommand(io))
    .addCommand(importCommand(io).exitOverride());
}

// ---------------------------------------------------------------------------------------------
// certs inspect

interface InspectedFile {
  file: string;
  form: MaterialForm;
  certificates: (CertificateDescription & { alias?: string })[];
  keys: (KeyDescription & { matchesCertificate: number | null; alias?: string })[];
}

async function passphraseFrom(io: CliIo, o: { passphraseEnv?: string; passphraseFile?: string }): Promise<string | undefined> {
  if (o.passphraseEnv !== undefined) {
    const value = io.env[o.passphraseEnv];
    if (value === undefined) {
      throw new InvalidInputError('SVCNODE_MISSING_PASSPHRASE', `environment variable ${o.passphraseEnv} (the passphrase) is not set`, { hint: `export ${o.passphraseEnv} before running the command` });
    }
    return value;
  }
  return o.passphraseFile === undefined ? undefined : readPassphraseFile(resolve(o.passphraseFile));
}

async function inspectFile(file: string, passphrase: string | undefined, now: Date): Promise<InspectedFile> {
  const m = await readMaterial(resolve(file), { passphrase, hints: ARGUMENT_FILE_HINTS });
  // A PKCS#12 entry's friendlyName is the alias keytool lists (and -srcalias takes).
  const alias = (name: string | undefined): { alias?: string } => (name === undefined ? {} : { alias: name });
  const certificates = m.certificates.map((c, i) => ({ ...describeCertificate(c, now), ...alias(m.aliases?.certificates[i]) }));
  const keys = m.keys.map((k, i) => {
    const key = describeKey(k);
    const index = certificates.findIndex((c) => c.spkiPin === key.spkiPin);
    return { ...key, matchesCertificate: index >= 0 ? index + 1 : null, ...alias(m.aliases?.keys[i]) };
  });
  return { file: m.file, form: m.form, certificates, keys };
}

/** "rsa 2048", with what svcnode will make of the key when that is not plain use. */
function keyLabel(k: { keyType: string; keyBits?: number; curve?: string }): string {
  const label = `${k.keyType} ${k.keyBits ?? k.curve ?? ''}`.trim();
  if (k.keyType === 'rsa' && k.keyBits !== undefined && k.keyBits < 2048) return `${label} (below 2048 bits: refused as a client key)`;
  if (!signsTls13({ type: k.keyType, ...(k.curve === undefined ? {} : { curve: k.curve }) })) return `${label} (as a client key: TLS 1.2 only)`;
  return label;
}

function formatInspected(f: InspectedFile): string {
  const lines = [`${f.file} (${f.form})`];
  f.certificates.forEach((c, i) => {
    const left = c.daysLeft < 0 ? `EXPIRED ${-c.daysLeft} days ago` : `${c.daysLeft} days left`;
    lines.push(`  certificate ${i + 1}: ${c.subject}`);
    if (c.alias !== undefined) lines.push(`    alias     ${printable(c.alias)}`);
    lines.push(
      `    issuer    ${c.issuer}${c.selfSigned ? ' (self-signed)' : ''}`,
      `    serial    ${c.serial}`,
      `    valid     ${c.validFrom} → ${c.validTo} (${left})`,
      `    key       ${keyLabel(c)}`,
      `    CA        ${c.isCa ? 'yes' : 'no'}`,
      `    EKU       ${c.extKeyUsage.join(', ') || '(any)'}`,
    );
    if (c.subjectAltNames.length > 0) lines.push(`    SAN       ${c.subjectAltNames.join(', ')}`);
    lines.push(`    sha256    ${c.fingerprint256}`, `    SPKI pin  ${c.spkiPin}`);
  });
  for (const k of f.keys) {
    const match = k.matchesCertificate === null ? 'no certificate in this file (certs verify checks a key against a certificate in another file)' : `certificate ${k.matchesCertificate}`;
    lines.push(`  private key: ${keyLabel(k)}, matches ${match}`, ...(k.alias === undefined ? [] : [`    alias     ${printable(k.alias)}`]), `    SPKI pin  ${k.spkiPin}`);
  }
  if (f.certificates.length === 0 && f.keys.length === 0) lines.push('  (no certificates or keys)');
  return lines.join('\n');
}

function inspectCommand(io: CliIo): Command {
  return subcommand('inspect')
    .description('show every certificate (and key type) in PEM, DER or PKCS#12 files')
    .argument('<files...>', 'certificate, key or PKCS#12 files; the format is detected by content')
    .addOption(new Option('--passphrase-env <name>', 'environment variable holding the passphrase of encrypted keys or PKCS#12 files').conflicts('passphraseFile'))
    .option('--passphrase-file <file>', 'file holding the passphrase (one trailing newline is ignored)')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((files: string[], o: { passphraseEnv?: string; passphraseFile?: string; json?: boolean }) =>
      runAction(io, async () => {
        const passphrase = await passphraseFrom(io, o);
        const now = new Date();
        const inspected: InspectedFile[] = [];
        const errors: SvcnodeError[] = [];
        for (const file of files) {
          try {
            inspected.push(await inspectFile(file, passphrase, now));
          } catch (error) {
            if (!(error instanceof InvalidInputError)) throw error;
            errors.push(error);
          }
        }
        if (o.json) {
          printJson(io, { files: inspected, errors: errors.map((e) => ({ file: e.file, code: e.code, message: e.message, hint: e.hint })) });
        } else {
          if (inspected.length > 0) io.stdout(inspected.map(formatInspected).join('\n\n'));
          for (const e of errors) io.stderr(formatError(e));
        }
        return errors.length > 0 ? EXIT.invalidInput : EXIT.ok;
      }, o.json ? errorDocument : undefined),
    );
}

// ---------------------------------------------------------------------------------------------
// certs verify

function formatFinding(f: Finding, fallbackFile: string): string {
  const file = f.file ?? fallbackFile;
  // Messages of errors about a file start with it; the line names it once.
  const message = f.message.startsWith(`${file}: `) ? f.message.slice(file.length + 2) : f.message;
  return `${f.severity} ${f.code} ${file}: ${message}${f.hint ? ` (${f.hint})` : ''}`;
}

function verifyCommand(io: CliIo): Command {
  return subcommand('verify')
    .description('load a certificate profile the way the worker does and list every problem found')
    .argument('<profile>', 'profile file (PROFILES_DIR/NAME.json)')
    .option('--json', 'print exactly one JSON document on stdout')
    .addHelpText('after', '\nExit codes: 0 no error findings (warnings allowed), 2 at least one error finding.')
    .action((file: string, o: { json?: boolean }) =>
      runAction(io, async () => {
        const path = resolve(file);
        const { profile, findings } = await verifyProfile(path, { env: io.env });
        const ok = !findings.some((f) => f.severity === 'error');
        if (o.json) {
          printJson(io, { file: path, profile: profile?.name ?? null, version: profile?.version ?? null, ok, findings });
        } else {
          for (const f of findings) io.stdout(formatFinding(f, path));
          if (findings.length === 0) io.stdout(`ok ${path}: no problems found`);
        }
        return ok ? EXIT.ok : EXIT.invalidInput;
      }, o.json ? errorDocument : undefined),
    );
}

// ---------------------------------------------------------------------------------------------
// certs status

type Flag = 'EXPIRED' | 'NOT_YET_VALID' | 'SOON' | 'REVOKED' | '';

interface StatusRow {
  profile: string;
  role: CertificateRole;
  subject: string;
  validTo: string;
  daysLeft: number;
  flag: Flag;
}

function statusRows(p: LoadedProfile, now: Date): StatusRow[] {
  const warningDays = p.policy?.expiryWarningDays ?? 90;
  const entries = profileCertificates(p);
  return entries.map(([role, cert]) => {
    const d = describeCertificate(cert, now);
    const msLeft = Date.parse(d.validTo) - now.getTime();
    // Revoked outranks the dates: no renewal date matters for a certificate that is already dead.
    const revoked = findRevoked(p.trust.crls ?? [], [cert]) !== undefined;
    const flag: Flag = revoked ? 'REVOKED' : msLeft < 0 ? 'EXPIRED' : Date.parse(d.validFrom) > now.getTime() ? 'NOT_YET_VALID' : msLeft <= warningDays * DAY_MS ? 'SOON' : '';
    return { profile: p.name, role, subject: d.subject, validTo: d.validTo, daysLeft: d.daysLeft, flag };
  });
}

function statusCommand(io: CliIo): Command {
  return subcommand('status')
    .description('expiry overview of every certificate in every profile')
    .option('--profiles <dir>', 'profiles directory (default: $SVCNODE_PROFILES)')
    .option('--json', 'print exactly one JSON document on stdout')
    .addHelpText('after', '\nExit codes: 0 every profile loaded without error findings (warnings allowed), 2 a profile could not be loaded\nor has an error finding, as certs verify reports them (the others are still listed).')
    .action((o: { profiles?: string; json?: boolean }) =>
      runAction(io, async () => {
        const dir = o.profiles ?? io.env.SVCNODE_PROFILES;
        if (!dir) throw new InvalidInputError('SVCNODE_USAGE', 'no profiles directory given', { hint: 'pass --profiles DIR or set SVCNODE_PROFILES' });
        const now = new Date();
        const { profiles, errors } = await loadProfilesDir(dir, { env: io.env, now });
        const loaded = [...profiles.values()];
        if (o.json) {
          printJson(io, {
            profiles: loaded.map((p) => ({ name: p.name, file: p.file, version: p.version, certificates: statusRows(p, now).map(({ profile: _p, ...row }) => row), crls: crlStatusRows(p, now).map(({ profile: _p, ...row }) => row), findings: p.findings })),
            errors: errors.map(({ file, error }) => ({ profileFile: file, ...errorFinding(error) })),
          });
        } else {
          const rows = loaded.flatMap((p) => statusRows(p, now));
          const cells = rows.map((r) => [r.profile, r.role, r.subject, r.validTo.slice(0, 10), String(r.daysLeft), r.flag]);
          io.stdout(rows.length > 0 ? formatTable(['PROFILE', 'ROLE', 'SUBJECT', 'EXPIRES', 'DAYS', 'FLAG'], cells) : loaded.length === 0 ? 'no profile loaded' : 'no certificates in any profile');
          const crlTable = formatCrlTable(loaded.flatMap((p) => crlStatusRows(p, now)));
          if (crlTable) io.stdout(`\n${crlTable}`);
          // Every warning and error in a line, as certs verify prints it, those a flag also shows (SOON) included:
          // a monitor that greps the lines for CERT_EXPIRES_SOON must see what the table and --json say.
          const problems = loaded.flatMap((p) => p.findings.filter((f) => f.severity === 'error' || f.severity === 'warning').map((f) => `${p.name}: ${formatFinding(f, p.file)}`));
          if (problems.length > 0) io.stdout(`\n${problems.join('\n')}`);
          for (const { file, error } of errors) io.stderr(`profile ${file} cannot be loaded:\n${formatError(error)}`);
        }
        const failing = errors.length > 0 || loaded.some((p) => p.findings.some((f) => f.severity === 'error'));
        return failing ? EXIT.invalidInput : EXIT.ok;
      }, o.json ? errorDocument : undefined),
    );
}
