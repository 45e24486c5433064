import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { InvalidInputError, SvcnodeError } from '../errors.js';
import { EXIT } from '../failures/categories.js';
import { describeCertificate, describeKey, type CertificateDescription, type KeyDescription } from '../pki/inspect.js';
import { readMaterial, type MaterialForm } from '../pki/material.js';
import { mintCa, mintLeaf, type KeySpec, type LeafUsage, type MintedCert } from '../pki/mint.js';
import { profileCertificates } from '../pki/certificates.js';
import { readPassphraseFile } from '../pki/passphrase.js';
import { errorFinding, loadProfilesDir, verifyProfile } from '../definitions/profiles.js';
import type { CertificateRole, Finding, LoadedProfile } from '../pki/types.js';
import { importCommand } from './certs-import.js';
import { crlStatusRows, formatCrlTable } from './crl-status.js';
import { formatTable } from './table.js';
import { formatError, printJson, runAction, type CliIo } from './io.js';

/** `svcnode certs …`: inspect, verify and monitor bundles; mint a private CA for test setups. */

const DAY_MS = 86_400_000;

const KEY_SPECS: Record<string, KeySpec> = {
  rsa2048: { type: 'rsa', bits: 2048 },
  rsa3072: { type: 'rsa', bits: 3072 },
  rsa4096: { type: 'rsa', bits: 4096 },
  ec256: { type: 'ec', curve: 'P-256' },
  ec384: { type: 'ec', curve: 'P-384' },
};

function days(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) throw new InvalidArgumentError('must be a whole number of days from 1 to 36500');
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function keyOption(): Option {
  return new Option('--key <type>', 'key type of the new certificate').choices(Object.keys(KEY_SPECS)).default('rsa2048');
}

/** Usage errors in subcommands exit 2 through main's CommanderError handling. */
function subcommand(name: string): Command {
  return new Command(name).exitOverride().showHelpAfterError('(run with --help for usage)');
}

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
  certificates: CertificateDescription[];
  keys: (KeyDescription & { matchesCertificate: number | null })[];
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
  const m = await readMaterial(resolve(file), { passphrase });
  const certificates = m.certificates.map((c) => describeCertificate(c, now));
  const keys = m.keys.map((k) => {
    const key = describeKey(k);
    const index = certificates.findIndex((c) => c.spkiPin === key.spkiPin);
    return { ...key, matchesCertificate: index >= 0 ? index + 1 : null };
  });
  return { file: m.file, form: m.form, certificates, keys };
}

function keyLabel(k: { keyType: string; keyBits?: number; curve?: string }): string {
  return `${k.keyType} ${k.keyBits ?? k.curve ?? ''}`.trim();
}

function formatInspected(f: InspectedFile): string {
  const lines = [`${f.file} (${f.form})`];
  f.certificates.forEach((c, i) => {
    const left = c.daysLeft < 0 ? `EXPIRED ${-c.daysLeft} days ago` : `${c.daysLeft} days left`;
    lines.push(
      `  certificate ${i + 1}: ${c.subject}`,
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
    const match = k.matchesCertificate === null ? 'no certificate in this file' : `certificate ${k.matchesCertificate}`;
    lines.push(`  private key: ${keyLabel(k)}, matches ${match}`, `    SPKI pin  ${k.spkiPin}`);
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
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// certs verify

function formatFinding(f: Finding, fallbackFile: string): string {
  return `${f.severity} ${f.code} ${f.file ?? fallbackFile}: ${f.message}${f.hint ? ` (${f.hint})` : ''}`;
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
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// certs status

type Flag = 'EXPIRED' | 'NOT_YET_VALID' | 'SOON' | '';

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
    const flag: Flag = msLeft < 0 ? 'EXPIRED' : Date.parse(d.validFrom) > now.getTime() ? 'NOT_YET_VALID' : msLeft <= warningDays * DAY_MS ? 'SOON' : '';
    return { profile: p.name, role, subject: d.subject, validTo: d.validTo, daysLeft: d.daysLeft, flag };
  });
}

function statusCommand(io: CliIo): Command {
  return subcommand('status')
    .description('expiry overview of every certificate in every profile')
    .option('--profiles <dir>', 'profiles directory (default: $SVCNODE_PROFILES)')
    .option('--json', 'print exactly one JSON document on stdout')
    .addHelpText('after', '\nExit codes: 0 every profile loaded, 2 a profile could not be loaded (the others are still listed).')
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
          io.stdout(rows.length > 0 ? formatTable(['PROFILE', 'ROLE', 'SUBJECT', 'EXPIRES', 'DAYS', 'FLAG'], cells) : 'no certificates in any profile');
          const crlTable = formatCrlTable(loaded.flatMap((p) => crlStatusRows(p, now)));
          if (crlTable) io.stdout(`\n${crlTable}`);
          for (const { file, error } of errors) io.stderr(`profile ${file} cannot be loaded:\n${formatError(error)}`);
        }
        return errors.length > 0 ? EXIT.invalidInput : EXIT.ok;
      }),
    );
}

