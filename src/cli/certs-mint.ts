import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { InvalidInputError } from '../errors.js';
import { EXIT } from '../failures/categories.js';
import { describeCertificate } from '../pki/inspect.js';
import { readMaterial } from '../pki/material.js';
import { mintCa, mintLeaf, type KeySpec, type LeafUsage, type MintedCert } from '../pki/mint.js';
import { printJson, runAction, subcommand, type CliIo } from './io.js';
import { errorDocument } from './json-output.js';

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

/**
 * Write the outputs of one command (key, certificate), all or none: without `force` every path
 * is checked before anything is written, so a refusal leaves no key beside an old certificate.
 * Each file is written beside its target and renamed over it, which replaces a symbolic link at
 * the target instead of writing through it. Keys get mode 0600.
 */
function writeOutputs(outputs: readonly { file: string; content: string; secret: boolean }[], force: boolean): void {
  if (!force) {
    const taken = outputs.find((o) => lstatSync(o.file, { throwIfNoEntry: false }) !== undefined);
    if (taken) {
      throw new InvalidInputError('SVCNODE_USAGE', `${taken.file}: already exists; nothing was written`, { file: taken.file, hint: 'choose another --out directory or pass --force to replace it' });
    }
  }
  for (const o of outputs) {
    const temporary = `${o.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      writeFileSync(temporary, o.content, { mode: o.secret ? 0o600 : 0o644, flag: 'wx' });
      renameSync(temporary, o.file);
    } catch (cause) {
      rmSync(temporary, { force: true });
      throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${o.file}: cannot be written`, { cause, file: o.file, hint: 'check that the --out directory is writable' });
    }
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
    if ((cause as NodeJS.ErrnoException).code === 'ENOTDIR' && existsSync(path)) {
      throw new InvalidInputError('SVCNODE_USAGE', `${path}: is a file, not a directory`, { cause, file: path, hint: '--out names the directory the files go to (created when missing): point it elsewhere' });
    }
    throw new InvalidInputError('SVCNODE_FILE_NOT_FOUND', `${path}: cannot create the output directory`, { cause, file: path, hint: 'check the path and permissions' });
  }
  return path;
}

function notAfter(daysValid: number): Date {
  return new Date(Date.now() + daysValid * DAY_MS);
}

interface Summary {
  certificate: string;
  key: string;
  subject: string;
  validTo: string;
  fingerprint256: string;
  /** Present when there is something to know before using the certificate. */
  warnings?: string[];
}

