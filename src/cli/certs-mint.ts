import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { InvalidInputError } from '../errors.js';
import { EXIT } from '../failures/categories.js';
import { describeCertificate } from '../pki/inspect.js';
import { readMaterial } from '../pki/material.js';
import { mintCa, mintLeaf, type KeySpec, type LeafUsage, type MintedCert } from '../pki/mint.js';
import { printJson, runAction, subcommand, type CliIo } from './io.js';

/** `svcnode certs init-ca` and `certs issue`: a private CA and certificates for test setups. */

export const DAY_MS = 86_400_000;

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

export function initCaCommand(io: CliIo): Command {
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

export function issueCommand(io: CliIo): Command {
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