// ---------------------------------------------------------------------------------------------
// certs init-ca / certs issue

/** Write a file, refusing to replace one unless forced; keys get mode 0600. */
function writeOutput(file: string, content: string, o: { secret: boolean; force: boolean }): void {
  try {
    writeFileSync(file, content, { mode: o.secret ? 0o600 : 0o644, flag: o.force ? 'w' : 'wx' });
    if (o.secret) chmodSync(file, 0o600); // an existing file keeps its old mode otherwise
  } catch (cause) {
    const exists = (cause as NodeJS.ErrnoException).code === 'EEXIST';
    throw new InvalidInputError(exists ? 'SVCNODE_USAGE' : 'SVCNODE_FILE_NOT_FOUND', `${file}: ${exists ? 'already exists' : 'cannot be written'}`, {
      cause,
      file,
      hint: exists ? 'choose another --out directory or pass --force to replace it' : 'check that the --out directory is writable',
    });
  }
}

/**
 * Create a directory and its missing parents one level at a time. `mkdirSync({recursive: true})`
 * spins forever on some paths it cannot create (e.g. under /proc); this stops at the first error.
 */
function makeDirs(path: string): void {
  const missing: string[] = [];
  for (let p = path; !existsSync(p); p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) mkdirSync(p, { mode: 0o700 });
  if (!statSync(path).isDirectory()) throw Object.assign(new Error(`${path} is not a directory`), { code: 'ENOTDIR' });
}