function summary(cert: MintedCert, files: { certificate: string; key: string }, warnings: string[] = []): Summary {
  return {
    ...files,
    subject: describeCertificate(cert.cert, new Date()).subject,
    validTo: new Date(cert.cert.validTo).toISOString(),
    fingerprint256: cert.cert.fingerprint256,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

function report(io: CliIo, json: boolean | undefined, what: string, s: Summary): void {
  for (const w of s.warnings ?? []) io.stderr(`warning: ${w}`);
  if (json) printJson(io, s);
  else io.stdout(`${what} ${s.subject}, valid until ${s.validTo}\n  certificate  ${s.certificate}\n  private key  ${s.key} (mode 0600; keep it secret)`);
}

interface InitCaOptions { out: string; cn: string; key: string; days: number; force?: boolean; json?: boolean }

export function initCaCommand(io: CliIo): Command {
  return subcommand('init-ca')
    .description('create a private root CA (ca.pem, ca.key) for test setups')
    .requiredOption('--out <dir>', 'directory for ca.pem and ca.key (created if missing)')
    .option('--cn <name>', 'common name of the CA', commonName, 'svcnode Private CA')
    .addOption(keyOption())
    .option('--days <n>', 'validity in days', days, 3650)
    .option('--force', 'replace existing files')
    .option('--json', 'print exactly one JSON document on stdout')
    .action((o: InitCaOptions) =>
      runAction(io, async () => {
        const dir = prepareDir(o.out);
        const ca = await mintCa({ subject: `CN=${escapeDn(o.cn)}`, key: KEY_SPECS[o.key] ?? { type: 'rsa', bits: 2048 }, notAfter: notAfter(o.days) });
        const files = { certificate: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
        writeOutputs([{ file: files.key, content: ca.keyPem, secret: true }, { file: files.certificate, content: ca.certPem, secret: false }], o.force === true);
        report(io, o.json, 'created CA', summary(ca, files));
        return EXIT.ok;
      }, o.json ? errorDocument : undefined),
    );
}

interface IssueOptions { ca: string; cn: string; out: string; client?: boolean; server?: boolean; dns?: string[]; ip?: string[]; key: string; days: number; force?: boolean; json?: boolean }

const CA_DIR_HINT = 'point --ca at a directory made by `svcnode certs init-ca`';

/** A file of the --ca directory: a missing one is the directory's fault, not a profile's. */
async function readCaFile(file: string, o: { keys?: 'ignore' } = {}): ReturnType<typeof readMaterial> {
  try {
    return await readMaterial(file, o);
  } catch (error) {
    if (error instanceof InvalidInputError && error.code === 'SVCNODE_FILE_NOT_FOUND') {
      throw new InvalidInputError(error.code, `--ca: ${error.message}`, { cause: error, file, hint: CA_DIR_HINT });
    }
    if (error instanceof InvalidInputError && (error.code === 'SVCNODE_MISSING_PASSPHRASE' || error.code === 'SVCNODE_BAD_PASSPHRASE')) {
      throw new InvalidInputError(error.code, `--ca: ${file} is encrypted; certs issue reads the unencrypted ca.key that init-ca writes`, {
        cause: error,
        file,
        hint: `decrypt a copy for issuing (openssl pkey -in ${file} -out DIR/ca.key, mode 0600) and pass that DIR with its ca.pem as --ca`,
      });
    }
    throw error;
  }
}

async function loadCa(dir: string): Promise<MintedCert> {
  const certFile = join(resolve(dir), 'ca.pem');
  const keyFile = join(resolve(dir), 'ca.key');
  const certs = await readCaFile(certFile, { keys: 'ignore' });
  const keys = await readCaFile(keyFile);
  const cert = certs.certificates[0];
  const key = keys.keys[0];
  if (!cert || !key) {
    throw new InvalidInputError(cert ? 'SVCNODE_NO_PRIVATE_KEY' : 'SVCNODE_NO_CERTIFICATE', `${cert ? keyFile : certFile}: no ${cert ? 'private key' : 'certificate'} found`, {
      file: cert ? keyFile : certFile,
      hint: CA_DIR_HINT,
    });
  }
  if (!cert.ca) throw new InvalidInputError('SVCNODE_INVALID_BUNDLE', `${certFile}: not a CA certificate`, { file: certFile, hint: CA_DIR_HINT });
  if (!cert.checkPrivateKey(key)) throw new InvalidInputError('SVCNODE_KEY_MISMATCH', `${keyFile}: does not belong to ${certFile}`, { file: keyFile, hint: 'keep ca.pem and ca.key from the same init-ca run together' });
  return { cert, key, certPem: cert.toString(), keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** A DNS name as a certificate may carry it (RFC 5280 preferred name syntax), a leading `*.` allowed. */
const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

function dnsProblem(name: string): string | undefined {
  if (isIP(name) !== 0) return 'is an IP address: pass it with --ip (clients match an address only against IP names)';
  const labels = name.replace(/\.$/, '').split('.');
  if (labels[0] === '*') labels.shift();
  if (name.length > 253 || labels.length === 0 || !labels.every((l) => DNS_LABEL.test(l))) {
    return 'is not a DNS name: letters, digits and hyphens in dot-separated labels, a leading *. for a wildcard';
  }
  return undefined;
}

/** Bad --ip and --dns values, before any key is made. */
function checkNames(o: IssueOptions): void {
  const ip = (o.ip ?? []).find((a) => isIP(a) === 0);
  if (ip !== undefined) throw new InvalidInputError('SVCNODE_USAGE', `--ip ${ip} is not an IPv4 or IPv6 address`, { hint: 'pass a literal address such as 127.0.0.1 or ::1' });
  for (const name of o.dns ?? []) {
    const problem = dnsProblem(name);
    if (problem) throw new InvalidInputError('SVCNODE_USAGE', `--dns ${JSON.stringify(name)} ${problem}`, { hint: 'pass a host name such as api.example.com or *.example.com' });
  }
}

/** What the operator should know about a leaf that outlives the CA that signed it. */
function outlivesCa(leaf: MintedCert, ca: MintedCert): string[] {
  const caEnd = new Date(ca.cert.validTo).getTime();
  if (new Date(leaf.cert.validTo).getTime() <= caEnd) return [];
  const daysLeft = Math.floor((caEnd - Date.now()) / DAY_MS);
  return [`the certificate outlives its CA (valid until ${new Date(caEnd).toISOString()}): it fails verification from then on; --days ${daysLeft} or less stays within it`];
}

/** A common name: not empty, not only spaces (a certificate "CN=" names nobody). */
function commonName(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty');
  return value;
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
    .requiredOption('--cn <name>', 'common name of the certificate', commonName)
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
        checkNames(o);
        const usage: LeafUsage = o.server ? (o.client ? 'both' : 'server') : 'client';
        const issuer = await loadCa(o.ca);
        const dnsNames = o.dns ?? (o.server && !o.ip ? [o.cn] : []);
        const leaf = await mintLeaf({ subject: `CN=${escapeDn(o.cn)}`, issuer, usage, key: KEY_SPECS[o.key] ?? { type: 'rsa', bits: 2048 }, dnsNames, ipAddresses: o.ip ?? [], notAfter: notAfter(o.days) });
        const dir = prepareDir(o.out);
        const base = fileBase(o.cn);
        const files = { certificate: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
        writeOutputs([{ file: files.key, content: leaf.keyPem, secret: true }, { file: files.certificate, content: leaf.certPem, secret: false }], o.force === true);
        report(io, o.json, `issued ${usage} certificate`, summary(leaf, files, outlivesCa(leaf, issuer)));
        return EXIT.ok;
      }, o.json ? errorDocument : undefined),
    );
}