function prepareDir(dir: string): string {
  const path = resolve(dir);
  try {
    makeDirs(path);
  } catch (cause) {
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${path}: cannot create the output directory`, { cause, file: path, hint: 'check the path and permissions' });
  }
  return path;
}

function notAfter(daysValid: number): Date {
  return new Date(Date.now() + daysValid * DAY_MS);
}

function summary(cert: MintedCert, files: { certificate: string; key: string }): Record<string, string> {
  return { ...files, subject: describeCertificate(cert.cert, new Date()).subject, validTo: new Date(cert.cert.validTo).toISOString(), fingerprint256: cert.cert.fingerprint256 };
}

function report(io: CliIo, json: boolean | undefined, what: string, s: Record<string, string>): void {
  if (json) printJson(io, s);
  else io.stdout(`${what} ${s.subject ?? ''}, valid until ${s.validTo ?? ''}\n  certificate  ${s.certificate ?? ''}\n  private key  ${s.key ?? ''} (mode 0600; keep it secret)`);
}

interface InitCaOptions { out: string; cn: string; key: string; days: number; force?: boolean; json?: boolean }

function initCaCommand(io: CliIo): Command {
  return subcommand('init-ca')
    .description('create a private root CA (ca.pem, ca.key) for test setups')
    .requiredOption('--out <dir>', 'directory for ca.pem and ca.key (created if missing)')
    .option('--cn <name>', 'common name of the CA', 'svcnode Private CA')
    .addOption(keyOption())
    .option('--days <n>', 'validity in days', days, 3650)
    .option('--force', 'replace existing files')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((o: InitCaOptions) =>
      runAction(io, async () => {
        const dir = prepareDir(o.out);
        const ca = await mintCa({ subject: `CN=${escapeDn(o.cn)}`, key: KEY_SPECS[o.key] ?? { type: 'rsa', bits: 2048 }, notAfter: notAfter(o.days) });
        const files = { certificate: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
        writeOutput(files.key, ca.keyPem, { secret: true, force: o.force === true });
        writeOutput(files.certificate, ca.certPem, { secret: false, force: o.force === true });
        report(io, o.json, 'created CA', summary(ca, files));
        return EXIT.ok;
      }),
    );
}

interface IssueOptions { ca: string; cn: string; out: string; client?: boolean; server?: boolean; dns?: string[]; ip?: string[]; key: string; days: number; force?: boolean; json?: boolean }

async function loadCa(dir: string): Promise<MintedCert> {
  const certFile = join(resolve(dir), 'ca.pem');
  const keyFile = join(resolve(dir), 'ca.key');
  const certs = await readMaterial(certFile, { keys: 'ignore' });
  const keys = await readMaterial(keyFile);
  const cert = certs.certificates[0];
  const key = keys.keys[0];
  if (!cert || !key) {
    throw new InvalidInputError(cert ? 'SVCNODE_NO_PRIVATE_KEY' : 'SVCNODE_NO_CERTIFICATE', `${cert ? keyFile : certFile}: no ${cert ? 'private key' : 'certificate'} found`, {
      file: cert ? keyFile : certFile,
      hint: 'point --ca at a directory made by `svcnode certs init-ca`',
    });
  }
  if (!cert.ca) throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `${certFile}: not a CA certificate`, { file: certFile, hint: 'point --ca at a directory made by `svcnode certs init-ca`' });
  if (!cert.checkPrivateKey(key)) throw new InvalidInputError('SVCNODE_KEY_MISMATCH', `${keyFile}: does not belong to ${certFile}`, { file: keyFile, hint: 'keep ca.pem and ca.key from the same init-ca run together' });
  return { cert, key, certPem: cert.toString(), keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

function fileBase(cn: string): string {
  return cn.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[-.]+|-+$/g, '') || 'cert';
}

function issueCommand(io: CliIo): Command {
  return subcommand('issue')
    .description('issue a client or server certificate from a CA made by init-ca (NAME.pem, NAME.key)')
    .requiredOption('--ca <dir>', 'CA directory (ca.pem, ca.key)')
    .requiredOption('--cn <name>', 'common name of the certificate')
    .requiredOption('--out <dir>', 'directory for the certificate and key (created if missing)')
    .option('--client', 'clientAuth extended key usage (the default)')
    .option('--server', 'serverAuth extended key usage; with --client, both')
    .option('--dns <name>', 'DNS subject alternative name (repeatable; --server default: the CN)', collect)
    .option('--ip <address>', 'IP subject alternative name (repeatable)', collect)
    .addOption(keyOption())
    .option('--days <n>', 'validity in days', days, 365)
    .option('--force', 'replace existing files')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((o: IssueOptions) =>
      runAction(io, async () => {
        const bad = (o.ip ?? []).find((ip) => isIP(ip) === 0);
        if (bad !== undefined) throw new InvalidInputError('SVCNODE_USAGE', `--ip ${bad} is not an IPv4 or IPv6 address`, { hint: 'pass a literal address such as 127.0.0.1 or ::1' });
        const usage: LeafUsage = o.server ? (o.client ? 'both' : 'server') : 'client';
        const issuer = await loadCa(o.ca);
        const dnsNames = o.dns ?? (o.server && !o.ip ? [o.cn] : []);
        const leaf = await mintLeaf({ subject: `CN=${escapeDn(o.cn)}`, issuer, usage, key: KEY_SPECS[o.key] ?? { type: 'rsa', bits: 2048 }, dnsNames, ipAddresses: o.ip ?? [], notAfter: notAfter(o.days) });
        const dir = prepareDir(o.out);
        const base = fileBase(o.cn);
        const files = { certificate: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
        writeOutput(files.key, leaf.keyPem, { secret: true, force: o.force === true });
        writeOutput(files.certificate, leaf.certPem, { secret: false, force: o.force === true });
        report(io, o.json, `issued ${usage} certificate`, summary(leaf, files));
        return EXIT.ok;
      }),
    );
}
